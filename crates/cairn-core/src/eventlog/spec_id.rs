//! The crypto-agile log header: `TCG_EfiSpecIDEvent` ("Spec ID Event03").
//!
//! It rides in the data of the first record, itself written in the SHA-1 format, and tells the
//! parser which digests every later record carries and how long each is. Digest sizes of known
//! algorithms must agree with the algorithm; unknown algorithms are kept with their announced size
//! so their digests can be skipped, but they cannot be replayed.

use crate::alg::{AlgId, HashAlg};
use crate::codec::Reader;
use crate::error::ParseError;

/// Signature of a crypto-agile log header.
pub const SPEC_ID_EVENT03: &[u8; 16] = b"Spec ID Event03\0";
/// Most algorithms a header may announce (one per PCR bank a TPM can have).
pub const MAX_ALGORITHMS: usize = 16;
/// Largest digest accepted for an algorithm Cairn does not know.
pub const MAX_UNKNOWN_DIGEST: usize = 128;

/// One `TCG_EfiSpecIdEventAlgorithmSize`: an algorithm and its digest size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSize {
    /// TPM_ALG_ID.
    pub alg: AlgId,
    /// Digest size in bytes.
    pub digest_size: u16,
}

/// `TCG_EfiSpecIDEvent` (TCG PC Client PFP, section 10.4.5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecIdEvent {
    /// platformClass (0 = client, 1 = server).
    pub platform_class: u32,
    /// specVersionMinor.
    pub spec_version_minor: u8,
    /// specVersionMajor.
    pub spec_version_major: u8,
    /// specErrata.
    pub spec_errata: u8,
    /// uintnSize (1 = 32-bit UINTN, 2 = 64-bit).
    pub uintn_size: u8,
    algorithms: Vec<AlgorithmSize>,
    vendor_info: Vec<u8>,
}

impl SpecIdEvent {
    /// A header for `algorithms` (each a supported hash) with no vendor info, as firmware writes.
    pub fn new(algorithms: &[HashAlg]) -> SpecIdEvent {
        SpecIdEvent {
            platform_class: 0,
            spec_version_minor: 0,
            spec_version_major: 2,
            spec_errata: 0,
            uintn_size: 2,
            algorithms: algorithms
                .iter()
                .map(|a| AlgorithmSize { alg: a.alg_id(), digest_size: a.len() as u16 })
                .collect(),
            vendor_info: Vec::new(),
        }
    }

    /// True when `data` starts with the crypto-agile signature.
    pub fn is_spec_id(data: &[u8]) -> bool {
        data.starts_with(SPEC_ID_EVENT03)
    }

    /// Reads the structure from the whole of `r` (the first record's event data).
    pub fn read(r: &mut Reader<'_>) -> Result<SpecIdEvent, ParseError> {
        let sig_offset = r.offset();
        let sig = r.take(16, "TCG_EfiSpecIDEvent.signature")?;
        if sig != SPEC_ID_EVENT03 {
            return Err(ParseError::BadValue {
                field: "TCG_EfiSpecIDEvent.signature",
                offset: sig_offset,
                value: 0,
                expected: "\"Spec ID Event03\"",
            });
        }
        let platform_class = r.u32_le("TCG_EfiSpecIDEvent.platformClass")?;
        let spec_version_minor = r.u8("TCG_EfiSpecIDEvent.specVersionMinor")?;
        let spec_version_major = r.u8("TCG_EfiSpecIDEvent.specVersionMajor")?;
        let spec_errata = r.u8("TCG_EfiSpecIDEvent.specErrata")?;
        let uintn_size = r.u8("TCG_EfiSpecIDEvent.uintnSize")?;
        let count_offset = r.offset();
        let count = r.u32_le("TCG_EfiSpecIDEvent.numberOfAlgorithms")? as usize;
        if count == 0 || count > MAX_ALGORITHMS {
            return Err(ParseError::TooLarge {
                field: "TCG_EfiSpecIDEvent.numberOfAlgorithms (1 or more)",
                offset: count_offset,
                size: count,
                max: MAX_ALGORITHMS,
            });
        }
        let mut algorithms: Vec<AlgorithmSize> = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = r.offset();
            let alg = AlgId(r.u16_le("TCG_EfiSpecIdEventAlgorithmSize.algorithmId")?);
            let digest_size = r.u16_le("TCG_EfiSpecIdEventAlgorithmSize.digestSize")?;
            check_size(alg, digest_size, offset)?;
            if algorithms.iter().any(|a| a.alg == alg) {
                return Err(ParseError::BadValue {
                    field: "TCG_EfiSpecIdEventAlgorithmSize.algorithmId",
                    offset,
                    value: u64::from(alg.0),
                    expected: "each algorithm listed once",
                });
            }
            algorithms.push(AlgorithmSize { alg, digest_size });
        }
        let vendor_len = usize::from(r.u8("TCG_EfiSpecIDEvent.vendorInfoSize")?);
        let vendor_info = r.take(vendor_len, "TCG_EfiSpecIDEvent.vendorInfo")?.to_vec();
        r.finish("TCG_EfiSpecIDEvent")?;
        Ok(SpecIdEvent {
            platform_class,
            spec_version_minor,
            spec_version_major,
            spec_errata,
            uintn_size,
            algorithms,
            vendor_info,
        })
    }

    /// The algorithms in header order.
    pub fn algorithms(&self) -> &[AlgorithmSize] {
        &self.algorithms
    }

    /// The digest size announced for `alg`.
    pub fn digest_size(&self, alg: AlgId) -> Option<usize> {
        self.algorithms.iter().find(|a| a.alg == alg).map(|a| usize::from(a.digest_size))
    }

    /// The supported hash banks the header announces, in header order.
    pub fn banks(&self) -> impl Iterator<Item = HashAlg> + '_ {
        self.algorithms.iter().filter_map(|a| HashAlg::from_alg_id(a.alg))
    }

    /// vendorInfo bytes.
    pub fn vendor_info(&self) -> &[u8] {
        &self.vendor_info
    }

    /// Appends the structure (the header record's event data).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(SPEC_ID_EVENT03);
        out.extend_from_slice(&self.platform_class.to_le_bytes());
        out.extend_from_slice(&[self.spec_version_minor, self.spec_version_major, self.spec_errata, self.uintn_size]);
        out.extend_from_slice(&(self.algorithms.len() as u32).to_le_bytes());
        for a in &self.algorithms {
            out.extend_from_slice(&a.alg.0.to_le_bytes());
            out.extend_from_slice(&a.digest_size.to_le_bytes());
        }
        let n = self.vendor_info.len().min(255);
        out.push(n as u8);
        out.extend_from_slice(self.vendor_info.get(..n).unwrap_or(&[]));
    }
}

fn check_size(alg: AlgId, size: u16, offset: usize) -> Result<(), ParseError> {
    let size = usize::from(size);
    match HashAlg::from_alg_id(alg) {
        Some(h) if h.len() != size => Err(ParseError::DigestLength {
            field: "TCG_EfiSpecIdEventAlgorithmSize.digestSize",
            alg: h.name(),
            len: size,
            expected: h.len(),
        }),
        None if size == 0 || size > MAX_UNKNOWN_DIGEST => Err(ParseError::TooLarge {
            field: "TCG_EfiSpecIdEventAlgorithmSize.digestSize",
            offset,
            size,
            max: MAX_UNKNOWN_DIGEST,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_wrong_sizes() {
        let h = SpecIdEvent::new(&[HashAlg::Sha1, HashAlg::Sha256]);
        let mut b = Vec::new();
        h.write(&mut b);
        assert_eq!(SpecIdEvent::read(&mut Reader::new(&b)).unwrap(), h);
        // sha256 announced with 20 bytes.
        let bad_pos = 16 + 8 + 4 + 4 + 2;
        b[bad_pos] = 20;
        assert!(matches!(SpecIdEvent::read(&mut Reader::new(&b)), Err(ParseError::DigestLength { .. })));
    }

    #[test]
    fn zero_algorithms_rejected() {
        let mut b = Vec::new();
        SpecIdEvent::new(&[]).write(&mut b);
        assert!(matches!(SpecIdEvent::read(&mut Reader::new(&b)), Err(ParseError::TooLarge { .. })));
    }
}
