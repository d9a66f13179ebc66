//! What the quote must cover and what PCR 16 must hold.
//!
//! A quote that leaves out a PCR the verifier asked for proves nothing about it, so every PCR of
//! the mask (plus 16) must be in the accepted bank. PCR 16 is how the agent binds its NK to the
//! TPM, as Keylime does: the agent resets it and extends H(NK PEM), so a verifier that finds
//! H(0…0 ‖ H(PEM)) there knows the key it will encrypt to lives beside this TPM.

use crate::alg::{Digest, HashAlg};
use crate::pcr::{PcrIndex, PcrValues, PCR_COUNT};

use super::Failure;

/// The PCR that binds the NK.
pub const DATA_PCR: u8 = 16;

/// The PCRs of `mask` plus PCR 16, ascending.
pub(super) fn required_pcrs(mask: u32) -> impl Iterator<Item = PcrIndex> {
    let mask = mask | (1 << DATA_PCR);
    (0..PCR_COUNT).filter_map(PcrIndex::new).filter(move |p| mask & p.bit() != 0)
}

/// Reports every PCR of `mask` (and 16) that `pcrs` lacks in `bank`.
pub(super) fn check_coverage(bank: HashAlg, mask: u32, pcrs: &PcrValues, failures: &mut Vec<Failure>) {
    for pcr in required_pcrs(mask) {
        if pcrs.get(bank, pcr).is_none() {
            failures.push(Failure::PcrNotQuoted { bank, pcr });
        }
    }
}

/// The value PCR 16 holds after a reset and one extend with H(NK PEM): H(0…0 ‖ H(PEM)).
pub fn nk_binding(bank: HashAlg, nk_pem: &str) -> Digest {
    bank.extend(&bank.zero(), bank.hash(nk_pem.as_bytes()).as_bytes())
}

/// Checks PCR 16 in `bank` against the NK. A missing PCR 16 is reported by [`check_coverage`].
pub(super) fn check_nk(bank: HashAlg, nk_pem: &str, pcrs: &PcrValues, failures: &mut Vec<Failure>) {
    let Some(quoted) = PcrIndex::new(DATA_PCR).and_then(|p| pcrs.get(bank, p)) else { return };
    let expected = nk_binding(bank, nk_pem);
    if *quoted != expected {
        failures.push(Failure::NkNotBound { expected, quoted: *quoted });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pcr::PcrSelection;

    #[test]
    fn binding_is_extend_of_zero_with_hash_of_pem() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let h = HashAlg::Sha256.hash(pem.as_bytes());
        let mut data = vec![0u8; 32];
        data.extend_from_slice(h.as_bytes());
        assert_eq!(nk_binding(HashAlg::Sha256, pem), HashAlg::Sha256.hash(&data));
    }

    #[test]
    fn coverage_names_each_missing_pcr() {
        let sel: PcrSelection = "sha256:0,16+sha1:10".parse().unwrap();
        let vals = PcrValues::new(sel.clone(), sel.iter().map(|(a, _)| a.zero()).collect()).unwrap();
        let mut f = Vec::new();
        check_coverage(HashAlg::Sha256, 0b101_0000_0001, &vals, &mut f);
        let missing: Vec<u8> = f
            .iter()
            .map(|x| match x {
                Failure::PcrNotQuoted { pcr, .. } => pcr.get(),
                _ => 99,
            })
            .collect();
        assert_eq!(missing, vec![8, 10]);
    }
}
