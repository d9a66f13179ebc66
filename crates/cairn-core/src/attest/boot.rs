//! The measured-boot step of a round: the UEFI event log must replay to the quoted PCRs, and
//! then satisfy the measured-boot policy.
//!
//! Replay comes first because a policy judged on a log the TPM does not vouch for proves nothing.
//! PCRs 0–7 and any other PCR the log touches are compared, where the quote covers them.

use crate::alg::HashAlg;
use crate::eventlog::EventLog;
use crate::pcr::{PcrIndex, PcrValues};
use crate::policy::measured_boot::MeasuredBootPolicy;

use super::Failure;

/// PCRs 0–7: firmware, always replayed from the UEFI log.
const FIRMWARE_PCRS: u32 = 0xFF;

/// Judges the UEFI log `log` against the quoted `pcrs` (bank `bank`) and `policy`.
pub(super) fn judge_boot(
    policy: &MeasuredBootPolicy,
    bank: HashAlg,
    log: Option<&[u8]>,
    pcrs: &PcrValues,
    failures: &mut Vec<Failure>,
) {
    let Some(bytes) = log else {
        failures.push(Failure::UefiLogMissing);
        return;
    };
    let log = match EventLog::parse(bytes) {
        Ok(l) => l,
        Err(e) => {
            failures.push(Failure::UefiLog(e));
            return;
        }
    };
    let replayed = log.replay();
    let Some(values) = replayed.bank(bank) else {
        failures.push(Failure::UefiBankMissing(bank));
        return;
    };
    let before = failures.len();
    for (_, pcr, quoted) in pcrs.iter().filter(|(alg, _, _)| *alg == bank) {
        if (FIRMWARE_PCRS | values.touched()) & pcr.bit() == 0 {
            continue;
        }
        let replayed = values.value(pcr);
        if replayed != *quoted {
            failures.push(Failure::UefiPcrMismatch { pcr, quoted: *quoted, replayed });
        }
    }
    if failures.len() > before {
        return;
    }
    if let Err(mb) = policy.evaluate(&log) {
        failures.extend(mb.into_iter().map(Failure::MeasuredBoot));
    }
}

/// True when the UEFI log is judged this round: PCR 0 asked for.
pub(super) fn asked(mask: u32) -> bool {
    PcrIndex::new(0).is_some_and(|p| mask & p.bit() != 0)
}
