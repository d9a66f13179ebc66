//! Fuzz target `bootstrap`.

use std::sync::OnceLock;

use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::bootstrap::{
    check_auth_tag, check_challenge_hmac, decrypt_payload, encrypt_payload, unwrap_with_nk, AuthTag, BootstrapKey,
    EncryptedPayload, KeyHalf,
};

fn nk() -> Option<&'static PrivateDecryptingKey> {
    static K: OnceLock<Option<PrivateDecryptingKey>> = OnceLock::new();
    K.get_or_init(|| PrivateDecryptingKey::generate(KeySize::Rsa2048).ok()).as_ref()
}

/// The bootstrap-key fields as an agent receives them: the input as text in every field
/// (`encrypted_key`, `auth_tag`, `payload`, `hmac`, a base64 half), and as the bytes inside a
/// base64 payload and a base64 `encrypted_key` of the node key's length, so the GCM and RSA-OAEP
/// checks run on it. None may pass with a key the input was not made with; a payload encrypted
/// from the input must come back unchanged.
pub fn bootstrap(data: &[u8]) {
    let Ok(k) = BootstrapKey::from_bytes(&[0x42; 32]) else { return };
    let text = String::from_utf8_lossy(data);
    assert!(decrypt_payload(&k, &text).is_err(), "text decrypted without being made with K");
    assert!(decrypt_payload(&k, &B64.encode(data)).is_err(), "bytes decrypted without being made with K");
    assert!(check_auth_tag(&k, "agent", &text).is_err());
    assert!(check_challenge_hmac(&k, "challenge", &text).is_err());
    let _ = AuthTag::from_hex(&text);
    let _ = KeyHalf::from_base64("v", &text);
    let _ = EncryptedPayload::from_base64(&text).map(|p| p.plaintext_len());
    if let Some(nk) = nk() {
        let _ = unwrap_with_nk(nk, &text);
        let mut sized = data.to_vec();
        sized.resize(256, 0);
        let _ = unwrap_with_nk(nk, &B64.encode(&sized));
    }
    if let Ok(sealed) = encrypt_payload(&k, data) {
        assert_eq!(decrypt_payload(&k, &sealed).ok().as_deref(), Some(data), "payload round trip");
    }
}
