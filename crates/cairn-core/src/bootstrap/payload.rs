//! The payload: AES-256-GCM under K, in Keylime's framing.
//!
//! On the wire a payload is standard base64 of `IV (16 bytes) ‖ ciphertext ‖ GCM tag (16 bytes)`,
//! with no associated data. The 16-byte IV is Keylime's choice (GCM's usual nonce is 12 bytes; a
//! 16-byte IV is hashed into the first counter block, as GCM specifies for any other length), so
//! the cipher is RustCrypto's `aes-gcm` with a 16-byte nonce size: aws-lc-rs only takes 12-byte
//! nonces. A fresh random IV is drawn for every encryption.

use aes_gcm::aead::Aead;
use aes_gcm::aes::cipher::consts::U16;
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit, Nonce};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::error::BootstrapError;
use super::key::BootstrapKey;

/// Length of the payload IV (Keylime's `AES_BLOCK_SIZE`).
pub const PAYLOAD_IV_LEN: usize = 16;
/// Length of the payload's GCM tag.
pub const PAYLOAD_TAG_LEN: usize = 16;

/// AES-256-GCM with a 16-byte IV.
type PayloadCipher = AesGcm<Aes256, U16>;

/// An encrypted payload, its framing checked: at least an IV and a tag.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedPayload {
    bytes: Vec<u8>,
}

impl EncryptedPayload {
    /// From the wire's base64 text (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<EncryptedPayload, BootstrapError> {
        let bytes = B64.decode(text.trim()).map_err(|e| BootstrapError::Base64 { field: "payload", detail: e.to_string() })?;
        EncryptedPayload::from_bytes(bytes)
    }

    /// From `IV ‖ ciphertext ‖ tag`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<EncryptedPayload, BootstrapError> {
        let min = PAYLOAD_IV_LEN + PAYLOAD_TAG_LEN;
        if bytes.len() < min {
            return Err(BootstrapError::PayloadTooShort { len: bytes.len(), min });
        }
        Ok(EncryptedPayload { bytes })
    }

    /// The wire's base64 text.
    pub fn to_base64(&self) -> String {
        B64.encode(&self.bytes)
    }

    /// Length of the plaintext it holds.
    pub fn plaintext_len(&self) -> usize {
        self.bytes.len().saturating_sub(PAYLOAD_IV_LEN + PAYLOAD_TAG_LEN)
    }

    /// Decrypts and authenticates with K.
    pub fn decrypt(&self, k: &BootstrapKey) -> Result<Vec<u8>, BootstrapError> {
        let (iv, sealed) = self.bytes.split_at_checked(PAYLOAD_IV_LEN).ok_or(BootstrapError::PayloadTooShort {
            len: self.bytes.len(),
            min: PAYLOAD_IV_LEN + PAYLOAD_TAG_LEN,
        })?;
        let iv = Nonce::<U16>::try_from(iv).map_err(|_| BootstrapError::PayloadTag)?;
        cipher(k)?.decrypt(&iv, sealed).map_err(|_| BootstrapError::PayloadTag)
    }
}

impl std::fmt::Debug for EncryptedPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedPayload").field("len", &self.bytes.len()).finish_non_exhaustive()
    }
}

/// Encrypts `plaintext` under K with a fresh random IV; returns the wire's base64 text.
pub fn encrypt_payload(k: &BootstrapKey, plaintext: &[u8]) -> Result<String, BootstrapError> {
    let mut iv = [0u8; PAYLOAD_IV_LEN];
    SystemRandom::new().fill(&mut iv).map_err(|_| BootstrapError::Random)?;
    Ok(seal(k, &iv, plaintext)?.to_base64())
}

/// Decrypts the wire's base64 text with K.
pub fn decrypt_payload(k: &BootstrapKey, b64: &str) -> Result<Vec<u8>, BootstrapError> {
    EncryptedPayload::from_base64(b64)?.decrypt(k)
}

/// `IV ‖ AES-256-GCM(K, IV, plaintext) ‖ tag`.
fn seal(k: &BootstrapKey, iv: &[u8; PAYLOAD_IV_LEN], plaintext: &[u8]) -> Result<EncryptedPayload, BootstrapError> {
    let sealed = cipher(k)?.encrypt(&Nonce::<U16>::from(*iv), plaintext).map_err(|_| BootstrapError::Encrypt("payload"))?;
    let mut bytes = Vec::with_capacity(PAYLOAD_IV_LEN + sealed.len());
    bytes.extend_from_slice(iv);
    bytes.extend_from_slice(&sealed);
    Ok(EncryptedPayload { bytes })
}

fn cipher(k: &BootstrapKey) -> Result<PayloadCipher, BootstrapError> {
    // K is always 32 bytes, AES-256's key length: this cannot fail.
    PayloadCipher::new_from_slice(k.as_bytes()).map_err(|_| BootstrapError::Length {
        field: "K",
        len: k.as_bytes().len(),
        expected: 32,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// K = 00 01 … 1f, IV = a0 a1 … af: Keylime's `crypto.encrypt` (Python `cryptography`,
    /// `modes.GCM(iv)` with a 16-byte IV) made these with that IV fixed.
    fn vector_key() -> BootstrapKey {
        BootstrapKey::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
    }
    const IV: [u8; 16] = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf];
    const KEYLIME_PAYLOAD: &str = "oKGio6SlpqeoqaqrrK2ur2HGWtBxoKhWs/9m3YJ16ZrWu54LbnBmn7fdZDDZVnAN";
    const KEYLIME_EMPTY: &str = "oKGio6SlpqeoqaqrrK2urwIvhBxwK2awvsgRH2feIh0=";

    #[test]
    fn keylime_vectors_decrypt_and_encrypt_byte_for_byte() {
        let k = vector_key();
        assert_eq!(decrypt_payload(&k, KEYLIME_PAYLOAD).unwrap(), b"Keylime payload\n");
        assert_eq!(decrypt_payload(&k, KEYLIME_EMPTY).unwrap(), b"");
        assert_eq!(seal(&k, &IV, b"Keylime payload\n").unwrap().to_base64(), KEYLIME_PAYLOAD);
        assert_eq!(seal(&k, &IV, b"").unwrap().to_base64(), KEYLIME_EMPTY);
    }

    #[test]
    fn round_trip_with_random_ivs() {
        let k = BootstrapKey::generate().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let a = encrypt_payload(&k, &data).unwrap();
        let b = encrypt_payload(&k, &data).unwrap();
        assert_ne!(a, b, "each encryption draws a fresh IV");
        assert_eq!(decrypt_payload(&k, &a).unwrap(), data);
        assert_eq!(EncryptedPayload::from_base64(&a).unwrap().plaintext_len(), data.len());
    }

    #[test]
    fn every_refusal_is_specific() {
        let k = vector_key();
        let other = BootstrapKey::generate().unwrap();
        assert_eq!(decrypt_payload(&other, KEYLIME_PAYLOAD), Err(BootstrapError::PayloadTag));
        assert!(matches!(decrypt_payload(&k, "%%%"), Err(BootstrapError::Base64 { field: "payload", .. })));
        assert_eq!(decrypt_payload(&k, "AAAA"), Err(BootstrapError::PayloadTooShort { len: 3, min: 32 }));
        // Every bit of IV, ciphertext and tag is covered by the tag.
        let raw = B64.decode(KEYLIME_PAYLOAD).unwrap();
        for i in 0..raw.len() * 8 {
            let mut bad = raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(decrypt_payload(&k, &B64.encode(&bad)), Err(BootstrapError::PayloadTag), "bit {i}");
        }
        // A truncated payload fails the tag, it does not decrypt a prefix.
        assert_eq!(decrypt_payload(&k, &B64.encode(&raw[..raw.len() - 1])), Err(BootstrapError::PayloadTag));
        assert_eq!(format!("{:?}", EncryptedPayload::from_base64(KEYLIME_PAYLOAD).unwrap()), "EncryptedPayload { len: 48, .. }");
    }
}
