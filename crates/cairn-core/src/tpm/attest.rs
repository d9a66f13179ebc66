//! TPMS_ATTEST: the structure a TPM signs for quotes, certifications and other attestations.
//!
//! Only the fields the verifier judges are typed (magic, type, signer, extraData, clock, firmware
//! and, for quotes, the PCR selection and digest; for certify, the names); other attestation
//! kinds keep their body raw so they still parse and re-marshal.

use crate::alg::{Digest, HashAlg};
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;
use crate::pcr::PcrSelection;

use super::{MAX_DIGEST_BUFFER, MAX_NAME};

/// TPM_GENERATED_VALUE: every TPM-made attestation starts with it.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// TPM_ST_ATTEST_CERTIFY.
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

/// TPMS_CLOCK_INFO: the TPM's clock and its reset/restart counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since it was made (roughly).
    pub clock: u64,
    /// TPM Resets (reboots) since the last TPM2_Clear.
    pub reset_count: u32,
    /// TPM Restarts / resumes since the last reset.
    pub restart_count: u32,
    /// YES when `clock` was not rolled back by an unorderly shutdown.
    pub safe: bool,
}

/// The body of an attestation, by its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestInfo {
    /// TPMS_QUOTE_INFO.
    Quote {
        /// PCRs the quote covers.
        selection: PcrSelection,
        /// Digest of their values, with the signing scheme's hash.
        pcr_digest: Vec<u8>,
    },
    /// TPMS_CERTIFY_INFO.
    Certify {
        /// Name of the certified object.
        name: Vec<u8>,
        /// Its qualified name.
        qualified_name: Vec<u8>,
    },
    /// Any other attestation type, body kept as bytes.
    Other {
        /// The TPMI_ST_ATTEST value.
        tag: u16,
        /// The raw TPMU_ATTEST bytes.
        body: Vec<u8>,
    },
}

/// TPMS_ATTEST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    /// Must be [`TPM_GENERATED_VALUE`]; checked by the quote verifier, not the parser, so a
    /// foreign structure is reported as such rather than as unreadable.
    pub magic: u32,
    /// Qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// Caller data: the verifier's nonce for a quote.
    pub extra_data: Vec<u8>,
    /// Clock state when signed.
    pub clock_info: ClockInfo,
    /// Vendor-specific firmware version.
    pub firmware_version: u64,
    /// Type-specific body.
    pub info: AttestInfo,
}

impl Attest {
    /// Parses a TPMS_ATTEST that fills `bytes` exactly.
    pub fn parse(bytes: &[u8]) -> Result<Attest, ParseError> {
        let mut r = Reader::new(bytes);
        let a = Attest::read(&mut r)?;
        r.finish("TPMS_ATTEST")?;
        Ok(a)
    }

    /// Reads a TPMS_ATTEST from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Attest, ParseError> {
        let magic = r.u32_be("TPMS_ATTEST.magic")?;
        let tag = r.u16_be("TPMS_ATTEST.type")?;
        let qualified_signer = r.tpm2b(MAX_NAME, "TPMS_ATTEST.qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b(MAX_DIGEST_BUFFER, "TPMS_ATTEST.extraData")?.to_vec();
        let clock = r.u64_be("TPMS_CLOCK_INFO.clock")?;
        let reset_count = r.u32_be("TPMS_CLOCK_INFO.resetCount")?;
        let restart_count = r.u32_be("TPMS_CLOCK_INFO.restartCount")?;
        let safe_offset = r.offset();
        let safe = match r.u8("TPMS_CLOCK_INFO.safe")? {
            0 => false,
            1 => true,
            v => {
                return Err(ParseError::BadValue {
                    field: "TPMS_CLOCK_INFO.safe",
                    offset: safe_offset,
                    value: u64::from(v),
                    expected: "0 or 1",
                })
            }
        };
        let firmware_version = r.u64_be("TPMS_ATTEST.firmwareVersion")?;
        let info = match tag {
            TPM_ST_ATTEST_QUOTE => {
                let selection = PcrSelection::read_be(r)?;
                let pcr_digest = r.tpm2b(MAX_DIGEST_BUFFER, "TPMS_QUOTE_INFO.pcrDigest")?.to_vec();
                AttestInfo::Quote { selection, pcr_digest }
            }
            TPM_ST_ATTEST_CERTIFY => {
                let name = r.tpm2b(MAX_NAME, "TPMS_CERTIFY_INFO.name")?.to_vec();
                let qualified_name = r.tpm2b(MAX_NAME, "TPMS_CERTIFY_INFO.qualifiedName")?.to_vec();
                AttestInfo::Certify { name, qualified_name }
            }
            _ => AttestInfo::Other { tag, body: r.take(r.remaining(), "TPMS_ATTEST.attested")?.to_vec() },
        };
        Ok(Attest {
            magic,
            qualified_signer,
            extra_data,
            clock_info: ClockInfo { clock, reset_count, restart_count, safe },
            firmware_version,
            info,
        })
    }

    /// The TPMI_ST_ATTEST type tag.
    pub fn tag(&self) -> u16 {
        match &self.info {
            AttestInfo::Quote { .. } => TPM_ST_ATTEST_QUOTE,
            AttestInfo::Certify { .. } => TPM_ST_ATTEST_CERTIFY,
            AttestInfo::Other { tag, .. } => *tag,
        }
    }

    /// Marshals back to TPM wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.put_u32_be(self.magic);
        out.put_u16_be(self.tag());
        out.put_tpm2b(&self.qualified_signer);
        out.put_tpm2b(&self.extra_data);
        out.put_u64_be(self.clock_info.clock);
        out.put_u32_be(self.clock_info.reset_count);
        out.put_u32_be(self.clock_info.restart_count);
        out.push(u8::from(self.clock_info.safe));
        out.put_u64_be(self.firmware_version);
        match &self.info {
            AttestInfo::Quote { selection, pcr_digest } => {
                selection.write_be(&mut out);
                out.put_tpm2b(pcr_digest);
            }
            AttestInfo::Certify { name, qualified_name } => {
                out.put_tpm2b(name);
                out.put_tpm2b(qualified_name);
            }
            AttestInfo::Other { body, .. } => out.extend_from_slice(body),
        }
        out
    }

    /// The pcrDigest as a [`Digest`] of `alg`, if this is a quote and the length fits.
    pub fn pcr_digest(&self, alg: HashAlg) -> Option<Digest> {
        match &self.info {
            AttestInfo::Quote { pcr_digest, .. } => Digest::from_bytes(alg, pcr_digest).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attest {
        Attest {
            magic: TPM_GENERATED_VALUE,
            qualified_signer: vec![0, 0xb, 1, 2, 3],
            extra_data: b"nonce".to_vec(),
            clock_info: ClockInfo { clock: 99, reset_count: 3, restart_count: 1, safe: true },
            firmware_version: 0x2019_1023_0016_3636,
            info: AttestInfo::Quote {
                selection: "sha1:10+sha256:0,16".parse().unwrap(),
                pcr_digest: vec![7; 32],
            },
        }
    }

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let bytes = sample().to_bytes();
        assert_eq!(Attest::parse(&bytes).unwrap(), sample());
        for cut in 0..bytes.len() {
            assert!(Attest::parse(&bytes[..cut]).is_err(), "truncated at {cut} parsed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Attest::parse(&longer), Err(ParseError::TrailingData { .. })));
    }

    #[test]
    fn safe_must_be_boolean() {
        let mut bytes = sample().to_bytes();
        // magic(4) type(2) signer(2+5) extra(2+5) clock(8) reset(4) restart(4) -> safe at 36
        bytes[36] = 2;
        assert!(matches!(Attest::parse(&bytes), Err(ParseError::BadValue { field: "TPMS_CLOCK_INFO.safe", .. })));
    }
}
