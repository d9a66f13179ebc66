//! The bootstrap key K and its halves U and V.
//!
//! K is 32 random bytes; V is 32 more random bytes; U = K ⊕ V. Neither half alone says anything
//! about K. Both types hold their bytes in a fixed array that is overwritten with zeros when the
//! value is dropped (the `zeroize` crate, whose writes the compiler may not remove); they are
//! neither `Clone` nor `Copy`, so no stray copies are made by accident, and their `Debug` shows
//! no bytes.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroize;

use super::error::BootstrapError;

/// Length of K, U and V in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// The bootstrap key K: the AES-256-GCM key of the payload and the HMAC-SHA384 key of the auth
/// tag and of `/keys/verify`. Zeroed on drop.
pub struct BootstrapKey {
    bytes: [u8; KEY_LEN],
}

/// One half of K (U or V), as sent RSA-OAEP encrypted to the agent's node key. Zeroed on drop.
pub struct KeyHalf {
    bytes: [u8; KEY_LEN],
}

impl BootstrapKey {
    /// A new random key.
    pub fn generate() -> Result<BootstrapKey, BootstrapError> {
        Ok(BootstrapKey { bytes: random()? })
    }

    /// From exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<BootstrapKey, BootstrapError> {
        Ok(BootstrapKey { bytes: exact("K", bytes)? })
    }

    /// The key's bytes (to keep it, or to hand it to a cipher).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl KeyHalf {
    /// From exactly 32 bytes; `field` names the value in the error.
    pub fn from_bytes(field: &'static str, bytes: &[u8]) -> Result<KeyHalf, BootstrapError> {
        Ok(KeyHalf { bytes: exact(field, bytes)? })
    }

    /// From standard base64 of 32 bytes (how a tenant hands V to a verifier); `field` names the
    /// value in the error.
    pub fn from_base64(field: &'static str, text: &str) -> Result<KeyHalf, BootstrapError> {
        let bytes = zeroize::Zeroizing::new(
            B64.decode(text.trim()).map_err(|e| BootstrapError::Base64 { field, detail: e.to_string() })?,
        );
        KeyHalf::from_bytes(field, &bytes)
    }

    /// Standard base64 of the half.
    pub fn to_base64(&self) -> String {
        B64.encode(self.bytes)
    }

    /// The half's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Whether `other` is the same half; compared in constant time.
    pub fn same_as(&self, other: &KeyHalf) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.bytes[..], &other.bytes[..]))
    }
}

/// Splits K into (U, V): V random, U = K ⊕ V.
pub fn split(k: &BootstrapKey) -> Result<(KeyHalf, KeyHalf), BootstrapError> {
    let v = KeyHalf { bytes: random()? };
    let u = KeyHalf { bytes: xor(&k.bytes, &v.bytes) };
    Ok((u, v))
}

/// K = U ⊕ V.
pub fn combine(u: &KeyHalf, v: &KeyHalf) -> BootstrapKey {
    BootstrapKey { bytes: xor(&u.bytes, &v.bytes) }
}

fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

fn random() -> Result<[u8; KEY_LEN], BootstrapError> {
    let mut bytes = [0u8; KEY_LEN];
    SystemRandom::new().fill(&mut bytes).map_err(|_| BootstrapError::Random)?;
    Ok(bytes)
}

fn exact(field: &'static str, bytes: &[u8]) -> Result<[u8; KEY_LEN], BootstrapError> {
    <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| BootstrapError::Length { field, len: bytes.len(), expected: KEY_LEN })
}

impl Drop for BootstrapKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl Drop for KeyHalf {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for BootstrapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapKey(..)")
    }
}

impl std::fmt::Debug for KeyHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHalf(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn split_and_combine_round_trip_and_halves_differ() {
        let k = BootstrapKey::generate().unwrap();
        let (u, v) = split(&k).unwrap();
        assert_eq!(combine(&u, &v).as_bytes(), k.as_bytes());
        assert_eq!(combine(&v, &u).as_bytes(), k.as_bytes(), "xor is symmetric");
        assert_ne!(u.as_bytes(), k.as_bytes());
        assert_ne!(v.as_bytes(), k.as_bytes());
        // Two splits of the same key use different V.
        let (u2, v2) = split(&k).unwrap();
        assert_ne!(v2.as_bytes(), v.as_bytes());
        assert_eq!(combine(&u2, &v2).as_bytes(), k.as_bytes());
        // Mixing halves of two splits gives another key.
        assert_ne!(combine(&u, &v2).as_bytes(), k.as_bytes());
    }

    #[test]
    fn lengths_and_base64_are_checked_and_debug_shows_no_bytes() {
        let k = BootstrapKey::from_bytes(&[7; KEY_LEN]).unwrap();
        assert_eq!(format!("{k:?}"), "BootstrapKey(..)");
        assert_eq!(BootstrapKey::from_bytes(&[7; 31]).unwrap_err(), BootstrapError::Length { field: "K", len: 31, expected: 32 });
        let (_, v) = split(&k).unwrap();
        assert_eq!(format!("{v:?}"), "KeyHalf(..)");
        let again = KeyHalf::from_base64("v", &format!("{}\n", v.to_base64())).unwrap();
        assert_eq!(again.as_bytes(), v.as_bytes());
        assert!(again.same_as(&v) && !again.same_as(&split(&k).unwrap().1));
        assert!(matches!(KeyHalf::from_base64("v", "not base64!"), Err(BootstrapError::Base64 { field: "v", .. })));
        assert_eq!(KeyHalf::from_base64("v", "AAAA").unwrap_err(), BootstrapError::Length { field: "v", len: 3, expected: 32 });
        assert_eq!(KeyHalf::from_bytes("u", &[0; 33]).unwrap_err(), BootstrapError::Length { field: "u", len: 33, expected: 32 });
    }
}
