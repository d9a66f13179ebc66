//! # cairn-core
//!
//! Everything in Cairn that *judges* evidence, and nothing that fetches it. This crate parses TPM
//! structures, checks quotes, replays measurement logs and applies policies — on bytes alone. It
//! performs no I/O, reads no clock it was not handed, and never talks to a TPM, so every rule that
//! can make a node untrusted can be unit-tested and fuzzed here.
//!
//! ```
//! use cairn_core::pcr::PcrSelection;
//! let sel: PcrSelection = "sha1:10+sha256:0,1,16".parse().unwrap();
//! assert_eq!(sel.count(), 4);
//! ```

pub mod alg;
pub mod attest;
pub mod bootstrap;
pub mod codec;
pub mod credential;
pub mod crypto;
pub mod ekcert;
pub mod error;
pub mod eventlog;
pub mod hvm;
pub mod ima;
pub mod levels;
pub mod pcr;
pub mod policy;
pub mod quote;
pub mod revocation;
pub mod tpm;
pub mod vmbatch;
pub mod vtpmca;

pub use alg::{AlgId, Digest, HashAlg};
pub use error::ParseError;
