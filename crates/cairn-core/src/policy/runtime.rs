//! Keylime runtime policies: which files, keys and buffers a node may have measured.
//!
//! [`RuntimePolicy`] is Keylime's JSON format (or its older flat allowlist plus exclude list)
//! compiled for O(1) lookups; [`appraise`] walks a measurement list once, replaying PCR 10 against
//! the quote and judging every entry, and reports *all* failing entries with a reason that maps to
//! Keylime's failure event ids. The verifier keeps an [`AppraisalState`] between rounds so the
//! agent only sends new entries.

pub mod allowlist;
pub mod appraise;
pub mod digests;
pub mod document;
pub mod excludes;
pub mod keys;

pub use appraise::{
    appraise, Appraisal, AppraisalConfig, AppraisalState, EntryFailure, FailureReason, PcrOutcome, PARALLEL_MIN_BYTES,
};
pub use document::{AllowedDigest, DigestList, DigestMap, PolicyMeta, RuntimePolicy};
pub use excludes::Excludes;
pub use keys::{KeyKind, Keyrings, PublicKey, SignatureError};

/// A runtime policy could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The JSON is malformed or has a field of the wrong type.
    #[error("runtime policy JSON: {0}")]
    Json(String),
    /// `meta.version` is newer than this code understands.
    #[error("runtime policy format version {0} is not supported (1 is)")]
    UnsupportedVersion(u64),
    /// A feature Cairn does not evaluate.
    #[error("runtime policy uses {0}, which is not supported")]
    Unsupported(&'static str),
    /// A digest is not 40–128 hex digits.
    #[error("{section}[{path:?}]: {value:?} is not a hex digest of 20 to 64 bytes")]
    BadDigest {
        /// `digests`, `keyrings` or `ima-buf`.
        section: &'static str,
        /// The path or name.
        path: String,
        /// The value found.
        value: String,
    },
    /// An exclude pattern does not compile.
    #[error("excludes[{index}] {pattern:?}: {detail}")]
    BadExclude {
        /// Position in the list.
        index: usize,
        /// The pattern.
        pattern: String,
        /// Why it was refused.
        detail: String,
    },
    /// `ima.log_hash_alg` names no known hash.
    #[error("ima.log_hash_alg {0:?} is not a supported hash")]
    BadLogHashAlg(String),
    /// `verification-keys` cannot be read.
    #[error("verification-keys: {0}")]
    BadVerificationKeys(String),
    /// A table would outgrow what it can address.
    #[error("runtime policy: {0} is too large")]
    TooLarge(&'static str),
    /// A line of a flat allowlist is not `<hex digest> <path>`.
    #[error("allowlist line {line}: {detail}")]
    BadAllowlistLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: &'static str,
    },
}
