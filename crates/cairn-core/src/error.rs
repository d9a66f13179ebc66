//! Errors of `cairn-core`: what went wrong reading bytes, and where.
//!
//! Parsing errors always carry the field being read and its absolute offset, so an operator can
//! find the bad byte. Verdicts (a quote that parses but fails a check) are not errors; they are
//! [`crate::quote::QuoteFailure`] values, because "untrusted" is an expected outcome.

use thiserror::Error;

/// A structure could not be read from its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input ended inside `field`.
    #[error("{field} at offset {offset}: needs {needed} bytes, only {available} left")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Absolute offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length prefix exceeds what the structure allows.
    #[error("{field} at offset {offset}: size {size} exceeds the maximum {max}")]
    TooLarge {
        /// Field being read.
        field: &'static str,
        /// Absolute offset of the length prefix.
        offset: usize,
        /// Size announced.
        size: usize,
        /// Largest size allowed.
        max: usize,
    },
    /// Bytes remain after a structure that must end the input.
    #[error("{structure}: {extra} unexpected bytes after the end, at offset {offset}")]
    TrailingData {
        /// Structure that should have ended.
        structure: &'static str,
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        extra: usize,
    },
    /// A field holds a value the structure does not allow.
    #[error("{field} at offset {offset}: value {value:#x} is not allowed ({expected})")]
    BadValue {
        /// Field being read.
        field: &'static str,
        /// Absolute offset of the field.
        offset: usize,
        /// Value found.
        value: u64,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A field names an algorithm Cairn does not support there.
    #[error("{field} at offset {offset}: unsupported algorithm {alg:#06x}")]
    UnsupportedAlgorithm {
        /// Field being read.
        field: &'static str,
        /// Absolute offset of the field.
        offset: usize,
        /// TPM_ALG_ID found.
        alg: u16,
    },
    /// A digest's length does not match its algorithm.
    #[error("{field}: {len}-byte digest where {alg} needs {expected}")]
    DigestLength {
        /// Field being read.
        field: &'static str,
        /// Algorithm name.
        alg: &'static str,
        /// Length found.
        len: usize,
        /// Length required.
        expected: usize,
    },
    /// An entry of a list (a log record, a list element) is malformed; `source` says how.
    #[error("{list} entry {index} at offset {offset}: {source}")]
    Entry {
        /// The list, e.g. "event log".
        list: &'static str,
        /// Index of the entry (0-based).
        index: usize,
        /// Absolute offset where the entry starts.
        offset: usize,
        /// What is wrong inside the entry.
        source: Box<ParseError>,
    },
    /// Text input (hex, base64, PEM, a selection string) is malformed.
    #[error("{what}: {detail}")]
    Text {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl ParseError {
    /// Shorthand for a [`ParseError::Text`] error.
    pub fn text(what: &'static str, detail: impl Into<String>) -> Self {
        ParseError::Text { what, detail: detail.into() }
    }
}
