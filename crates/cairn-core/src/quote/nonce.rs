//! The verifier's nonce: what a quote's extraData must equal.

use crate::error::ParseError;

/// A nonce of at most 64 bytes (TPM2B_DATA's capacity). A hardware TPM accepts qualifying data only
/// up to its largest digest (32 bytes on SHA-256-only TPMs); Keylime's 20-character nonces fit.
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce(Vec<u8>);

/// Largest nonce.
pub const MAX_NONCE: usize = 64;

impl Nonce {
    /// From raw bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Nonce, ParseError> {
        if b.len() > MAX_NONCE {
            return Err(ParseError::TooLarge { field: "nonce", offset: 0, size: b.len(), max: MAX_NONCE });
        }
        Ok(Nonce(b.to_vec()))
    }
    /// From the text the verifier sent (its bytes are the qualifying data, as in Keylime).
    pub fn from_text(s: &str) -> Result<Nonce, ParseError> {
        Nonce::from_bytes(s.as_bytes())
    }
    /// From hex.
    pub fn from_hex(s: &str) -> Result<Nonce, ParseError> {
        let b = hex::decode(s.trim()).map_err(|e| ParseError::text("nonce", format!("bad hex: {e}")))?;
        Nonce::from_bytes(&b)
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nonce({})", hex::encode(&self.0))
    }
}
