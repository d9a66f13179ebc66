//! cairn-core's MakeCredential and EK certificate checks against a real TPM (swtpm): what the
//! registrar makes, the TPM — through cairn-tpm and through tpm2-tools — activates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_core::credential::{make_credential, os_random, MadeCredential, ObjectName};
use cairn_core::ekcert::{ek_matches, verify_chain, Certificate, EkCertError, TrustStore};
use cairn_core::tpm::Public;
use cairn_tpm::{Ak, AkAlg, AkSpec, Ek, EkKind, TpmError};
use common::{ca, path_str, TestTpm};

const SECRET: &[u8; 32] = b"a 32-byte registrar challenge!!!";

fn made_for(ek: &Ek, ak_name: &[u8], secret: &[u8]) -> MadeCredential {
    let public = Public::parse_tpm2b(&ek.public).unwrap();
    make_credential(&public, &ObjectName::parse(ak_name).unwrap(), secret, &mut os_random).unwrap()
}

fn round_trip(t: &TestTpm, kind: EkKind, alg: AkAlg) -> (Ek, Ak) {
    let mut tpm = t.open();
    let ek = tpm.ek(kind).unwrap();
    let ak = tpm.load_or_create_ak(AkSpec::new(alg)).unwrap();
    let made = made_for(&ek, &ak.name, SECRET);
    let got = tpm.activate_credential(&ak, &ek, &made.id_object, &made.encrypted_secret).unwrap();
    assert_eq!(got, SECRET);
    (ek, ak)
}

#[test]
fn the_tpm_activates_a_credential_made_for_its_rsa_ek() {
    let t = TestTpm::with_ek_certs();
    let (ek, _) = round_trip(&t, EkKind::Rsa2048, AkAlg::EccP256Ecdsa);
    assert_eq!(ek.persistent, Some(0x8101_0001));
    round_trip(&t, EkKind::Rsa2048, AkAlg::Rsa2048Rsassa);
}

#[test]
fn the_tpm_activates_a_credential_made_for_its_ecc_ek() {
    let t = TestTpm::plain();
    let (ek, _) = round_trip(&t, EkKind::EccP256, AkAlg::EccP256Ecdsa);
    assert_eq!(Public::parse_tpm2b(&ek.public).unwrap().key_name(), "ecc256");
}

#[test]
fn a_credential_for_another_ak_does_not_activate() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    for kind in [EkKind::Rsa2048, EkKind::EccP256] {
        let ek = tpm.ek(kind).unwrap();
        let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
        let other = tpm.load_or_create_ak(AkSpec::new(AkAlg::Rsa2048Rsassa)).unwrap();
        let made = made_for(&ek, &other.name, SECRET);
        let err = tpm.activate_credential(&ak, &ek, &made.id_object, &made.encrypted_secret).unwrap_err();
        assert!(matches!(err, TpmError::Command { op: "TPM2_ActivateCredential", .. }), "{kind}: {err}");
        // The right AK does recover it.
        let got = tpm.activate_credential(&other, &ek, &made.id_object, &made.encrypted_secret).unwrap();
        assert_eq!(got, SECRET, "{kind}");
    }
}

#[test]
fn tpm2_activatecredential_activates_our_blob() {
    let t = TestTpm::with_ek_certs();
    let (ek, ak) = {
        let mut tpm = t.open();
        let ek = tpm.ek(EkKind::Rsa2048).unwrap();
        let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::Rsa2048Rsassa)).unwrap();
        (ek, ak)
    }; // our context is dropped: swtpm serves one client
    let blob = made_for(&ek, &ak.name, SECRET).to_tpm2_tools();
    let blob_file = t.write("cred.blob", &blob);
    let session = t.file("session.ctx");
    let out = t.file("out.secret");
    t.tool_ok("tpm2_startauthsession", &["--policy-session", "-S", path_str(&session)]);
    t.tool_ok("tpm2_policysecret", &["-S", path_str(&session), "-c", "e"]);
    let ak_handle = format!("{:#x}", ak.handle);
    let ek_handle = format!("{:#x}", ek.persistent.unwrap());
    let auth = format!("session:{}", path_str(&session));
    let args = ["-c", &ak_handle, "-C", &ek_handle, "-i", path_str(&blob_file), "-o", path_str(&out), "-P", &auth];
    let result = t.tool("tpm2_activatecredential", &args);
    t.tool_ok("tpm2_flushcontext", &[path_str(&session)]);
    assert!(result.status.success(), "tpm2_activatecredential: {}", String::from_utf8_lossy(&result.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), SECRET);
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn the_live_ek_certificate_chains_to_the_ca_and_certifies_the_live_ek() {
    let t = TestTpm::with_ek_certs();
    let mut tpm = t.open();
    let ek = tpm.ek(EkKind::Rsa2048).unwrap();
    let nv = tpm.ek_certificate(EkKind::Rsa2048).unwrap().expect("swtpm_setup wrote an EK certificate");
    let cert = Certificate::from_der(&nv).unwrap();
    let mut store = TrustStore::new();
    store.add_anchors_from_bytes(&std::fs::read(ca().root_pem()).unwrap()).unwrap();
    store.add_intermediates_from_bytes(&std::fs::read(ca().issuer_pem()).unwrap()).unwrap();
    let chain = verify_chain(&cert, &store, now()).unwrap();
    assert_eq!(chain.path.len(), 3);
    assert_eq!(chain.tpm.unwrap().model.as_deref(), Some("swtpm"));
    let public = Public::parse_tpm2b(&ek.public).unwrap();
    ek_matches(&cert, &public).unwrap();
    // Another TPM's EK is not the one this certificate certifies.
    let other = TestTpm::plain();
    let other_ek = other.open().ek(EkKind::Rsa2048).unwrap();
    let other_public = Public::parse_tpm2b(&other_ek.public).unwrap();
    assert!(matches!(ek_matches(&cert, &other_public), Err(EkCertError::KeyMismatch { .. })));
}
