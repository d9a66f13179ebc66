//! Property: the certificate parser and chain builder return errors, never panic, on arbitrary
//! bytes and on mutated real EK certificates.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use cairn_core::credential::MadeCredential;
use cairn_core::ekcert::{certificates_from_bytes, verify_chain, Certificate, TrustStore};
use proptest::prelude::*;

const NOW: i64 = 1_798_761_600;

fn real(rel: &str) -> Vec<u8> {
    common::testdata(rel).map(|p| std::fs::read(p).unwrap()).unwrap_or_default()
}

fn exercise(bytes: &[u8], store: &TrustStore) {
    if let Ok(c) = Certificate::from_der(bytes) {
        let _ = c.public_key();
        let _ = c.subject().to_string();
        let _ = verify_chain(&c, store, NOW);
    }
    let _ = certificates_from_bytes(bytes);
    let _ = MadeCredential::from_tpm2_tools(bytes);
}

fn store() -> TrustStore {
    let mut s = TrustStore::new();
    let root = real("ekcerts/swtpm-A/localca-root.pem");
    let issuer = real("ekcerts/swtpm-A/localca-issuer.pem");
    let stm = real("ekcerts/stmicro-ecc/STM_ECC_01I.pem");
    for b in [root, stm] {
        if !b.is_empty() {
            s.add_anchors_from_bytes(&b).unwrap();
        }
    }
    if !issuer.is_empty() {
        s.add_intermediates_from_bytes(&issuer).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        exercise(&bytes, &TrustStore::new());
    }

    #[test]
    fn mutated_ek_certificates_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let files = ["ekcerts/swtpm-A/ek-rsa2048.der", "ekcerts/stmicro-ecc/st-ecc-ek.der", "ekcerts/swtpm-A/ek-ecc-nistp384.der"];
        let mut b = real(files[which]);
        if b.is_empty() {
            return Ok(());
        }
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] = *v;
        }
        let store = store();
        exercise(&b, &store);
        let n = cut.index(b.len());
        exercise(&b[..n], &store);
    }
}

#[test]
fn unmodified_certificates_still_verify_in_the_property_store() {
    let leaf = real("ekcerts/swtpm-A/ek-rsa2048.der");
    if leaf.is_empty() {
        return;
    }
    assert!(verify_chain(&Certificate::from_der(&leaf).unwrap(), &store(), NOW).is_ok());
}
