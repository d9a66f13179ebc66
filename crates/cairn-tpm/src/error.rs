//! The one error type of `cairn-tpm`.
//!
//! A TPM failure is only actionable with its context: which command, on which handle, NV index or
//! PCR, and the TSS return code in words. Every variant carries that. Managing swtpm processes
//! (the [`crate::swtpm`] module) adds process and file failures, reported with the program or path.

use std::fmt;
use std::path::PathBuf;

use cairn_core::ParseError;
use thiserror::Error;

/// What a TPM command acted on, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing in particular (e.g. GetCapability).
    None,
    /// A persistent or transient object handle.
    Handle(u32),
    /// An NV index.
    Nv(u32),
    /// A PCR.
    Pcr(u8),
    /// A PCR selection, in tpm2-tools syntax.
    Pcrs(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::None => Ok(()),
            Target::Handle(h) => write!(f, " on handle {h:#010x}"),
            Target::Nv(i) => write!(f, " on NV index {i:#010x}"),
            Target::Pcr(p) => write!(f, " on PCR {p}"),
            Target::Pcrs(s) => write!(f, " on PCRs {s}"),
        }
    }
}

/// Anything that can go wrong talking to a TPM or running swtpm.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The TCTI string could not be parsed or the TPM could not be reached through it.
    #[error("cannot open the TPM through TCTI {tcti:?}: {source}")]
    Open {
        /// The TCTI configuration string.
        tcti: String,
        /// What tss-esapi reported.
        source: tss_esapi::Error,
    },
    /// A TPM command (or tss-esapi's preparation of it) failed.
    #[error("{op}{target} failed: {source}")]
    Command {
        /// The operation, e.g. "TPM2_Quote".
        op: &'static str,
        /// What it acted on.
        target: Target,
        /// The TSS return code, which prints as text.
        source: tss_esapi::Error,
    },
    /// A handle, NV index or PCR number outside its range.
    #[error("{what} {value:#x} is not a valid handle")]
    BadHandle {
        /// What the number was meant to be.
        what: &'static str,
        /// The number.
        value: u32,
    },
    /// A key persisted at the handle is not the one asked for.
    #[error("the key persisted at {handle:#010x} is {found}, not the requested {wanted}")]
    KeyMismatch {
        /// The persistent handle.
        handle: u32,
        /// What was asked for.
        wanted: String,
        /// What is there.
        found: String,
    },
    /// The requested combination is not supported (e.g. an AK under a high-range EK).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// PCRs kept changing between PCR_Read and Quote.
    #[error("PCR values changed during each of {attempts} quote attempts")]
    PcrsUnstable {
        /// Attempts made.
        attempts: u32,
    },
    /// Bytes handed in (or returned by the TPM) do not parse.
    #[error("malformed {what}: {source}")]
    Parse {
        /// The structure.
        what: &'static str,
        /// The parse error.
        source: ParseError,
    },
    /// The TPM answered something inconsistent with the request.
    #[error("{op}: unexpected answer from the TPM: {detail}")]
    Unexpected {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A program could not be started or waited for.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{program} failed ({status}): {output}")]
    ProgramFailed {
        /// The program.
        program: &'static str,
        /// Its exit status, in words.
        status: String,
        /// Its output or log, trimmed.
        output: String,
    },
    /// swtpm did not start answering.
    #[error("swtpm did not come up: {0}")]
    SwtpmStart(String),
    /// A sealed object does not load under this TPM's storage primary.
    #[error(
        "the sealed key does not load under this TPM's storage primary (sealed by another TPM, or the owner \
         hierarchy was cleared since): TPM2_Load failed: {source}"
    )]
    SealedElsewhere {
        /// What tss-esapi reported.
        source: tss_esapi::Error,
    },
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl TpmError {
    /// Wraps a tss-esapi error with the command and target.
    pub(crate) fn cmd(op: &'static str, target: Target) -> impl FnOnce(tss_esapi::Error) -> TpmError {
        move |source| TpmError::Command { op, target, source }
    }

    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TpmError {
        let path = path.into();
        move |source| TpmError::Io { path, source }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_name_operation_target_and_code() {
        let source = tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam);
        let e = TpmError::cmd("TPM2_NV_Read", Target::Nv(0x01c0_0002))(source);
        let text = e.to_string();
        assert!(text.starts_with("TPM2_NV_Read on NV index 0x01c00002 failed: "), "{text}");
        let e = TpmError::cmd("TPM2_PCR_Read", Target::Pcrs("sha256:0,1".into()))(source);
        assert!(e.to_string().contains("on PCRs sha256:0,1"));
        let e = TpmError::cmd("TPM2_Quote", Target::Handle(0x8101_0010))(source);
        assert!(e.to_string().contains("on handle 0x81010010"));
    }
}
