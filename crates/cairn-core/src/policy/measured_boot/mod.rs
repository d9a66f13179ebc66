//! Measured-boot policy: judging a UEFI event log against a Keylime-shaped reference state.
//!
//! Keylime evaluates its reference state through a generic test tree over tpm2-tools' YAML; Cairn
//! judges the typed events directly, with the same meaning:
//! * S-CRTM and firmware: the PCR 0 EV_S_CRTM_VERSION digest and the ordered PCR 0 firmware
//!   blob digests must match one `scrtm_and_bios` entry;
//! * Secure Boot: the SecureBoot variable (PCR 7) must be measured and say `has_secureboot`;
//! * keys: each of PK, KEK, db measured once, every entry in the allowed list; dbx measured once
//!   and holding every required entry (with Secure Boot off and an empty list, anything goes);
//! * boot chain: the PCR 4 boot applications (firmware-volume applications aside) must be exactly
//!   shim, grub and the kernel of one `kernels` entry (the kernel may be measured twice), and that
//!   same entry's initrd digest and command-line regex (whole-line match) must hold for every
//!   PCR 9 initrd and every PCR 8/12 command line; without Secure Boot, vmlinuz is judged instead
//!   of the kernel's Authenticode digest;
//! * MOK: PCR 14 MokList / MokListX digests must be listed.
//!
//! A digest in the reference state (`{"sha256": "0x…"}`) matches a record when every algorithm
//! they share agrees and they share at least one. Event data is used only when its record's
//! digest covers it (see [`facts`]). Every failure names the record index (or what is missing)
//! with expected and actual values.

pub mod evaluate;
pub mod facts;
pub mod generate;
pub mod refstate;

use std::fmt;

pub use evaluate::MeasuredBootPolicy;
pub use generate::{generate, GenerateError};
pub use refstate::{DigestRef, Hex, KernelRef, RefState, ScrtmAndBios, SignatureRef};

use crate::error::ParseError;

/// One reason a log fails a measured-boot policy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MbFailure {
    /// The data of record `index` could not be decoded.
    Undecodable {
        /// Record index.
        index: usize,
        /// Why.
        error: ParseError,
    },
    /// Record `index`'s data is not what its SHA-256 digest measured.
    DataNotMeasured {
        /// Record index.
        index: usize,
        /// What the data claimed to be.
        what: &'static str,
    },
    /// Secure Boot state differs from the reference, or was not measured once.
    SecureBoot {
        /// Record index of the SecureBoot measurement, if any.
        index: Option<usize>,
        /// Expected state.
        expected: bool,
        /// Measured state.
        actual: Option<bool>,
    },
    /// No `scrtm_and_bios` entry matches the S-CRTM and firmware measurements.
    ScrtmAndBios {
        /// (record index, sha256) of the S-CRTM version records.
        scrtm: Vec<(usize, String)>,
        /// (record index, sha256) of the firmware blob records.
        firmware: Vec<(usize, String)>,
    },
    /// A key database was measured other than once.
    KeyDbCount {
        /// Variable.
        var: &'static str,
        /// Record indexes of its measurements.
        indexes: Vec<usize>,
    },
    /// A key database holds an entry the reference does not allow.
    KeyNotAllowed {
        /// Variable.
        var: &'static str,
        /// Record index.
        index: usize,
        /// SignatureOwner.
        owner: String,
        /// SHA-256 of SignatureData (the full data can be large).
        data_sha256: String,
    },
    /// dbx lacks a required entry.
    DbxEntryMissing {
        /// Record index of the dbx measurement.
        index: usize,
        /// SignatureOwner.
        owner: String,
        /// SHA-256 of the missing SignatureData.
        data_sha256: String,
    },
    /// The boot chain matches no `kernels` entry; the closest entry's differences follow.
    BootChain {
        /// (record index, sha256) of the PCR 4 boot applications.
        actual: Vec<(usize, String)>,
        /// Expected sequence of the closest entry.
        expected: Vec<String>,
    },
    /// A command line does not match the closest entry's pattern.
    KernelCmdline {
        /// Record index.
        index: usize,
        /// Command line found.
        actual: String,
        /// Pattern.
        pattern: String,
    },
    /// A PCR 9 initrd / vmlinuz digest differs from the closest entry's.
    PlainDigest {
        /// "initrd" or "vmlinuz".
        what: &'static str,
        /// Record index.
        index: usize,
        /// Digest found.
        actual: String,
        /// Digest expected.
        expected: String,
    },
    /// A MokList / MokListX digest is not listed.
    Mok {
        /// "MokList" or "MokListX".
        list: &'static str,
        /// Record index.
        index: usize,
        /// Digest found.
        actual: String,
    },
    /// The log carries no SHA-256 digests, the bank the reference state is written in.
    NoSha256Bank,
}

impl fmt::Display for MbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MbFailure::*;
        match self {
            Undecodable { index, error } => write!(f, "event {index}: data cannot be decoded: {error}"),
            DataNotMeasured { index, what } => write!(f, "event {index}: {what} data does not hash to the event's sha256 digest"),
            SecureBoot { index, expected, actual } => write!(
                f,
                "SecureBoot (event {}): expected {}, measured {}",
                index.map_or("none".to_string(), |i| i.to_string()),
                on_off(*expected),
                actual.map_or("nothing", on_off)
            ),
            ScrtmAndBios { scrtm, firmware } => write!(
                f,
                "S-CRTM {} and firmware {} match no scrtm_and_bios entry",
                pairs(scrtm),
                pairs(firmware)
            ),
            KeyDbCount { var, indexes } => write!(f, "{var} measured {} times (events {indexes:?}), expected once", indexes.len()),
            KeyNotAllowed { var, index, owner, data_sha256 } => {
                write!(f, "event {index}: {var} entry owner {owner}, data sha256 {data_sha256} is not allowed")
            }
            DbxEntryMissing { index, owner, data_sha256 } => {
                write!(f, "event {index}: dbx lacks the required entry owner {owner}, data sha256 {data_sha256}")
            }
            BootChain { actual, expected } => write!(
                f,
                "boot applications {} match no kernels entry (closest expects [{}])",
                pairs(actual),
                expected.join(", ")
            ),
            KernelCmdline { index, actual, pattern } => {
                write!(f, "event {index}: kernel command line {actual:?} does not match {pattern:?}")
            }
            PlainDigest { what, index, actual, expected } => write!(f, "event {index}: {what} is {actual}, expected {expected}"),
            Mok { list, index, actual } => write!(f, "event {index}: {list} digest {actual} is not in the reference state"),
            NoSha256Bank => write!(f, "the log has no sha256 digests"),
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn pairs(v: &[(usize, String)]) -> String {
    let items: Vec<String> = v.iter().map(|(i, d)| format!("#{i} {d}")).collect();
    format!("[{}]", items.join(", "))
}
