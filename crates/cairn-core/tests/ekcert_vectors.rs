//! EK certificate chains against the outcomes openssl 3.0 recorded in `ekcerts/*/expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use cairn_core::ekcert::{ek_matches, verify_chain, verify_chain_with, Certificate, EkCertError, TrustStore, VerifyOptions};
use cairn_core::tpm::{Public, PublicKey, SigScheme};
use cairn_core::HashAlg;
use common::testdata;
use serde_json::Value;

/// 2027-01-01T00:00:00Z: after every vector's notBefore, before every notAfter.
const NOW: i64 = 1_798_761_600;

fn load(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

fn cert(dir: &Path, file: &str) -> Certificate {
    Certificate::from_der(&load(dir, file)).unwrap()
}

fn names(case: &Value, key: &str) -> Vec<String> {
    case[key].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

fn store_for(dir: &Path, case: &Value) -> TrustStore {
    let mut store = TrustStore::new();
    for f in names(case, "trusted") {
        assert_eq!(store.add_anchors_from_bytes(&load(dir, &f)).unwrap(), 1, "{f}");
    }
    for f in names(case, "untrusted") {
        assert_eq!(store.add_intermediates_from_bytes(&load(dir, &f)).unwrap(), 1, "{f}");
    }
    store
}

/// Runs every case of one directory; returns how many ran.
fn run_dir(rel: &str) -> usize {
    let Some(dir) = testdata(rel) else { return 0 };
    let expected: Value = serde_json::from_slice(&load(&dir, "expected.json")).unwrap();
    let mut ran = 0;
    for case in expected["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let want = case["expected"].as_str().unwrap();
        assert_eq!(case["result"].as_str(), Some(want), "{id}: the recorded tool result differs from the expectation");
        match case["check"].as_str().unwrap() {
            "openssl_verify" => {
                let leaf = cert(&dir, case["leaf"].as_str().unwrap());
                let store = store_for(&dir, case);
                let opts = VerifyOptions { require_self_signed_root: case["partial"] != Value::Bool(true) };
                let got = verify_chain_with(&leaf, &store, NOW, opts);
                match want {
                    "valid" => {
                        let info = got.unwrap_or_else(|e| panic!("{id}: {e}"));
                        assert_eq!(info.path.first().unwrap().serial, leaf.serial_hex(), "{id}");
                    }
                    "invalid" => assert!(matches!(got, Err(EkCertError::Unchained { .. })), "{id}: {got:?}"),
                    other => panic!("{id}: unknown expectation {other}"),
                }
            }
            "strict_der_parse" => {
                assert_eq!(want, "parses");
                let c = cert(&dir, case["cert"].as_str().unwrap());
                assert_eq!(c.padding(), 0, "{id}");
            }
            "key_match" => {
                let c = cert(&dir, case["cert"].as_str().unwrap());
                let ek = Public::parse_tpm2b(&load(&dir, case["tpm_public"].as_str().unwrap())).unwrap();
                assert_eq!(want, "match");
                ek_matches(&c, &ek).unwrap_or_else(|e| panic!("{id}: {e}"));
            }
            other => panic!("{id}: unknown check {other}"),
        }
        ran += 1;
    }
    ran
}

#[test]
fn swtpm_a_cases_give_openssls_results() {
    let ran = run_dir("ekcerts/swtpm-A");
    assert!(ran == 0 || ran == 5, "ran {ran}");
}

#[test]
fn stmicro_cases_give_openssls_results() {
    let ran = run_dir("ekcerts/stmicro-ecc");
    assert!(ran == 0 || ran == 5, "ran {ran}");
}

#[test]
fn certificate_fields_match_openssls_reading() {
    for rel in ["ekcerts/swtpm-A", "ekcerts/stmicro-ecc"] {
        let Some(dir) = testdata(rel) else { return };
        let expected: Value = serde_json::from_slice(&load(&dir, "expected.json")).unwrap();
        for (file, meta) in expected["files"].as_object().unwrap() {
            let Some(info) = meta.get("certificate") else { continue };
            let bytes = load(&dir, file);
            let certs = cairn_core::ekcert::certificates_from_bytes(&bytes).unwrap();
            let [c] = &certs[..] else { panic!("{file}: {} certificates", certs.len()) };
            assert_eq!(c.subject().to_string(), info["subject"].as_str().unwrap(), "{file}");
            assert_eq!(c.issuer().to_string(), info["issuer"].as_str().unwrap(), "{file}");
            assert_eq!(c.serial_hex(), info["serial"].as_str().unwrap(), "{file}");
        }
    }
}

#[test]
fn tpm_fields_and_purpose_are_read_from_the_san() {
    let Some(dir) = testdata("ekcerts/stmicro-ecc") else { return };
    let c = cert(&dir, "st-ecc-ek.der");
    let tpm = c.tpm_identity().unwrap();
    assert_eq!(tpm.manufacturer.as_deref(), Some("id:53544D20"));
    assert_eq!(tpm.manufacturer_id(), Some(0x5354_4D20));
    assert_eq!(tpm.model.as_deref(), Some("ST33HTPHAHB4"));
    assert_eq!(tpm.version.as_deref(), Some("id:00490004"));
    assert_eq!(c.extended_key_usage(), ["2.23.133.8.1"]);
    assert!(c.subject().is_empty());
    assert_eq!(c.not_after(), 1_848_182_400);
    let Some(dir) = testdata("ekcerts/swtpm-A") else { return };
    let c = cert(&dir, "ek-rsa2048.der");
    assert_eq!(c.tpm_identity().unwrap().model.as_deref(), Some("swtpm"));
    assert_eq!(c.not_before(), 1_795_347_433);
    assert_eq!(c.not_after(), 253_402_300_799);
}

fn swtpm_store(dir: &Path) -> TrustStore {
    let mut store = TrustStore::new();
    store.add_anchors_from_bytes(&load(dir, "localca-root.pem")).unwrap();
    store.add_intermediates_from_bytes(&load(dir, "localca-issuer.pem")).unwrap();
    store
}

#[test]
fn expired_and_not_yet_valid_chains_are_refused_by_name() {
    let Some(stm) = testdata("ekcerts/stmicro-ecc") else { return };
    let leaf = cert(&stm, "st-ecc-ek.der");
    let mut store = TrustStore::new();
    store.add_anchors_from_bytes(&load(&stm, "STM_ECC_01I.pem")).unwrap();
    assert!(verify_chain(&leaf, &store, NOW).is_ok());
    let after = 1_848_182_400 + 1;
    match verify_chain(&leaf, &store, after) {
        Err(EkCertError::Expired { which, not_after, .. }) => {
            assert_eq!((which.depth, not_after), (0, 1_848_182_400));
        }
        other => panic!("{other:?}"),
    }
    let Some(sw) = testdata("ekcerts/swtpm-A") else { return };
    let leaf = cert(&sw, "ek-rsa2048.der");
    let before = 1_795_347_433 - 1;
    assert!(matches!(verify_chain(&leaf, &swtpm_store(&sw), before), Err(EkCertError::NotYetValid { .. })));
}

#[test]
fn a_forged_signature_is_refused_as_bad_signature() {
    let Some(dir) = testdata("ekcerts/swtpm-A") else { return };
    let mut der = load(&dir, "ek-rsa2048.der");
    let last = der.len() - 1;
    der[last] ^= 1;
    let leaf = Certificate::from_der(&der).unwrap();
    let got = verify_chain(&leaf, &swtpm_store(&dir), NOW);
    assert!(matches!(got, Err(EkCertError::BadSignature { ref which, .. }) if which.depth == 0), "{got:?}");
}

#[test]
fn a_leaf_used_as_issuer_is_not_a_ca() {
    // The platform certificate and the EK certificate share an issuer; make the EK certificate
    // an anchor and present a certificate "issued" by it: refused because it is not a CA.
    let Some(dir) = testdata("ekcerts/swtpm-A") else { return };
    let leaf = cert(&dir, "ek-rsa2048.der");
    let mut store = TrustStore::new();
    store.add_anchor(leaf.clone());
    // The EK certificate itself, placed in the store, is trusted as is (partial chain).
    assert_eq!(verify_chain(&leaf, &store, NOW).unwrap().path.len(), 1);
    let strict = VerifyOptions { require_self_signed_root: true };
    assert!(matches!(verify_chain_with(&leaf, &store, NOW, strict), Err(EkCertError::Unchained { .. })));
}

#[test]
fn nv_padding_is_tolerated_and_reported_other_trailing_bytes_are_not() {
    let Some(dir) = testdata("ekcerts/swtpm-A") else { return };
    let der = load(&dir, "ek-rsa2048.der");
    for pad in [0x00u8, 0xFF] {
        let mut padded = der.clone();
        padded.extend(std::iter::repeat_n(pad, 200));
        let c = Certificate::from_der(&padded).unwrap();
        assert_eq!((c.padding(), c.der()), (200, &der[..]));
        assert!(verify_chain(&c, &swtpm_store(&dir), NOW).is_ok());
    }
    let mut junk = der.clone();
    junk.extend_from_slice(&[0, 0, 1]);
    assert!(matches!(Certificate::from_der(&junk), Err(cairn_core::ParseError::TrailingData { .. })));
}

#[test]
fn the_ek_certificate_does_not_match_another_key() {
    let Some(dir) = testdata("ekcerts/swtpm-A") else { return };
    let ek = Public::parse_tpm2b(&load(&dir, "ek-rsa2048.pub")).unwrap();
    let ecc = cert(&dir, "ek-ecc-nistp384.der");
    assert!(matches!(ek_matches(&ecc, &ek), Err(EkCertError::KeyMismatch { .. })));
    // Same modulus, one bit flipped, in another public area: refused.
    let rsa = cert(&dir, "ek-rsa2048.der");
    let PublicKey::Rsa { mut n, e } = ek.key.clone() else { panic!("RSA EK") };
    n[100] ^= 0x10;
    let other = Public::for_signing_key(&PublicKey::Rsa { n, e }, SigScheme::Rsassa, HashAlg::Sha256).unwrap();
    let err = ek_matches(&rsa, &other).unwrap_err();
    assert!(err.to_string().contains("rsa2048 n=91b7161004886a68"), "{err}");
    // swtpm certifies the EK key in its platform certificate too.
    ek_matches(&cert(&dir, "platform-cert.der"), &ek).unwrap();
}

#[test]
fn every_truncation_of_a_real_certificate_fails_cleanly() {
    let Some(dir) = testdata("ekcerts/stmicro-ecc") else { return };
    let der = load(&dir, "st-ecc-ek.der");
    for cut in 0..der.len() {
        assert!(Certificate::from_der(&der[..cut]).is_err(), "cut at {cut}");
    }
}
