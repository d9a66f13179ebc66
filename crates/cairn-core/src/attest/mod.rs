//! The verifier's judgement of one attestation round, on bytes alone.
//!
//! A Keylime-compatible verifier asks an agent for `quotes/integrity?nonce&mask&partial&ima_ml_entry`
//! and hands the decoded reply to [`judge`] with the agent's parsed policies ([`AgentPolicy`],
//! shared across rounds) and what it kept from the previous round ([`AgentState`]). The checks:
//! 1. the quote verifies (AK signature, nonce, PCR digest, clock never going back, `safe` if
//!    required) — when it does not, nothing else in the reply can be trusted and the round stops;
//! 2. every PCR asked for, and PCR 16, is quoted in the accepted bank;
//! 3. PCR 16 binds the agent's NK;
//! 4. a changed boot time, or a list restarting at entry 0, means the node rebooted: the IMA
//!    replay starts afresh (the clock check accepts it because resetCount grew);
//! 5. with PCR 10 asked, the IMA list continues the replay, every entry passes the runtime
//!    policy, and a prefix replays to the quoted PCR 10;
//! 6. with PCR 0 asked and a measured-boot policy, the UEFI log replays to the quoted PCRs and
//!    passes the policy;
//! 7. the quoted bank passes the PCR policy.
//!
//! Every failure of checks 2–7 is reported. The next state never takes the IMA replay past what a
//! passing IMA step proved, so failing entries are judged again next round.

mod binding;
mod boot;
mod failure;
mod identity;
mod runtime;

use std::sync::Arc;

pub use binding::{nk_binding, DATA_PCR};
pub use failure::Failure;
pub use identity::judge_identity;

use crate::alg::HashAlg;
use crate::crypto::VerifyingKey;
use crate::ima::replay::{BankSet, IMA_PCR};
use crate::pcr::{PcrIndex, PcrValues};
use crate::policy::measured_boot::MeasuredBootPolicy;
use crate::policy::pcr::PcrPolicy;
use crate::policy::runtime::{AppraisalState, RuntimePolicy};
use crate::quote::{decode_quote_string, verify_quote, Expected, QuoteParts, VerifiedQuote};
use crate::tpm::ClockInfo;

/// What the verifier holds for an agent, parsed once and shared across rounds.
#[derive(Debug)]
pub struct AgentPolicy {
    /// The AK, from the registrar's `aik_tpm`.
    pub ak: VerifyingKey,
    /// The agent's NK (SubjectPublicKeyInfo PEM), for the PCR 16 binding.
    pub nk_pem: Option<String>,
    /// The accepted quote hash and PCR bank (Keylime `accept_tpm_hash_algs`).
    pub hash: HashAlg,
    /// Keylime `tpm_policy`.
    pub pcr_policy: Option<PcrPolicy>,
    /// Keylime runtime policy.
    pub runtime: Option<Arc<RuntimePolicy>>,
    /// Measured-boot reference state.
    pub measured_boot: Option<Arc<MeasuredBootPolicy>>,
    /// Whether quotes must have `safe` set.
    pub require_safe_clock: bool,
}

/// What the verifier keeps for an agent between rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentState {
    /// Clock of the last verified quote.
    pub last_clock: Option<ClockInfo>,
    /// Boot time the agent last reported.
    pub boottime: Option<u64>,
    /// IMA replay position, running PCR 10 and learned keys.
    pub ima: AppraisalState,
}

impl AgentState {
    /// The state before the first round, replaying PCR 10 in `bank`.
    pub fn new(bank: HashAlg) -> AgentState {
        AgentState { last_clock: None, boottime: None, ima: fresh_ima(bank) }
    }
}

fn fresh_ima(bank: HashAlg) -> AppraisalState {
    AppraisalState::new(BankSet::of(&[bank]))
}

/// One round's reply, decoded (the fields of Keylime's `quotes/integrity` results).
#[derive(Clone, Copy, Debug)]
pub struct Round<'a> {
    /// The nonce sent.
    pub nonce: &'a [u8],
    /// The PCRs asked for (bit n = PCR n).
    pub mask: u32,
    /// The quote string `r<attest>:<signature>:<pcrs>`.
    pub quote: &'a str,
    /// The agent's boot time (seconds since the epoch).
    pub boottime: Option<u64>,
    /// The NK PEM, when the reply carries it (`partial=0`).
    pub pubkey: Option<&'a str>,
    /// The IMA list (ASCII lines) from `ima_entry`.
    pub ima_lines: Option<&'a [u8]>,
    /// The entry the IMA list starts at.
    pub ima_entry: Option<u64>,
    /// The UEFI event log (decoded from base64).
    pub uefi_log: Option<&'a [u8]>,
}

/// The outcome of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Pass,
    /// At least one check failed; all failures of the round.
    Fail(Vec<Failure>),
}

/// The verdict and what to keep and ask for next.
#[derive(Clone, Debug)]
pub struct Judgement {
    /// Pass or the failures.
    pub verdict: Verdict,
    /// State for the next round.
    pub next_state: AgentState,
    /// `ima_ml_entry` to ask next round.
    pub next_ima_entry: u64,
    /// A reboot was seen and the next round needs the IMA list from entry 0.
    pub full_log_next: bool,
    /// The PCR values the quote proved, when it verified (later steps, such as the hypervisor
    /// measurement list of [`crate::hvm`], judge against them).
    pub pcrs: Option<PcrValues>,
}

/// Judges one round. See the module documentation for the checks.
pub fn judge(policy: &AgentPolicy, state: &AgentState, round: &Round<'_>) -> Judgement {
    let unchanged = |failure: Failure| Judgement {
        verdict: Verdict::Fail(vec![failure]),
        next_state: state.clone(),
        next_ima_entry: state.ima.replay.next_entry(),
        full_log_next: false,
        pcrs: None,
    };
    let quote = match verify(policy, state, round) {
        Ok(q) => q,
        Err(f) => return unchanged(f),
    };
    let mut failures = Vec::new();
    let bank = policy.hash;
    binding::check_coverage(bank, round.mask, &quote.pcrs, &mut failures);
    if let Some(known) = policy.nk_pem.as_deref() {
        if round.pubkey.is_some_and(|p| p != known) {
            failures.push(Failure::NkChanged);
        }
    }
    if let Some(nk) = round.pubkey.or(policy.nk_pem.as_deref()) {
        binding::check_nk(bank, nk, &quote.pcrs, &mut failures);
    }

    let rebooted = rebooted(state, round);
    let base_ima = if rebooted { fresh_ima(bank) } else { state.ima.clone() };
    let mut next_ima = base_ima.clone();
    let pcr10 = u8::try_from(IMA_PCR).ok().and_then(PcrIndex::new).filter(|p| round.mask & p.bit() != 0);
    if let Some(quoted) = pcr10.and_then(|p| quote.pcrs.get(bank, p)) {
        let runtime_policy = policy.runtime.as_deref();
        if let Some(next) =
            runtime::judge_ima(runtime_policy, &base_ima, round.ima_lines, round.ima_entry, quoted, &mut failures)
        {
            next_ima = next;
        }
    }
    if let Some(mb) = policy.measured_boot.as_deref().filter(|_| boot::asked(round.mask)) {
        boot::judge_boot(mb, bank, round.uefi_log, &quote.pcrs, &mut failures);
    }
    if let Some(pcr_policy) = &policy.pcr_policy {
        if let Err(f) = pcr_policy.evaluate(bank, &quote.pcrs) {
            failures.extend(f.into_iter().map(Failure::PcrPolicy));
        }
    }

    let next_ima_entry = next_ima.replay.next_entry();
    let next_state = AgentState {
        last_clock: Some(quote.clock()),
        boottime: round.boottime.or(state.boottime),
        ima: next_ima,
    };
    Judgement {
        verdict: if failures.is_empty() { Verdict::Pass } else { Verdict::Fail(failures) },
        next_state,
        next_ima_entry,
        full_log_next: rebooted && next_ima_entry == 0,
        pcrs: Some(quote.pcrs),
    }
}

// Called once per round; the large error is moved once, into the verdict.
#[allow(clippy::result_large_err)]
fn verify(policy: &AgentPolicy, state: &AgentState, round: &Round<'_>) -> Result<VerifiedQuote, Failure> {
    let (message, signature, pcrs) = decode_quote_string(round.quote).map_err(Failure::QuoteString)?;
    let expected = Expected {
        nonce: round.nonce,
        hash: Some(policy.hash),
        previous_clock: state.last_clock,
        require_safe: policy.require_safe_clock,
    };
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    verify_quote(&policy.ak, parts, expected).map_err(Failure::Quote)
}

/// The node rebooted since the last round: its boot time changed, or its IMA list restarts at
/// entry 0 while the verifier's replay had moved on.
fn rebooted(state: &AgentState, round: &Round<'_>) -> bool {
    let boot_changed = matches!((state.boottime, round.boottime), (Some(a), Some(b)) if a != b);
    let list_restarted = round.ima_entry == Some(0) && state.ima.replay.next_entry() > 0;
    boot_changed || list_restarted
}
