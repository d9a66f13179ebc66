//! Conversions between cairn-core's types and tss-esapi's, in one place.
//!
//! cairn-core owns the meaning of algorithms, digests and PCR selections; tss-esapi owns the FFI
//! types. The one subtlety: tss-esapi's `PcrSelectionListBuilder` keeps banks in a hash map, so
//! their order is arbitrary — but a quote's pcrDigest hashes PCRs in selection order. We therefore
//! build the raw TPML_PCR_SELECTION ourselves, bank by bank in the caller's order.

use cairn_core::pcr::{BankSelection, PcrSelection, MAX_BANKS};
use cairn_core::{Digest, HashAlg};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Digest as TssDigest, PcrSelectionList};
use tss_esapi::tss2_esys::{TPML_PCR_SELECTION, TPMS_PCR_SELECTION};

use crate::error::TpmError;

/// tss-esapi's name for a cairn hash algorithm.
pub(crate) fn hashing_alg(alg: HashAlg) -> HashingAlgorithm {
    match alg {
        HashAlg::Sha1 => HashingAlgorithm::Sha1,
        HashAlg::Sha256 => HashingAlgorithm::Sha256,
        HashAlg::Sha384 => HashingAlgorithm::Sha384,
        HashAlg::Sha512 => HashingAlgorithm::Sha512,
        HashAlg::Sm3_256 => HashingAlgorithm::Sm3_256,
    }
}

/// The cairn hash algorithm for a tss-esapi one, if Cairn supports it.
pub(crate) fn hash_alg(alg: HashingAlgorithm) -> Option<HashAlg> {
    Some(match alg {
        HashingAlgorithm::Sha1 => HashAlg::Sha1,
        HashingAlgorithm::Sha256 => HashAlg::Sha256,
        HashingAlgorithm::Sha384 => HashAlg::Sha384,
        HashingAlgorithm::Sha512 => HashAlg::Sha512,
        HashingAlgorithm::Sm3_256 => HashAlg::Sm3_256,
        _ => return None,
    })
}

/// A tss-esapi PCR selection list with the banks in `sel`'s order and 3-byte bitmaps (4 when a
/// PCR above 23 is selected). Banks with an empty mask are left out.
pub(crate) fn selection_list(sel: &PcrSelection) -> Result<PcrSelectionList, TpmError> {
    let mut raw = TPML_PCR_SELECTION::default();
    let banks = sel.banks().iter().filter(|b| b.mask != 0);
    for (slot, bank) in raw.pcrSelections.iter_mut().zip(banks) {
        let size: u8 = if bank.mask >> 24 != 0 { 4 } else { 3 };
        *slot = TPMS_PCR_SELECTION {
            hash: bank.alg.alg_id().0,
            sizeofSelect: size,
            pcrSelect: bank.mask.to_le_bytes(),
        };
        raw.count += 1;
    }
    PcrSelectionList::try_from(raw).map_err(TpmError::cmd("building TPML_PCR_SELECTION", crate::Target::None))
}

/// cairn's view of a tss-esapi PCR selection list, banks in the list's order.
pub(crate) fn pcr_selection(list: &PcrSelectionList) -> Result<PcrSelection, TpmError> {
    let mut banks = Vec::with_capacity(list.len().min(MAX_BANKS));
    for s in list.get_selections() {
        let alg = hash_alg(s.hashing_algorithm()).ok_or_else(|| TpmError::Unexpected {
            op: "reading a PCR selection",
            detail: format!("bank {:?} is not a hash Cairn supports", s.hashing_algorithm()),
        })?;
        let raw = TPMS_PCR_SELECTION::from(*s);
        let n = usize::from(raw.sizeofSelect).min(raw.pcrSelect.len());
        let mask = raw.pcrSelect.iter().take(n).enumerate().fold(0u32, |m, (i, b)| m | (u32::from(*b) << (8 * i)));
        banks.push(BankSelection { alg, mask });
    }
    PcrSelection::new(banks).map_err(|source| TpmError::Parse { what: "TPML_PCR_SELECTION", source })
}

/// A cairn digest from a TPM digest that must be `alg`'s length.
pub(crate) fn digest(alg: HashAlg, d: &TssDigest, what: &'static str) -> Result<Digest, TpmError> {
    Digest::from_bytes(alg, d.value()).map_err(|source| TpmError::Parse { what, source })
}

/// A TPM digest from a cairn one (never longer than 64 bytes, so always accepted).
pub(crate) fn tss_digest(d: &Digest) -> Result<TssDigest, TpmError> {
    TssDigest::try_from(d.as_bytes()).map_err(TpmError::cmd("building TPM2B_DIGEST", crate::Target::None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_bank_order() {
        let sel: PcrSelection = "sha256:0,1,16+sha1:10".parse().unwrap();
        let list = selection_list(&sel).unwrap();
        let algs: Vec<_> = list.get_selections().iter().map(|s| s.hashing_algorithm()).collect();
        assert_eq!(algs, [HashingAlgorithm::Sha256, HashingAlgorithm::Sha1]);
        assert_eq!(pcr_selection(&list).unwrap(), sel);
    }

    #[test]
    fn high_pcrs_get_four_byte_bitmaps() {
        let sel: PcrSelection = "sha256:0,31".parse().unwrap();
        let list = selection_list(&sel).unwrap();
        assert_eq!(pcr_selection(&list).unwrap(), sel);
    }

    #[test]
    fn hash_names_round_trip() {
        for h in HashAlg::ALL {
            assert_eq!(hash_alg(hashing_alg(h)), Some(h));
        }
        assert_eq!(hash_alg(HashingAlgorithm::Sha3_256), None);
    }
}
