//! Linux IMA measurement lists: parsing both securityfs formats, and replaying them into PCR 10.
//!
//! This module decides what a measurement list *says* (entries, templates, fields) and what PCR
//! values it *implies*; whether the measured files are acceptable is the runtime policy's business
//! ([`crate::policy::runtime`]). Everything borrows from the input: a 100,000-entry log is replayed
//! without allocating per entry.
//!
//! ```
//! use cairn_core::ima::{replay, BankSet};
//! use cairn_core::HashAlg;
//! let log = b"10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate\n";
//! let (state, summary) = replay::replay(log, BankSet::of(&[HashAlg::Sha1, HashAlg::Sha256])).unwrap();
//! assert_eq!(summary.entries, 1);
//! assert!(summary.template_hash_mismatches.is_empty());
//! assert_eq!(state.next_entry(), 1);
//! ```

pub mod ascii;
pub mod binary;
pub mod entry;
pub mod field;
mod hash;
pub(crate) mod hex;
pub mod log;
pub mod replay;
pub mod synth;

pub use entry::{ImaEntry, Template, TemplateHash};
pub use field::{Blob, FileDigest, FileHashAlg};
pub use log::{parse, Entries, LogError, LogFormat};
pub use replay::{BankSet, BankValue, Extension, PrefixMatch, ReplayConfig, ReplayState, ReplaySummary, Replayer, IMA_PCR};
