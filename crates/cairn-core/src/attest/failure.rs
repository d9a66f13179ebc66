//! Why a round did not pass: one variant per check, each wrapping the check's own failure type
//! and naming what it compared (entry, PCR, expected and actual).

use thiserror::Error;

use crate::alg::{Digest, HashAlg};
use crate::error::ParseError;
use crate::hvm::HvmFailure;
use crate::ima::log::LogError;
use crate::pcr::PcrIndex;
use crate::policy::measured_boot::MbFailure;
use crate::policy::pcr::PcrFailure;
use crate::policy::runtime::EntryFailure;
use crate::quote::QuoteFailure;
use crate::vmbatch::{BatchRefusal, VmEvidenceFailure};

/// One reason a round failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Failure {
    /// The quote string is not Keylime's `r<attest>:<signature>:<pcrs>`.
    #[error("quote string: {0}")]
    QuoteString(ParseError),
    /// The quote failed verification (signature, nonce, digest, clock…).
    #[error("quote: {0}")]
    Quote(QuoteFailure),
    /// A PCR the verifier asked for (or PCR 16) is not in the quote's bank.
    #[error("PCR {bank}:{pcr} was asked for but is not quoted")]
    PcrNotQuoted {
        /// Bank required.
        bank: HashAlg,
        /// PCR missing.
        pcr: PcrIndex,
    },
    /// PCR 16 does not bind the agent's NK: it is not H(0…0 ‖ H(NK PEM)).
    #[error("PCR 16 is {quoted}, but binding the NK gives {expected}")]
    NkNotBound {
        /// H(0…0 ‖ H(NK PEM)) in the quote's bank.
        expected: Digest,
        /// PCR 16 as quoted.
        quoted: Digest,
    },
    /// The NK the agent sent is not the one the verifier knows for it.
    #[error("the agent's NK is not the one registered for it")]
    NkChanged,
    /// PCR 10 was asked for but the reply carries no measurement list.
    #[error("PCR 10 was quoted but the reply holds no IMA measurement list")]
    ImaListMissing,
    /// The list does not start where the verifier's replay stands.
    #[error("IMA incremental position mismatch: expected the list from entry {expected}, got it from {actual:?}")]
    ImaPositionMismatch {
        /// Entry the verifier's state resumes at.
        expected: u64,
        /// Entry the agent says its list starts at.
        actual: Option<u64>,
    },
    /// The measurement list cannot be read.
    #[error("IMA list: {0}")]
    ImaList(LogError),
    /// An entry fails the runtime policy (or a structural check).
    #[error("IMA {0}")]
    ImaEntry(EntryFailure),
    /// No prefix of the list replays to the quoted PCR 10.
    #[error("IMA list does not replay to the quoted PCR 10 {quoted} (whole list gives {computed:?})")]
    ImaPcrMismatch {
        /// PCR 10 as quoted.
        quoted: Digest,
        /// Replayed value after the whole list, when the bank could be replayed.
        computed: Option<Digest>,
    },
    /// PCR 0 was asked for under a measured-boot policy but the reply holds no UEFI log.
    #[error("measured boot: the reply holds no UEFI event log")]
    UefiLogMissing,
    /// The UEFI event log cannot be read.
    #[error("measured boot: UEFI event log: {0}")]
    UefiLog(ParseError),
    /// The UEFI event log has no bank of the quote's hash.
    #[error("measured boot: the UEFI event log has no {0} bank")]
    UefiBankMissing(HashAlg),
    /// A PCR replayed from the UEFI log differs from the quoted value.
    #[error("measured boot: PCR {pcr} replays to {replayed} but is quoted as {quoted}")]
    UefiPcrMismatch {
        /// PCR.
        pcr: PcrIndex,
        /// Quoted value.
        quoted: Digest,
        /// Value the log replays to.
        replayed: Digest,
    },
    /// The UEFI log fails the measured-boot policy.
    #[error("measured boot: {0}")]
    MeasuredBoot(MbFailure),
    /// A quoted PCR fails the PCR policy.
    #[error("PCR policy: {0}")]
    PcrPolicy(PcrFailure),
    /// The hypervisor measurement list fails ([`crate::hvm::judge`]).
    #[error("{0}")]
    Hvm(HvmFailure),
    /// A host's VM batch is refused as a whole (its quote or root): the host agent vouched for
    /// evidence it cannot back ([`crate::vmbatch::judge_host_batch`]).
    #[error("{0}")]
    VmBatch(BatchRefusal),
    /// A VM's host-side evidence fails (absent, not included, or its leaf fails its policy).
    #[error("host {host}'s VM evidence: {failure}")]
    VmEvidence {
        /// The host node.
        host: String,
        /// Why.
        failure: VmEvidenceFailure,
    },
}

impl Failure {
    /// A stable, short name for the check that failed (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            Failure::QuoteString(_) => "quote_string",
            Failure::Quote(q) => q.check(),
            Failure::PcrNotQuoted { .. } => "pcr_not_quoted",
            Failure::NkNotBound { .. } => "nk_not_bound",
            Failure::NkChanged => "nk_changed",
            Failure::ImaListMissing => "ima_list_missing",
            Failure::ImaPositionMismatch { .. } => "ima_position_mismatch",
            Failure::ImaList(_) => "ima_list_malformed",
            Failure::ImaEntry(_) => "ima_entry",
            Failure::ImaPcrMismatch { .. } => "ima_pcr_mismatch",
            Failure::UefiLogMissing => "uefi_log_missing",
            Failure::UefiLog(_) => "uefi_log_malformed",
            Failure::UefiBankMissing(_) => "uefi_bank_missing",
            Failure::UefiPcrMismatch { .. } => "uefi_pcr_mismatch",
            Failure::MeasuredBoot(_) => "measured_boot",
            Failure::PcrPolicy(_) => "pcr_policy",
            Failure::Hvm(h) => h.check(),
            Failure::VmBatch(r) => r.check(),
            Failure::VmEvidence { failure, .. } => failure.check(),
        }
    }
}
