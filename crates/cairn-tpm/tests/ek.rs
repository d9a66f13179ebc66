//! Endorsement keys and certificates on a swtpm manufactured by swtpm_setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_tpm::EkKind;
use common::{path_str, TestTpm};
use tss_esapi::structures::{Public, PublicBuffer};
use tss_esapi::traits::UnMarshall;

fn rsa_modulus(tpm2b_public: &[u8]) -> Vec<u8> {
    let public = Public::try_from(PublicBuffer::unmarshall(tpm2b_public).unwrap()).unwrap();
    match public {
        Public::Rsa { unique, .. } => unique.value().to_vec(),
        other => panic!("not an RSA key: {other:?}"),
    }
}

#[test]
fn persisted_rsa_ek_matches_its_certificate() {
    let t = TestTpm::with_ek_certs();
    let mut tpm = t.open();
    let ek = tpm.ek(EkKind::Rsa2048).unwrap();
    assert_eq!(ek.persistent, Some(0x8101_0001));
    let modulus = rsa_modulus(&ek.public);
    assert_eq!(modulus.len(), 256);

    let cert = tpm.ek_certificate(EkKind::Rsa2048).unwrap().expect("swtpm_setup wrote an EK cert");
    // A DER SEQUENCE with a two-byte length that covers the certificate.
    assert_eq!(cert[0..2], [0x30, 0x82]);
    let len = usize::from(u16::from_be_bytes([cert[2], cert[3]])) + 4;
    assert!(len <= cert.len(), "DER length {len} beyond {} stored bytes", cert.len());
    assert!(cert.windows(256).any(|w| w == modulus.as_slice()), "EK modulus not in the certificate");

    // The same bytes through the generic NV read.
    assert_eq!(tpm.nv_read(EkKind::Rsa2048.cert_index()).unwrap(), cert);
    drop(tpm);

    // The CA's root and issuer certificates chain to it (openssl as the independent judge).
    let der = t.write("ek.der", &cert[..len]);
    let pem = t.file("ek.pem");
    let ca = common::ca();
    let openssl = |args: &[&str]| std::process::Command::new("openssl").args(args).output().unwrap();
    assert!(openssl(&["x509", "-inform", "der", "-in", path_str(&der), "-out", path_str(&pem)]).status.success());
    let verify = openssl(&[
        "verify", "-CAfile", path_str(&ca.root_pem()), "-untrusted", path_str(&ca.issuer_pem()), path_str(&pem),
    ]);
    assert!(verify.status.success(), "{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
}

#[test]
fn ecc_eks_persisted_or_recreated() {
    let t = TestTpm::with_ek_certs();
    let mut tpm = t.open();
    // swtpm_setup persists a P-384 EK (high range) with its certificate.
    let p384 = tpm.ek(EkKind::EccP384).unwrap();
    assert_eq!(p384.persistent, Some(0x8101_0016));
    assert!(tpm.ek_certificate(EkKind::EccP384).unwrap().is_some());
    // No P-256 EK is persisted: it is created from the template, deterministically.
    let a = tpm.ek(EkKind::EccP256).unwrap();
    let b = tpm.ek(EkKind::EccP256).unwrap();
    assert_eq!(a.persistent, None);
    assert_eq!(a, b);
    assert_ne!(a.name, p384.name);
    assert_eq!(tpm.ek_certificate(EkKind::EccP256).unwrap(), None);
}

#[test]
fn recreated_rsa_ek_equals_persisted_one() {
    let t = TestTpm::with_ek_certs();
    let mut tpm = t.open();
    let persisted = tpm.ek(EkKind::Rsa2048).unwrap();
    tpm.evict(0x8101_0001).unwrap();
    let recreated = tpm.ek(EkKind::Rsa2048).unwrap();
    assert_eq!(recreated.persistent, None);
    assert_eq!(recreated.public, persisted.public);
    assert_eq!(recreated.name, persisted.name);
}

#[test]
fn missing_nv_index_is_an_error_naming_it() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    assert_eq!(tpm.ek_certificate(EkKind::Rsa2048).unwrap(), None);
    let err = tpm.nv_read(0x01c0_0002).unwrap_err().to_string();
    assert!(err.contains("0x01c00002"), "{err}");
}
