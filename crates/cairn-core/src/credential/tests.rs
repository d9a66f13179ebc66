//! Known answers (computed independently from the spec's definitions with Python's hmac/hashlib
//! and `cryptography`) and software round trips; swtpm is the final oracle (cairn-tpm tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::agreement::{self, PrivateKey};
use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256};

use super::kdf::{hmac_parts, kdfa, kdfe};
use super::make::protect;
use super::*;
use crate::alg::HashAlg;
use crate::codec::{PutBe, Reader};
use crate::crypto::spki;
use crate::tpm::{Public, PublicKey};

fn name() -> ObjectName {
    let mut n = vec![0x00, 0x0b];
    n.extend([0xAA; 32]);
    ObjectName::parse(&n).unwrap()
}

#[test]
fn kdfa_known_answers() {
    let key: Vec<u8> = (0..32).collect();
    let h = |b: Vec<u8>| hex::encode(b);
    assert_eq!(h(kdfa(HashAlg::Sha256, &key, "STORAGE", name().as_bytes(), &[], 128).unwrap()), "0415b32b6f43896a87e7b29be8f2ac14");
    assert_eq!(
        h(kdfa(HashAlg::Sha256, &key, "INTEGRITY", &[], &[], 256).unwrap()),
        "bacf689f634ece301e1f1b15b072d9c87db6a69585db42b1a0cb8f73ebe2692e"
    );
    assert_eq!(
        h(kdfa(HashAlg::Sha256, &key, "LONG", b"u", b"v", 520).unwrap()),
        "28c31003542d6905b70dbed90a752a4bf7d2c0b9bf705bab8771d04b96411a61015b29377aa7f07299949bfdc0af12a74dbdecf9b58b46a261d7acd6304cf74e34"
    );
    assert_eq!(h(kdfa(HashAlg::Sha1, &key, "ODD", &[], &[], 20).unwrap()), "0f83f7");
    assert!(matches!(kdfa(HashAlg::Sha256, &key, "X", &[], &[], 0), Err(CredentialError::KdfLength { .. })));
    assert!(matches!(kdfa(HashAlg::Sm3_256, &key, "X", &[], &[], 8), Err(CredentialError::UnsupportedHash(_))));
}

#[test]
fn kdfe_known_answers() {
    let z = kdfe(HashAlg::Sha256, &[0x11; 32], "IDENTITY", &[0x22; 32], &[0x33; 32], 256).unwrap();
    assert_eq!(hex::encode(z), "349308f14b258cab5f67a14bfd8329ea42365fcdca2f9e7e658bc7504d5d0cb3");
    let z = kdfe(HashAlg::Sha384, &[0x11; 48], "IDENTITY", &[0x22; 48], &[0x33; 48], 384).unwrap();
    assert_eq!(
        hex::encode(z),
        "7d7147b0a398348c9b609c86403d4e69a591f729202069dbc3b399dbc22c9dd444d17b52415e1d02c1e55cc401266433"
    );
}

#[test]
fn protect_known_answer() {
    let seed: Vec<u8> = (100..132).collect();
    let id = protect(HashAlg::Sha256, 128, &seed, &name(), b"registrar secret").unwrap();
    assert_eq!(
        hex::encode(id),
        "0020fc170d703d3f668b4d4fdb9fdc4c2fab35d2f4ec58e2ec0af74b0e359a6d4d72bb7b2574250e6933b05b760abc900a0ea26c"
    );
}

#[test]
fn keylime_auth_tag_known_answer_and_comparison() {
    let uuid = "D432FBB3-D2F1-4A97-9EF7-75BD81C00000";
    let tag = keylime_auth_tag(&[1; 32], uuid);
    assert_eq!(tag, "0479f0a0bb5ce369f94ce2c8a9508c7908e4fdf70c97aaf455461d73459118b6142fca951f12cc3988621352e9bb5d81");
    assert!(auth_tag_matches(&[1; 32], uuid, &tag.to_uppercase()));
    assert!(!auth_tag_matches(&[2; 32], uuid, &tag));
    assert!(!auth_tag_matches(&[1; 32], uuid, &tag[..90]));
    assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
}

/// A TPM2B_PUBLIC shaped like the TCG default EK template (restricted decrypt, AES-128-CFB).
fn ek_public(key: &PublicKey) -> Public {
    let mut t = Vec::new();
    let attrs: u32 = 0x0003_00B2;
    match key {
        PublicKey::Rsa { n, .. } => {
            t.put_u16_be(0x0001);
            t.put_u16_be(0x000B);
            t.put_u32_be(attrs);
            t.put_tpm2b(&[0x5A; 32]);
            t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10]);
            t.put_u16_be(2048);
            t.put_u32_be(0);
            t.put_tpm2b(n);
        }
        PublicKey::Ecc { x, y, .. } => {
            t.put_u16_be(0x0023);
            t.put_u16_be(0x000B);
            t.put_u32_be(attrs);
            t.put_tpm2b(&[0x5A; 32]);
            t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10]);
            t.put_tpm2b(x);
            t.put_tpm2b(y);
        }
        PublicKey::Symmetric(_) => unreachable!(),
    }
    Public::parse_tpmt(&t).unwrap()
}

/// What TPM2_ActivateCredential does once it has the seed.
fn unprotect(seed: &[u8], name: &ObjectName, id_object: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(id_object);
    let body = r.tpm2b(MAX_ID_OBJECT, "id").unwrap();
    let mut r = Reader::new(body);
    let hmac = r.tpm2b(64, "hmac").unwrap().to_vec();
    let enc = r.rest().to_vec();
    let hk = kdfa(HashAlg::Sha256, seed, "INTEGRITY", &[], &[], 256).unwrap();
    assert_eq!(hmac_parts(HashAlg::Sha256, &hk, &[&enc, name.as_bytes()]).unwrap(), hmac, "integrity HMAC");
    let sym = kdfa(HashAlg::Sha256, seed, "STORAGE", name.as_bytes(), &[], 128).unwrap();
    let key = DecryptingKey::cfb128(UnboundCipherKey::new(&AES_128, &sym).unwrap()).unwrap();
    let mut buf = enc.clone();
    let plain = key.decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from([0u8; 16]))).unwrap();
    let mut r = Reader::new(plain);
    let cred = r.tpm2b(64, "credential").unwrap().to_vec();
    r.finish("credential").unwrap();
    cred
}

#[test]
fn rsa_credential_round_trips_through_the_private_key() {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let der = private.public_key().as_der().unwrap();
    let ek = ek_public(&spki::from_spki_der(der.as_ref()).unwrap());
    let made = make_credential(&ek, &name(), b"0123456789abcdef0123456789abcdef", &mut os_random).unwrap();
    let mut r = Reader::new(&made.encrypted_secret);
    let enc = r.tpm2b(MAX_ENCRYPTED_SECRET, "secret").unwrap();
    assert_eq!(enc.len(), 256);
    let oaep = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut out = vec![0u8; 256];
    let seed = oaep.decrypt(&OAEP_SHA256_MGF1SHA256, enc, &mut out, Some(b"IDENTITY\0")).unwrap().to_vec();
    assert_eq!(seed.len(), 32);
    assert_eq!(unprotect(&seed, &name(), &made.id_object), b"0123456789abcdef0123456789abcdef");
}

#[test]
fn ecc_credential_round_trips_through_the_private_key() {
    let ek_private = PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let point = ek_private.compute_public_key().unwrap().as_ref().to_vec();
    let ek = ek_public(&PublicKey::Ecc { curve: crate::tpm::EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..].to_vec() });
    let made = make_credential(&ek, &name(), b"ecc secret", &mut os_random).unwrap();
    let mut r = Reader::new(&made.encrypted_secret);
    let mut p = Reader::new(r.tpm2b(MAX_ENCRYPTED_SECRET, "secret").unwrap());
    let (ex, ey) = (p.tpm2b(32, "x").unwrap(), p.tpm2b(32, "y").unwrap());
    let eph = [&[4u8][..], ex, ey].concat();
    let z = agreement::agree(&ek_private, agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &eph), (), |z| Ok(z.to_vec())).unwrap();
    let seed = kdfe(HashAlg::Sha256, &z, "IDENTITY", ex, &point[1..33], 256).unwrap();
    assert_eq!(unprotect(&seed, &name(), &made.id_object), b"ecc secret");
}

#[test]
fn randomness_comes_from_the_caller() {
    let ek_private = PrivateKey::generate(&agreement::ECDH_P256).unwrap();
    let point = ek_private.compute_public_key().unwrap().as_ref().to_vec();
    let ek = ek_public(&PublicKey::Ecc { curve: crate::tpm::EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..].to_vec() });
    let mut fixed = |b: &mut [u8]| {
        b.fill(0x42);
        Ok(())
    };
    let a = make_credential(&ek, &name(), b"x", &mut fixed).unwrap();
    let b = make_credential(&ek, &name(), b"x", &mut fixed).unwrap();
    assert_eq!(a, b);
    let mut failing = |_: &mut [u8]| Err(CredentialError::Random);
    assert_eq!(make_credential(&ek, &name(), b"x", &mut failing), Err(CredentialError::Random));
}

#[test]
fn refusals_are_named() {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let der = private.public_key().as_der().unwrap();
    let key = spki::from_spki_der(der.as_ref()).unwrap();
    let ek = ek_public(&key);
    let too_big = [0u8; 33];
    assert_eq!(make_credential(&ek, &name(), &too_big, &mut os_random), Err(CredentialError::SecretTooLarge { len: 33, max: 32 }));
    let signing = Public::for_signing_key(&key, crate::tpm::SigScheme::Rsassa, HashAlg::Sha256).unwrap();
    assert_eq!(make_credential(&signing, &name(), b"x", &mut os_random), Err(CredentialError::NotAStorageKey));
    assert!(ObjectName::parse(&[0x00, 0x0b, 1, 2, 3]).is_err());
    assert!(ObjectName::parse(&[0x12, 0x34]).is_err());
    assert!(ObjectName::parse(&[0x00]).is_err());
}

#[test]
fn tpm2_tools_blob_round_trips_and_is_bounded() {
    let made = MadeCredential::from_bodies(&[1; 68], &[2; 256]);
    let blob = made.to_tpm2_tools();
    assert_eq!(&blob[..8], &[0xBA, 0xDC, 0xC0, 0xDE, 0, 0, 0, 1]);
    assert_eq!(MadeCredential::from_tpm2_tools(&blob).unwrap(), made);
    for cut in 0..blob.len() {
        assert!(MadeCredential::from_tpm2_tools(&blob[..cut]).is_err(), "cut {cut}");
    }
    let mut long = blob.clone();
    long.push(0);
    assert!(MadeCredential::from_tpm2_tools(&long).is_err());
    let mut bad = blob.clone();
    bad[0] = 0;
    assert!(MadeCredential::from_tpm2_tools(&bad).is_err());
    let mut huge = blob[..8].to_vec();
    huge.extend_from_slice(&[0x01, 0x00]);
    huge.extend(vec![0; 256]);
    assert!(matches!(MadeCredential::from_tpm2_tools(&huge), Err(crate::ParseError::TooLarge { .. })));
}
