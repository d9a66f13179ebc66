//! PCR indices, bank selections (TPML_PCR_SELECTION) and sets of PCR values.
//!
//! A selection is an ordered list of banks, each with a bitmask of PCRs; the order matters
//! because a quote's pcrDigest hashes the values bank by bank, PCR by PCR, in selection order.
//! The text form is tpm2-tools' (`sha1:10+sha256:0,1,2`), which operators already type.

use std::fmt;
use std::str::FromStr;

use crate::alg::{AlgId, Digest, HashAlg};
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

/// Number of PCRs Cairn can select (PCR_SELECT_MAX = 4 bytes of bitmap).
pub const PCR_COUNT: u8 = 32;

/// A PCR number, 0–31.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PcrIndex(u8);

impl PcrIndex {
    /// A PCR index, if `n < 32`.
    pub const fn new(n: u8) -> Option<PcrIndex> {
        if n < PCR_COUNT {
            Some(PcrIndex(n))
        } else {
            None
        }
    }
    /// The number.
    pub const fn get(self) -> u8 {
        self.0
    }
    /// Bit of this PCR in a mask.
    pub const fn bit(self) -> u32 {
        1u32 << self.0
    }
}

impl fmt::Display for PcrIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for PcrIndex {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(PcrIndex::new)
            .ok_or_else(|| ParseError::text("PCR index", format!("{s:?} is not a number from 0 to 31")))
    }
}

/// One bank of a selection: TPMS_PCR_SELECTION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BankSelection {
    /// The bank's hash.
    pub alg: HashAlg,
    /// Bit n set = PCR n selected.
    pub mask: u32,
}

impl BankSelection {
    /// Selected PCRs in ascending order.
    pub fn pcrs(&self) -> impl Iterator<Item = PcrIndex> + '_ {
        (0..PCR_COUNT).filter_map(PcrIndex::new).filter(|p| self.mask & p.bit() != 0)
    }
    /// Number of selected PCRs.
    pub fn count(&self) -> usize {
        self.mask.count_ones() as usize
    }
}

/// An ordered PCR selection across banks: TPML_PCR_SELECTION.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PcrSelection {
    banks: Vec<BankSelection>,
}

/// Most banks a TPML_PCR_SELECTION may hold (HASH_COUNT in the reference implementation).
pub const MAX_BANKS: usize = 16;

impl PcrSelection {
    /// A selection from banks; empty masks are kept (a TPM may report them).
    pub fn new(banks: Vec<BankSelection>) -> Result<Self, ParseError> {
        if banks.len() > MAX_BANKS {
            return Err(ParseError::text("PCR selection", format!("{} banks, at most {MAX_BANKS}", banks.len())));
        }
        Ok(PcrSelection { banks })
    }

    /// The banks in order.
    pub fn banks(&self) -> &[BankSelection] {
        &self.banks
    }

    /// Every selected (bank, PCR), in digest order.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, PcrIndex)> + '_ {
        self.banks.iter().flat_map(|b| b.pcrs().map(move |p| (b.alg, p)))
    }

    /// Total number of selected PCRs over all banks.
    pub fn count(&self) -> usize {
        self.banks.iter().map(BankSelection::count).sum()
    }

    /// Whether `pcr` of `alg` is selected.
    pub fn contains(&self, alg: HashAlg, pcr: PcrIndex) -> bool {
        self.banks.iter().any(|b| b.alg == alg && b.mask & pcr.bit() != 0)
    }

    /// Equal as far as a quote is concerned: the same non-empty banks, masks and order.
    pub fn same_pcrs(&self, other: &PcrSelection) -> bool {
        let a = self.banks.iter().filter(|b| b.mask != 0);
        let b = other.banks.iter().filter(|b| b.mask != 0);
        a.eq(b)
    }

    /// Reads a big-endian TPML_PCR_SELECTION (TPM wire form).
    pub fn read_be(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        let offset = r.offset();
        let count = r.u32_be("TPML_PCR_SELECTION.count")?;
        if count as usize > MAX_BANKS {
            return Err(ParseError::TooLarge {
                field: "TPML_PCR_SELECTION.count",
                offset,
                size: count as usize,
                max: MAX_BANKS,
            });
        }
        let mut banks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let alg = HashAlg::read_be(r, "TPMS_PCR_SELECTION.hash")?;
            let size_offset = r.offset();
            let size = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
            if size > 4 {
                return Err(ParseError::TooLarge {
                    field: "TPMS_PCR_SELECTION.sizeofSelect",
                    offset: size_offset,
                    size: usize::from(size),
                    max: 4,
                });
            }
            let bits = r.take(usize::from(size), "TPMS_PCR_SELECTION.pcrSelect")?;
            banks.push(BankSelection { alg, mask: mask_from_bytes(bits) });
        }
        Ok(PcrSelection { banks })
    }

    /// Writes the big-endian TPML_PCR_SELECTION, with 3-byte bitmaps unless a PCR above 23 is set.
    pub fn write_be(&self, out: &mut Vec<u8>) {
        out.put_u32_be(self.banks.len() as u32);
        for b in &self.banks {
            out.put_u16_be(b.alg.alg_id().0);
            let size = select_size(b.mask);
            out.push(size);
            out.extend_from_slice(b.mask.to_le_bytes().get(..usize::from(size)).unwrap_or(&[]));
        }
    }

    /// A mask per bank in Keylime's form: the union of all banks' PCRs.
    pub fn union_mask(&self) -> u32 {
        self.banks.iter().fold(0, |m, b| m | b.mask)
    }
}

/// Bitmap bytes to a mask: byte i bit j = PCR 8i+j.
pub(crate) fn mask_from_bytes(bits: &[u8]) -> u32 {
    bits.iter().take(4).enumerate().fold(0u32, |m, (i, b)| m | (u32::from(*b) << (8 * i)))
}

/// sizeofSelect TPMs use: 3 bytes (24 PCRs) unless a higher PCR is selected.
pub(crate) fn select_size(mask: u32) -> u8 {
    if mask >> 24 != 0 {
        4
    } else {
        3
    }
}

impl FromStr for PcrSelection {
    type Err = ParseError;
    /// tpm2-tools syntax: `sha1:10+sha256:0,1,16` or `sha256:all`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut banks: Vec<BankSelection> = Vec::new();
        for part in s.split('+') {
            let (alg, list) = part
                .split_once(':')
                .ok_or_else(|| ParseError::text("PCR selection", format!("{part:?} is not BANK:PCRS")))?;
            let alg = HashAlg::from_name(alg.trim())
                .ok_or_else(|| ParseError::text("PCR selection", format!("unknown bank {alg:?}")))?;
            let mut mask = 0u32;
            if list.trim() == "all" {
                mask = 0x00FF_FFFF;
            } else {
                for p in list.split(',') {
                    mask |= p.parse::<PcrIndex>()?.bit();
                }
            }
            if banks.iter().any(|b| b.alg == alg) {
                return Err(ParseError::text("PCR selection", format!("bank {alg} given twice")));
            }
            banks.push(BankSelection { alg, mask });
        }
        PcrSelection::new(banks)
    }
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.banks.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}:", b.alg)?;
            let list: Vec<String> = b.pcrs().map(|p| p.to_string()).collect();
            f.write_str(&list.join(","))?;
        }
        Ok(())
    }
}

/// PCR values for a selection, in selection order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrValues {
    selection: PcrSelection,
    values: Vec<Digest>,
}

impl PcrValues {
    /// Values for `selection`; there must be one per selected PCR, each of its bank's length.
    pub fn new(selection: PcrSelection, values: Vec<Digest>) -> Result<Self, ParseError> {
        if values.len() != selection.count() {
            return Err(ParseError::text(
                "PCR values",
                format!("{} values for {} selected PCRs", values.len(), selection.count()),
            ));
        }
        for ((alg, pcr), v) in selection.iter().zip(&values) {
            if v.alg() != alg {
                return Err(ParseError::text("PCR values", format!("{alg}:{pcr} holds a {} digest", v.alg())));
            }
        }
        Ok(PcrValues { selection, values })
    }

    /// The selection.
    pub fn selection(&self) -> &PcrSelection {
        &self.selection
    }

    /// (bank, PCR, value) in selection order.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, PcrIndex, &Digest)> + '_ {
        self.selection.iter().zip(&self.values).map(|((a, p), v)| (a, p, v))
    }

    /// The value of one PCR, if selected.
    pub fn get(&self, alg: HashAlg, pcr: PcrIndex) -> Option<&Digest> {
        self.iter().find(|(a, p, _)| *a == alg && *p == pcr).map(|(_, _, v)| v)
    }

    /// The values in selection order.
    pub fn values(&self) -> &[Digest] {
        &self.values
    }

    /// H(v1 ‖ v2 ‖ …) with `alg` — a quote's pcrDigest when `alg` is the signing hash.
    pub fn composite_digest(&self, alg: HashAlg) -> Digest {
        let mut h = crate::alg::Hasher::new(alg);
        for v in &self.values {
            h.update(v.as_bytes());
        }
        h.finish()
    }
}

/// Reads a TPM_ALG_ID that must be a hash, for structures that name banks.
pub fn hash_alg_from_id(id: AlgId, field: &'static str, offset: usize) -> Result<HashAlg, ParseError> {
    HashAlg::from_alg_id(id).ok_or(ParseError::UnsupportedAlgorithm { field, offset, alg: id.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tpm2_tools_syntax() {
        let s: PcrSelection = "sha1:10+sha256:0,1,16".parse().unwrap();
        assert_eq!(s.count(), 4);
        assert_eq!(s.to_string(), "sha1:10+sha256:0,1,16");
        assert!(s.contains(HashAlg::Sha256, PcrIndex::new(16).unwrap()));
        assert!("sha256:32".parse::<PcrSelection>().is_err());
        assert!("md5:1".parse::<PcrSelection>().is_err());
        assert!("sha256:1+sha256:2".parse::<PcrSelection>().is_err());
    }

    #[test]
    fn wire_round_trip() {
        let s: PcrSelection = "sha1:10+sha256:0,1,2,3,4,5,6,7,8,9,10,14".parse().unwrap();
        let mut out = Vec::new();
        s.write_be(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(PcrSelection::read_be(&mut r).unwrap(), s);
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_oversized_bitmap() {
        let bytes = [0, 0, 0, 1, 0, 0x0b, 5, 1, 1, 1, 1, 1];
        assert!(matches!(
            PcrSelection::read_be(&mut Reader::new(&bytes)),
            Err(ParseError::TooLarge { field: "TPMS_PCR_SELECTION.sizeofSelect", .. })
        ));
    }
}
