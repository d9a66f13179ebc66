//! PCR extend, reset and read, checked against tpm2_pcrread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_core::pcr::{PcrIndex, PcrSelection};
use cairn_core::HashAlg;
use common::{parse_pcrread, TestTpm};

#[test]
fn extend_reset_and_read_agree_with_tpm2_pcrread() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let pcr16 = PcrIndex::new(16).unwrap();
    let pcr23 = PcrIndex::new(23).unwrap();
    let digests: Vec<_> = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
        .into_iter()
        .map(|h| h.hash(b"event"))
        .collect();
    tpm.pcr_extend(pcr16, &digests).unwrap();
    tpm.pcr_extend(pcr16, &digests[1..2]).unwrap();
    tpm.pcr_extend(pcr23, &digests[1..2]).unwrap();

    // 4 banks x 4 PCRs = 16 values: more than one TPM2_PCR_Read can return.
    let sel: PcrSelection = "sha1:0,10,16,23+sha256:0,10,16,23+sha384:0,10,16,23+sha512:0,10,16,23".parse().unwrap();
    let values = tpm.pcr_read(&sel).unwrap();
    assert_eq!(values.values().len(), 16);
    let once = |h: HashAlg| h.extend(&h.zero(), h.hash(b"event").as_bytes());
    assert_eq!(values.get(HashAlg::Sha1, pcr16), Some(&once(HashAlg::Sha1)));
    assert_eq!(values.get(HashAlg::Sha512, pcr16), Some(&once(HashAlg::Sha512)));
    let twice = HashAlg::Sha256.extend(&once(HashAlg::Sha256), digests[1].as_bytes());
    assert_eq!(values.get(HashAlg::Sha256, pcr16), Some(&twice));
    assert_eq!(values.get(HashAlg::Sha256, pcr23), Some(&once(HashAlg::Sha256)));
    assert_eq!(values.get(HashAlg::Sha1, pcr23), Some(&HashAlg::Sha1.zero()));
    drop(tpm);

    let text = t.tool_ok("tpm2_pcrread", &[&sel.to_string()]);
    let theirs = parse_pcrread(&text);
    assert_eq!(theirs.len(), 16, "{text}");
    for (bank, pcr, hex) in &theirs {
        let alg = HashAlg::from_name(bank).unwrap();
        let ours = values.get(alg, PcrIndex::new(*pcr).unwrap()).unwrap();
        assert_eq!(&ours.to_hex(), hex, "{bank}:{pcr}");
    }

    let mut tpm = t.open();
    tpm.pcr_reset(pcr16).unwrap();
    tpm.pcr_reset(pcr23).unwrap();
    let after = tpm.pcr_read(&sel).unwrap();
    for alg in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        assert_eq!(after.get(alg, pcr16), Some(&alg.zero()));
        assert_eq!(after.get(alg, pcr23), Some(&alg.zero()));
    }
    // A PCR that is not resettable at locality 0 refuses, naming the PCR.
    let err = tpm.pcr_reset(PcrIndex::new(10).unwrap()).unwrap_err().to_string();
    assert!(err.contains("PCR 10"), "{err}");
}

#[test]
fn read_keeps_the_callers_bank_order() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let sel: PcrSelection = "sha256:1+sha1:1,2".parse().unwrap();
    let values = tpm.pcr_read(&sel).unwrap();
    let algs: Vec<_> = values.iter().map(|(a, p, _)| (a, p.get())).collect();
    assert_eq!(algs, [(HashAlg::Sha256, 1), (HashAlg::Sha1, 1), (HashAlg::Sha1, 2)]);
}

#[test]
fn unallocated_bank_is_an_error_not_a_hang() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let sel: PcrSelection = "sm3_256:0".parse().unwrap();
    let err = tpm.pcr_read(&sel).unwrap_err().to_string();
    assert!(err.contains("sm3_256:0"), "{err}");
}
