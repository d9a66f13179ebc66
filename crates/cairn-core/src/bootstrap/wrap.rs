//! Carrying a half to the agent: RSA-OAEP to its node key (NK).
//!
//! Keylime's choice, kept for compatibility: OAEP with SHA-1 and MGF1-SHA-1, no label; the
//! ciphertext travels as standard base64 in `encrypted_key`. (SHA-1 is not a weakness here: OAEP
//! needs no collision resistance.) aws-lc-rs does both sides; the agent's NK is an aws-lc-rs
//! [`PrivateDecryptingKey`].

use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::BootstrapError;
use super::key::{KeyHalf, KEY_LEN};
use crate::crypto::spki::pem_decode_all;

/// Encrypts `half` to the node key `nk_public_pem` (SubjectPublicKeyInfo PEM, as
/// `GET /keys/pubkey` serves it); returns the `encrypted_key` text.
pub fn wrap_for_nk(nk_public_pem: &str, half: &KeyHalf) -> Result<String, BootstrapError> {
    let der = match pem_decode_all(nk_public_pem, "PUBLIC KEY") {
        Ok(blocks) => match <[Vec<u8>; 1]>::try_from(blocks) {
            Ok([der]) => der,
            Err(blocks) => return Err(BootstrapError::NodeKey(format!("{} PUBLIC KEY blocks, expected one", blocks.len()))),
        },
        Err(e) => return Err(BootstrapError::NodeKey(e.to_string())),
    };
    let key = PublicEncryptingKey::from_der(&der).map_err(|e| BootstrapError::NodeKey(format!("not an RSA public key ({e})")))?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| BootstrapError::NodeKey("unusable for RSA-OAEP".into()))?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let sealed = key
        .encrypt(&OAEP_SHA1_MGF1SHA1, half.as_bytes(), &mut out, None)
        .map_err(|_| BootstrapError::Encrypt("encrypted_key"))?;
    Ok(B64.encode(sealed))
}

/// Decrypts an `encrypted_key` with the node key; the result must be a 32-byte half.
pub fn unwrap_with_nk(nk: &PrivateDecryptingKey, encrypted_key: &str) -> Result<KeyHalf, BootstrapError> {
    let field = "encrypted_key";
    let sealed = B64.decode(encrypted_key.trim()).map_err(|e| BootstrapError::Base64 { field, detail: e.to_string() })?;
    if sealed.len() != nk.key_size_bytes() {
        return Err(BootstrapError::Length { field, len: sealed.len(), expected: nk.key_size_bytes() });
    }
    let key = OaepPrivateDecryptingKey::new(nk.clone()).map_err(|_| BootstrapError::Unwrap)?;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let plain = key.decrypt(&OAEP_SHA1_MGF1SHA1, &sealed, &mut out, None).map_err(|_| BootstrapError::Unwrap)?;
    if plain.len() != KEY_LEN {
        return Err(BootstrapError::Length { field: "encrypted_key (decrypted)", len: plain.len(), expected: KEY_LEN });
    }
    KeyHalf::from_bytes(field, plain)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bootstrap::{split, BootstrapKey};
    use crate::crypto::spki::pem_encode;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use std::sync::OnceLock;

    fn nk() -> &'static PrivateDecryptingKey {
        static K: OnceLock<PrivateDecryptingKey> = OnceLock::new();
        K.get_or_init(|| PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap())
    }

    fn pem(key: &PrivateDecryptingKey) -> String {
        pem_encode("PUBLIC KEY", key.public_key().as_der().unwrap().as_ref())
    }

    #[test]
    fn a_wrapped_half_unwraps_only_with_its_node_key() {
        let (u, _) = split(&BootstrapKey::generate().unwrap()).unwrap();
        let wrapped = wrap_for_nk(&pem(nk()), &u).unwrap();
        assert_eq!(B64.decode(&wrapped).unwrap().len(), 256);
        assert_eq!(unwrap_with_nk(nk(), &wrapped).unwrap().as_bytes(), u.as_bytes());
        // OAEP is randomized.
        assert_ne!(wrap_for_nk(&pem(nk()), &u).unwrap(), wrapped);
        let other = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        assert_eq!(unwrap_with_nk(&other, &wrapped).unwrap_err(), BootstrapError::Unwrap);
        let mut raw = B64.decode(&wrapped).unwrap();
        raw[100] ^= 1;
        assert_eq!(unwrap_with_nk(nk(), &B64.encode(&raw)).unwrap_err(), BootstrapError::Unwrap);
    }

    #[test]
    fn bad_encrypted_keys_and_node_keys_are_named() {
        assert!(matches!(unwrap_with_nk(nk(), "@@"), Err(BootstrapError::Base64 { field: "encrypted_key", .. })));
        assert_eq!(
            unwrap_with_nk(nk(), "AAAA").unwrap_err(),
            BootstrapError::Length { field: "encrypted_key", len: 3, expected: 256 }
        );
        // A correctly wrapped value that is not 32 bytes long is not a half.
        let key = OaepPublicEncryptingKey::new(nk().public_key()).unwrap();
        let mut out = vec![0u8; 256];
        let sealed = key.encrypt(&OAEP_SHA1_MGF1SHA1, &[1; 16], &mut out, None).unwrap();
        assert_eq!(
            unwrap_with_nk(nk(), &B64.encode(sealed)).unwrap_err(),
            BootstrapError::Length { field: "encrypted_key (decrypted)", len: 16, expected: 32 }
        );
        let (u, _) = split(&BootstrapKey::generate().unwrap()).unwrap();
        assert!(matches!(wrap_for_nk("hello", &u), Err(BootstrapError::NodeKey(_))));
        let ec = crate::crypto::spki::to_spki_der(&crate::tpm::PublicKey::Ecc {
            curve: crate::tpm::EccCurve::NistP256,
            x: vec![1; 32],
            y: vec![2; 32],
        })
        .unwrap();
        let e = wrap_for_nk(&pem_encode("PUBLIC KEY", &ec), &u).unwrap_err();
        assert!(matches!(e, BootstrapError::NodeKey(ref m) if m.contains("not an RSA public key")), "{e}");
        let two = format!("{}{}", pem(nk()), pem(nk()));
        assert!(matches!(wrap_for_nk(&two, &u), Err(BootstrapError::NodeKey(ref m)) if m.contains("2 PUBLIC KEY blocks")));
    }

    /// The `openssl` command, as Keylime's (OpenSSL-backed) tenant would, encrypts a half with
    /// OAEP SHA-1 to the public key; the agent side decrypts it.
    #[test]
    fn a_half_encrypted_by_openssl_unwraps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nk.pem"), pem(nk())).unwrap();
        let half: Vec<u8> = (100u8..132).collect();
        std::fs::write(dir.path().join("half"), &half).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkeyutl", "-encrypt", "-pubin", "-inkey", "nk.pem", "-in", "half", "-out", "sealed"])
            .args(["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1"])
            .current_dir(dir.path())
            .output()
            .expect("the openssl command");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let sealed = std::fs::read(dir.path().join("sealed")).unwrap();
        assert_eq!(unwrap_with_nk(nk(), &B64.encode(sealed)).unwrap().as_bytes().as_slice(), half.as_slice());

        // And the other way: what the tenant and verifier side wraps, openssl decrypts with the NK.
        std::fs::write(dir.path().join("nk.der"), nk().as_der().unwrap().as_ref()).unwrap();
        let u = KeyHalf::from_bytes("u", &half).unwrap();
        std::fs::write(dir.path().join("wrapped"), B64.decode(wrap_for_nk(&pem(nk()), &u).unwrap()).unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", "nk.der", "-in", "wrapped"])
            .args(["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1"])
            .current_dir(dir.path())
            .output()
            .expect("the openssl command");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, half);
    }
}
