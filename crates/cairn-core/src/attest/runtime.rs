//! The IMA step of a round: the list must continue exactly where the verifier's replay stands,
//! every entry is appraised, and a prefix must replay to the quoted PCR 10.
//!
//! The agent may have measured more since the quote was taken, so the list can run ahead of the
//! quote; the next round resumes at the prefix the quote proved, never past it. When the step
//! fails the state stays where it was, so the failing entries are judged again next round.

use crate::alg::Digest;
use crate::policy::runtime::{appraise, AppraisalConfig, AppraisalState, PcrOutcome, RuntimePolicy};

use super::Failure;

/// Judges `lines` (the list from entry `entry`) against `state`; returns the state the next round
/// resumes from, or `None` when the step failed.
pub(super) fn judge_ima(
    runtime: Option<&RuntimePolicy>,
    state: &AppraisalState,
    lines: Option<&[u8]>,
    entry: Option<u64>,
    quoted_pcr10: &Digest,
    failures: &mut Vec<Failure>,
) -> Option<AppraisalState> {
    let Some(lines) = lines else {
        failures.push(Failure::ImaListMissing);
        return None;
    };
    let expected = state.replay.next_entry();
    if entry.unwrap_or(0) != expected {
        failures.push(Failure::ImaPositionMismatch { expected, actual: entry });
        return None;
    }
    let appraisal = match appraise(runtime, state, lines, Some(quoted_pcr10), &AppraisalConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            failures.push(Failure::ImaList(e));
            return None;
        }
    };
    let failed = !appraisal.failures.is_empty();
    failures.extend(appraisal.failures.into_iter().map(Failure::ImaEntry));
    match appraisal.pcr {
        PcrOutcome::Matched { .. } if !failed => Some(appraisal.next),
        PcrOutcome::Matched { .. } => None,
        PcrOutcome::NoPrefixMatches { quoted, computed } => {
            failures.push(Failure::ImaPcrMismatch { quoted, computed });
            None
        }
        PcrOutcome::NotChecked => {
            failures.push(Failure::ImaPcrMismatch { quoted: *quoted_pcr10, computed: None });
            None
        }
    }
}
