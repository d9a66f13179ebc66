//! Why a revocation key could not be loaded, or a signed revocation message was refused.

use thiserror::Error;

/// A revocation key or a signed revocation message was refused; each variant names the check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The public key or certificate text could not be read.
    #[error("revocation public key: {0}")]
    PublicKey(String),
    /// The private key text could not be read.
    #[error("revocation private key: {0}")]
    PrivateKey(String),
    /// The key is not an RSA key (revocation messages are RSA-PSS signed).
    #[error("revocation key: {found}, but revocation messages are signed with RSA (RSA-PSS/SHA-256)")]
    WrongKeyType {
        /// What was found instead, in words.
        found: String,
    },
    /// The RSA key is outside the sizes accepted (2048 to 8192 bits).
    #[error("revocation key: RSA-{bits} is outside the 2048 to 8192 bits accepted")]
    KeySize {
        /// The modulus size found.
        bits: usize,
    },
    /// The message carries no signature (Keylime sends `""` when its verifier has no revocation
    /// key).
    #[error("the revocation message is not signed (empty signature)")]
    MissingSignature,
    /// The signature is not standard base64.
    #[error("signature: not base64 ({0})")]
    BadBase64(String),
    /// The signature is not as long as the key's modulus.
    #[error("signature: {len} bytes, but the revocation key makes {expected}-byte signatures")]
    SignatureLength {
        /// Bytes decoded.
        len: usize,
        /// The key's modulus length.
        expected: usize,
    },
    /// The RSA-PSS signature does not verify with the revocation key.
    #[error("signature: not a valid RSA-PSS/SHA-256 (maximum salt) signature of msg by the revocation key")]
    BadSignature,
    /// `msg` verified but is not a revocation message; `field` names the part that is wrong.
    #[error("msg: {field}: {detail}")]
    MalformedMessage {
        /// The field (`msg` for the whole message).
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The cryptographic library failed to generate a key or to sign.
    #[error("revocation signing: {0}")]
    Signing(String),
}
