//! Credential protection for the registrar: TPM2_MakeCredential in software, the tpm2-tools
//! credential file Keylime sends, and Keylime's activation proof.
//!
//! This is how a registrar learns that an AK lives in the same TPM as a certified EK: it
//! protects a fresh secret to the EK, bound to the AK's name ([`make_credential`]); only that TPM
//! with that AK loaded can recover it (TPM2_ActivateCredential), and the agent proves it did by
//! returning [`keylime_auth_tag`]. Output is byte-compatible with the TPM and tpm2-tools, which
//! the integration tests check by activating on swtpm with both cairn-tpm and
//! `tpm2_activatecredential`.
//!
//! ```
//! use cairn_core::credential::{make_credential, os_random, MadeCredential, ObjectName};
//! # fn demo(ek: &cairn_core::tpm::Public, ak: &cairn_core::tpm::Public) -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32];
//! let made = make_credential(ek, &ObjectName::of(ak), &secret, &mut os_random)?;
//! let blob = made.to_tpm2_tools(); // base64 this for Keylime's `blob`
//! assert_eq!(MadeCredential::from_tpm2_tools(&blob)?, made);
//! # Ok(()) }
//! ```

mod auth_tag;
mod blob;
mod kdf;
mod make;
mod name;
#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::alg::HashAlg;
use crate::error::ParseError;

pub use auth_tag::{auth_tag_matches, ct_eq, keylime_auth_tag};
pub use blob::{MadeCredential, MAX_ENCRYPTED_SECRET, MAX_ID_OBJECT, TPM2_TOOLS_MAGIC, TPM2_TOOLS_VERSION};
pub use kdf::{kdfa, kdfe};
pub use make::{make_credential, os_random, Fill};
pub use name::ObjectName;

/// MakeCredential could not be performed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// An input structure is malformed.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// The credential is larger than the EK nameAlg's digest (the TPM refuses it).
    #[error("a {len}-byte credential exceeds the {max} bytes the EK's name algorithm allows")]
    SecretTooLarge {
        /// Credential size.
        len: usize,
        /// Largest size.
        max: usize,
    },
    /// The EK is not a restricted decryption (storage) key with a symmetric algorithm.
    #[error("the EK is not a restricted decryption key with a symmetric algorithm")]
    NotAStorageKey,
    /// The EK's parameters are valid but not supported here.
    #[error("unsupported EK: {reason}")]
    UnsupportedEk {
        /// Why.
        reason: &'static str,
    },
    /// The hash algorithm has no HMAC/KDF implementation here.
    #[error("{0} is not supported for credential protection")]
    UnsupportedHash(HashAlg),
    /// A KDF was asked for an unreasonable output size.
    #[error("KDF output of {bits} bits requested, at most {max} supported")]
    KdfLength {
        /// Bits requested.
        bits: u32,
        /// Largest allowed.
        max: u32,
    },
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// The crypto library refused an operation.
    #[error("cryptographic operation failed: {op}")]
    Crypto {
        /// Which operation.
        op: &'static str,
    },
}
