//! Why a bootstrap key half, an auth tag, a payload or a challenge answer was refused.

use thiserror::Error;

/// A bootstrap-key value was refused; each variant names the field and the check. No variant
/// carries key or payload bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// A field that must be standard base64 is not.
    #[error("{field}: not base64 ({detail})")]
    Base64 {
        /// The field (`encrypted_key`, `payload`, …).
        field: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// A field that must be hex is not.
    #[error("{field}: not hex ({detail})")]
    Hex {
        /// The field (`auth_tag`, `hmac`).
        field: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// A field decodes to the wrong number of bytes.
    #[error("{field}: {len} bytes, but {expected} are needed")]
    Length {
        /// The field.
        field: &'static str,
        /// Bytes found.
        len: usize,
        /// Bytes required.
        expected: usize,
    },
    /// The payload is shorter than its IV and GCM tag.
    #[error("payload: {len} bytes, but an encrypted payload is at least {min} (16-byte IV and 16-byte GCM tag)")]
    PayloadTooShort {
        /// Bytes decoded.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// `encrypted_key` does not decrypt with the node key (RSA-OAEP, SHA-1): it was encrypted to
    /// another key, or altered.
    #[error("encrypted_key: not RSA-OAEP (SHA-1, MGF1-SHA-1) encrypted to this node key (NK)")]
    Unwrap,
    /// HMAC-SHA384(K, agent uuid) differs from the `auth_tag` sent with U: U and V do not combine
    /// into the tenant's key (a wrong U or a wrong V), or the tag was made for another agent.
    #[error(
        "auth_tag: HMAC-SHA384(K, agent uuid) does not match; U and V do not make the tenant's key \
         (wrong U or wrong V, or a tag for another agent)"
    )]
    AuthTagMismatch,
    /// HMAC-SHA384(K, challenge) differs from the `hmac` an agent answered.
    #[error("hmac: HMAC-SHA384(K, challenge) does not match; the agent does not hold this bootstrap key")]
    ChallengeMismatch,
    /// The AES-256-GCM tag of the payload does not verify under K.
    #[error("payload: the AES-256-GCM tag does not verify under K (the payload was altered or made with another key)")]
    PayloadTag,
    /// The node key given to encrypt a half to is not a usable RSA public key.
    #[error("node key: {0}")]
    NodeKey(String),
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// Encryption failed inside the cryptographic library.
    #[error("{0}: encryption failed")]
    Encrypt(&'static str),
}
