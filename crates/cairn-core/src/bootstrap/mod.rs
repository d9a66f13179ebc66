//! Keylime's bootstrap-key protocol (the U/V split): a secret that reaches a node only after the
//! node has attested, byte-compatible with Keylime's tenant, verifier and agents.
//!
//! The tenant makes a random 32-byte key K ([`BootstrapKey`]) and splits it ([`split`]) into
//! two halves ([`KeyHalf`]): V random, U = K ⊕ V. It encrypts its payload under K
//! ([`encrypt_payload`]: AES-256-GCM, base64 of `IV(16) ‖ ciphertext ‖ tag(16)`), and sends the
//! agent U encrypted to the agent's node key ([`wrap_for_nk`]: RSA-OAEP with SHA-1, base64) with
//! the payload and `auth_tag` = hex(HMAC-SHA384(K, agent uuid)) ([`auth_tag`]). V goes to the
//! verifier, which wraps it to the same node key and sends it only after the node's first good
//! integrity quote. The agent unwraps both ([`unwrap_with_nk`]), combines them ([`combine`]),
//! checks the auth tag ([`check_auth_tag`], constant time) — which proves U and V belong
//! together and were meant for this agent — and only then decrypts the payload
//! ([`decrypt_payload`]). Afterwards `GET /keys/verify?challenge=C` lets the tenant confirm the
//! agent holds K: the agent answers hex(HMAC-SHA384(K, C)) ([`challenge_hmac`],
//! [`check_challenge_hmac`]).
//!
//! Everything here is computation on bytes: no I/O. Keys are zeroed when dropped and never
//! printed; every refusal is a specific [`BootstrapError`] naming the field and the check.
//!
//! ```
//! use cairn_core::bootstrap::*;
//! let k = BootstrapKey::generate().unwrap();
//! let (u, v) = split(&k).unwrap();
//! let payload = encrypt_payload(&k, b"disk secret").unwrap();
//! let tag = auth_tag(&k, "node-7");
//! // … U, tag and payload reach the agent; V arrives after attestation …
//! let k2 = combine(&u, &v);
//! check_auth_tag(&k2, "node-7", &tag).unwrap();
//! assert_eq!(decrypt_payload(&k2, &payload).unwrap(), b"disk secret");
//! assert!(check_auth_tag(&k2, "node-8", &tag).is_err());
//! ```

mod error;
mod key;
mod payload;
mod wrap;

use aws_lc_rs::hmac;

pub use error::BootstrapError;
pub use key::{combine, split, BootstrapKey, KeyHalf, KEY_LEN};
pub use payload::{decrypt_payload, encrypt_payload, EncryptedPayload, PAYLOAD_IV_LEN, PAYLOAD_TAG_LEN};
pub use wrap::{unwrap_with_nk, wrap_for_nk};

/// Length of an HMAC-SHA384 in bytes (`auth_tag` and `/keys/verify` answers are its hex, 96
/// characters).
pub const HMAC_LEN: usize = 48;

/// An `auth_tag` as received with U: 48 bytes, checked when V arrives.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthTag([u8; HMAC_LEN]);

impl AuthTag {
    /// From the wire's hex text (either case; surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<AuthTag, BootstrapError> {
        Ok(AuthTag(hmac_from_hex("auth_tag", text)?))
    }

    /// Whether this is HMAC-SHA384(K, `agent_uuid`); compared in constant time.
    pub fn check(&self, k: &BootstrapKey, agent_uuid: &str) -> Result<(), BootstrapError> {
        hmac::verify(&hmac_key(k), agent_uuid.as_bytes(), &self.0).map_err(|_| BootstrapError::AuthTagMismatch)
    }
}

impl std::fmt::Debug for AuthTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthTag(..)")
    }
}

/// `auth_tag` = hex(HMAC-SHA384(K, agent uuid)), lower case, as Keylime's tenant sends it.
pub fn auth_tag(k: &BootstrapKey, agent_uuid: &str) -> String {
    hex::encode(hmac::sign(&hmac_key(k), agent_uuid.as_bytes()))
}

/// Checks an `auth_tag` (hex) against K and the agent's uuid, in constant time.
pub fn check_auth_tag(k: &BootstrapKey, agent_uuid: &str, tag_hex: &str) -> Result<(), BootstrapError> {
    AuthTag::from_hex(tag_hex)?.check(k, agent_uuid)
}

/// The agent's answer to `GET /keys/verify?challenge=C`: hex(HMAC-SHA384(K, C)).
pub fn challenge_hmac(k: &BootstrapKey, challenge: &str) -> String {
    hex::encode(hmac::sign(&hmac_key(k), challenge.as_bytes()))
}

/// Checks an agent's `/keys/verify` answer (hex) against K, in constant time.
pub fn check_challenge_hmac(k: &BootstrapKey, challenge: &str, hmac_hex: &str) -> Result<(), BootstrapError> {
    let answer = hmac_from_hex("hmac", hmac_hex)?;
    hmac::verify(&hmac_key(k), challenge.as_bytes(), &answer).map_err(|_| BootstrapError::ChallengeMismatch)
}

fn hmac_key(k: &BootstrapKey) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA384, k.as_bytes())
}

fn hmac_from_hex(field: &'static str, text: &str) -> Result<[u8; HMAC_LEN], BootstrapError> {
    let bytes = hex::decode(text.trim()).map_err(|e| BootstrapError::Hex { field, detail: e.to_string() })?;
    <[u8; HMAC_LEN]>::try_from(bytes.as_slice()).map_err(|_| BootstrapError::Length { field, len: bytes.len(), expected: HMAC_LEN })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// K = 00 01 … 1f; the tags are Keylime's `crypto.do_hmac(K, value)` (Python `hmac`, SHA-384).
    fn vector_key() -> BootstrapKey {
        BootstrapKey::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
    }
    const UUID: &str = "D432FBB3-D2F1-4A97-9EF7-75BD81C00000";
    const KEYLIME_TAG: &str =
        "7591c3fbfeed2961e39b19fb6052a8ec9a0a0b5161ff5cb2b58c75bb0bab64a9861e5c848affd9d843cc9a2d2809f0ee";
    const CHALLENGE: &str = "abcDEF0123456789wxyz";
    const KEYLIME_CHALLENGE_HMAC: &str =
        "35bb563ca9d9051982fe8e848bc3e053f1b97773a69c4141ae6f759d77dc79d2494d7bba193c59fda2f9552442b449ad";
    /// U for V = 5a × 32 (base64), so K = U ⊕ V is the vector key.
    const U_FOR_V5A: &str = "WltYWV5fXF1SU1BRVldUVUpLSElOT0xNQkNAQUZHREU=";

    #[test]
    fn keylime_vectors() {
        let k = vector_key();
        assert_eq!(auth_tag(&k, UUID), KEYLIME_TAG);
        check_auth_tag(&k, UUID, KEYLIME_TAG).unwrap();
        check_auth_tag(&k, UUID, &KEYLIME_TAG.to_uppercase()).unwrap();
        assert_eq!(challenge_hmac(&k, CHALLENGE), KEYLIME_CHALLENGE_HMAC);
        check_challenge_hmac(&k, CHALLENGE, KEYLIME_CHALLENGE_HMAC).unwrap();
        let u = KeyHalf::from_base64("u", U_FOR_V5A).unwrap();
        let v = KeyHalf::from_bytes("v", &[0x5a; 32]).unwrap();
        assert_eq!(combine(&u, &v).as_bytes(), k.as_bytes());
    }

    #[test]
    fn wrong_halves_fail_the_auth_tag() {
        let k = vector_key();
        let (u, v) = split(&k).unwrap();
        let (other_u, other_v) = split(&BootstrapKey::generate().unwrap()).unwrap();
        assert_eq!(check_auth_tag(&combine(&other_u, &v), UUID, KEYLIME_TAG), Err(BootstrapError::AuthTagMismatch));
        assert_eq!(check_auth_tag(&combine(&u, &other_v), UUID, KEYLIME_TAG), Err(BootstrapError::AuthTagMismatch));
        assert_eq!(check_auth_tag(&k, "another-agent", KEYLIME_TAG), Err(BootstrapError::AuthTagMismatch));
        check_auth_tag(&combine(&u, &v), UUID, KEYLIME_TAG).unwrap();
        assert_eq!(check_challenge_hmac(&k, "other", KEYLIME_CHALLENGE_HMAC), Err(BootstrapError::ChallengeMismatch));
    }

    #[test]
    fn malformed_tags_are_named() {
        let k = vector_key();
        assert!(matches!(check_auth_tag(&k, UUID, "xyz"), Err(BootstrapError::Hex { field: "auth_tag", .. })));
        assert_eq!(check_auth_tag(&k, UUID, "abcd"), Err(BootstrapError::Length { field: "auth_tag", len: 2, expected: 48 }));
        assert_eq!(
            check_auth_tag(&k, UUID, &KEYLIME_TAG[..94]),
            Err(BootstrapError::Length { field: "auth_tag", len: 47, expected: 48 })
        );
        assert!(matches!(check_challenge_hmac(&k, CHALLENGE, ""), Err(BootstrapError::Length { field: "hmac", len: 0, .. })));
        assert_eq!(format!("{:?}", AuthTag::from_hex(KEYLIME_TAG).unwrap()), "AuthTag(..)");
    }

    proptest! {
        /// Whatever text arrives in a field, decoding it returns a value or an error, never a
        /// panic; and text that is not the right tag never passes.
        #[test]
        fn decoding_arbitrary_text_never_panics(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = vector_key();
            let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
            prop_assert!(decrypt_payload(&k, &text).is_err());
            prop_assert!(decrypt_payload(&k, &b64).is_err());
            prop_assert!(check_auth_tag(&k, UUID, &text).is_err());
            prop_assert!(check_auth_tag(&k, UUID, &hex::encode(&bytes)).is_err());
            prop_assert!(check_challenge_hmac(&k, CHALLENGE, &text).is_err());
            let _ = KeyHalf::from_base64("v", &text);
            let _ = KeyHalf::from_base64("v", &b64);
            let _ = EncryptedPayload::from_base64(&text);
        }

        #[test]
        fn payloads_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let k = BootstrapKey::generate().unwrap();
            let sealed = encrypt_payload(&k, &data).unwrap();
            prop_assert_eq!(decrypt_payload(&k, &sealed).unwrap(), data);
        }
    }
}
