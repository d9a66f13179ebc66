//! Chain rules the vendor vectors do not reach, on certificates generated for Cairn (see
//! `tests/data/ekcert/README.md` for how, and what `openssl verify` says of each).
#![allow(clippy::unwrap_used, missing_docs)]

use cairn_core::ekcert::{verify_chain, Certificate, EkCertError, SignatureAlgorithm, TrustStore};
use cairn_core::HashAlg;

const NOW: i64 = 1_798_761_600;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ekcert").join(name)).unwrap()
}

fn store(anchor: &str, intermediate: Option<&str>) -> TrustStore {
    let mut s = TrustStore::new();
    s.add_anchors_from_bytes(&read(anchor)).unwrap();
    if let Some(i) = intermediate {
        s.add_intermediates_from_bytes(&read(i)).unwrap();
    }
    s
}

fn check(leaf: &str, anchor: &str, intermediate: Option<&str>) -> Result<(Certificate, usize), EkCertError> {
    let c = Certificate::from_der(&read(leaf)).unwrap();
    let n = verify_chain(&c, &store(anchor, intermediate), NOW)?.path.len();
    Ok((c, n))
}

#[test]
fn rsa_pss_signatures_verify() {
    let (c, n) = check("ek-pss.der", "root.pem", None).unwrap();
    assert_eq!(n, 2);
    assert_eq!(c.signature_algorithm(), &SignatureAlgorithm::RsaPss { hash: HashAlg::Sha256, salt_len: 32 });
    let tpm = c.tpm_identity().unwrap();
    assert_eq!((tpm.manufacturer_id(), tpm.model.as_deref()), (Some(0x5445_5354), Some("cairn-test")));
}

#[test]
fn ecdsa_p384_sha384_signatures_verify() {
    let (c, _) = check("ek-p384-signed.der", "root-p384.pem", None).unwrap();
    assert_eq!(c.signature_algorithm(), &SignatureAlgorithm::Ecdsa(HashAlg::Sha384));
}

#[test]
fn a_path_longer_than_the_roots_path_length_is_refused() {
    let e = check("ek-under-mid.der", "root.pem", Some("mid.pem")).unwrap_err();
    assert!(matches!(e, EkCertError::PathLength { ref which, path_len: 0, below: 1 } if which.depth == 2), "{e}");
}

#[test]
fn an_issuer_without_ca_basic_constraints_is_refused() {
    let e = check("ek-under-notca.der", "root.pem", Some("notca.pem")).unwrap_err();
    assert!(matches!(e, EkCertError::NotACa { ref which, .. } if which.depth == 1), "{e}");
    // Even when the operator trusts it directly.
    let e = check("ek-under-notca.der", "notca.pem", None).unwrap_err();
    assert!(matches!(e, EkCertError::NotACa { .. }), "{e}");
}

#[test]
fn an_unknown_critical_extension_is_refused() {
    let e = check("ek-unknown-critical.der", "root.pem", None).unwrap_err();
    assert!(matches!(e, EkCertError::UnknownCriticalExtension { ref oid, .. } if oid == "1.2.3.4.5"), "{e}");
}

#[test]
fn another_root_does_not_chain_it() {
    // Another root (another name, another key) does not chain it.
    let e = check("ek-pss.der", "root-p384.pem", None).unwrap_err();
    assert!(matches!(e, EkCertError::Unchained { .. }), "{e}");
}
