//! ActivateCredential on credentials made offline by tpm2_makecredential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_tpm::{Ak, AkAlg, AkSpec, Ek, EkKind, TpmError};
use common::{path_str, TestTpm};

/// Splits tpm2-tools' credential file: u32 magic 0xBADCC0DE, u32 version 1, then the
/// TPM2B_ID_OBJECT and the TPM2B_ENCRYPTED_SECRET (all big-endian), returned with size prefixes.
fn split_credential_file(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(bytes[..8], [0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]);
    let rest = &bytes[8..];
    let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])) + 2;
    let (id_object, rest) = rest.split_at(n);
    let m = usize::from(u16::from_be_bytes([rest[0], rest[1]])) + 2;
    assert_eq!(rest.len(), m, "trailing bytes after TPM2B_ENCRYPTED_SECRET");
    (id_object.to_vec(), rest.to_vec())
}

/// tpm2_makecredential (no TPM involved) for `secret`, bound to `name` and encrypted to `ek`.
fn make_credential(t: &TestTpm, ek: &Ek, name: &[u8], secret: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ek_pub = t.write("ek.pub", &ek.public);
    let secret_file = t.write("secret.bin", secret);
    let blob = t.file("cred.blob");
    let name_hex = hex::encode(name);
    t.tool_ok(
        "tpm2_makecredential",
        &["-T", "none", "-u", path_str(&ek_pub), "-s", path_str(&secret_file), "-n", &name_hex, "-o", path_str(&blob)],
    );
    split_credential_file(&std::fs::read(&blob).unwrap())
}

fn activate_round_trip(t: &TestTpm, alg: AkAlg) -> (Ek, Ak) {
    let mut tpm = t.open();
    let ek = tpm.ek(EkKind::Rsa2048).unwrap();
    let ak = tpm.load_or_create_ak(AkSpec::new(alg)).unwrap();
    let secret = b"registrar's challenge, 32 bytes";
    let (blob, enc) = make_credential(t, &ek, &ak.name, secret);
    assert_eq!(tpm.activate_credential(&ak, &ek, &blob, &enc).unwrap(), secret);
    (ek, ak)
}

#[test]
fn activates_with_the_persisted_ek() {
    let t = TestTpm::with_ek_certs();
    let (ek, _) = activate_round_trip(&t, AkAlg::EccP256Ecdsa);
    assert_eq!(ek.persistent, Some(0x8101_0001));
}

#[test]
fn activates_with_a_recreated_ek() {
    let t = TestTpm::plain();
    let (ek, _) = activate_round_trip(&t, AkAlg::Rsa2048Rsassa);
    assert_eq!(ek.persistent, None);
}

#[test]
fn a_credential_for_another_name_is_refused() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let ek = tpm.ek(EkKind::Rsa2048).unwrap();
    let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
    let other = tpm.load_or_create_ak(AkSpec::new(AkAlg::Rsa2048Rsassa)).unwrap();
    let (blob, enc) = make_credential(&t, &ek, &other.name, b"not for this AK");
    let err = tpm.activate_credential(&ak, &ek, &blob, &enc).unwrap_err();
    assert!(matches!(err, TpmError::Command { op: "TPM2_ActivateCredential", .. }), "{err}");
}

#[test]
fn malformed_blobs_are_refused_before_the_tpm() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let ek = tpm.ek(EkKind::Rsa2048).unwrap();
    let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
    let (blob, enc) = make_credential(&t, &ek, &ak.name, b"secret");
    let short = &blob[..blob.len() - 1];
    assert!(matches!(tpm.activate_credential(&ak, &ek, short, &enc), Err(TpmError::Parse { .. })));
    let mut long = enc.clone();
    long.push(0);
    assert!(matches!(tpm.activate_credential(&ak, &ek, &blob, &long), Err(TpmError::Parse { .. })));
    // Nothing was left loaded: the real activation still works afterwards.
    assert_eq!(tpm.activate_credential(&ak, &ek, &blob, &enc).unwrap(), b"secret");
}
