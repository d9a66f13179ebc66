//! Host mode at the verifier: each round, after the quote, fetch the hypervisor measurement list
//! from where the replay stands, and judge it against the quoted hvm PCR (`cairn_core::hvm`).
//!
//! A node is in host mode when the tenant said so (`hvm_pcr` in the add request, `cairn node add
//! --hvm`); the agent cannot switch it off. The list is fetched *after* the quote, so it covers the
//! quote and may run ahead of it; the replay finds the prefix. A list that restarts at entry 0, or a
//! changed boot time, means the node rebooted (or the agent started a fresh list): the replay starts
//! afresh, which is always sound — the PCR holds every extension since its reset. Failures become
//! `attest::Failure::Hvm` and take the node's ordinary failure and revocation path.

use std::collections::BTreeSet;

use cairn_core::attest::{Failure, Judgement};
use cairn_core::hvm::{judge, HvmFailure, HvmRound, ReplayState, SeenFile};
use cairn_core::pcr::PcrIndex;
use cairn_core::HashAlg;
use cairn_proto::agent::HvmListResponse;
use cairn_proto::Envelope;

use crate::agent_client::Unreachable;

/// The hvm PCR a tenant may ask for: 0–23, not IMA's 10, not 16 (reset by every quote).
pub fn check_pcr(n: u8) -> Result<PcrIndex, String> {
    match n {
        10 => Err("hvm_pcr 10 is IMA's PCR".into()),
        16 => Err("hvm_pcr 16 is reset by every quote (it binds the node key)".into()),
        0..=23 => PcrIndex::new(n).ok_or_else(|| format!("hvm_pcr {n} is not a PCR")),
        _ => Err(format!("hvm_pcr {n} is not a PCR from 0 to 23")),
    }
}

/// What the verifier keeps for a host between rounds.
#[derive(Clone, Debug)]
pub struct HvmTracker {
    /// Replay position and running value.
    pub state: ReplayState,
    /// The boot time of the last passing step.
    pub boottime: Option<u64>,
    /// Every (file, whole-file digest) the quotes proved since the replay started, for lookups.
    pub files: BTreeSet<SeenFile>,
}

impl HvmTracker {
    /// A fresh replay in `bank`.
    pub fn new(bank: HashAlg) -> HvmTracker {
        HvmTracker { state: ReplayState::new(bank), boottime: None, files: BTreeSet::new() }
    }
}

/// The agent's `/cairn/v1/hvm` URL from its versioned base (`https://h:p/v2.5`).
fn url(base: &str, from: u64) -> String {
    let host = base.rsplit_once("/v").map_or(base, |(h, _)| h);
    format!("{host}/cairn/v1/hvm?from={from}")
}

async fn fetch(http: &reqwest::Client, base: &str, from: u64) -> Result<HvmListResponse, Unreachable> {
    let u = url(base, from);
    let resp = http.get(&u).send().await.map_err(|e| Unreachable(format!("hvm list: {e}")))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| Unreachable(format!("hvm list: {e}")))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<Envelope<serde_json::Value>>(&body).map(|e| e.status).unwrap_or_default();
        return Err(Unreachable(format!("hvm list: agent answered HTTP {status}: {why}")));
    }
    serde_json::from_slice::<Envelope<HvmListResponse>>(&body)
        .map(|e| e.results)
        .map_err(|e| Unreachable(format!("hvm list: not a list reply: {e}")))
}

/// The host-mode step of a round whose quote was judged in `judgement`. Returns its failures;
/// `tracker` advances only when the step passed.
pub async fn step(
    http: &reqwest::Client,
    base: &str,
    pcr: PcrIndex,
    bank: HashAlg,
    tracker: &mut Option<HvmTracker>,
    judgement: &Judgement,
    boottime: Option<u64>,
) -> Result<Vec<Failure>, Unreachable> {
    // A quote that did not verify proves nothing to replay against; its failure is reported already.
    let Some(pcrs) = &judgement.pcrs else { return Ok(Vec::new()) };
    let Some(quoted) = pcrs.get(bank, pcr).copied() else {
        return Ok(vec![Failure::Hvm(HvmFailure::PcrNotQuoted { pcr })]);
    };
    let t = tracker.get_or_insert_with(|| HvmTracker::new(bank));
    if t.state.bank() != bank || matches!((t.boottime, boottime), (Some(a), Some(b)) if a != b) {
        *t = HvmTracker::new(bank);
    }
    let mut reply = fetch(http, base, t.state.next_entry()).await?;
    if reply.from == 0 && t.state.next_entry() > 0 {
        *t = HvmTracker::new(bank);
    }
    if reply.from != t.state.next_entry() {
        // Asked from the start after a reset above: fetch again from there.
        reply = fetch(http, base, t.state.next_entry()).await?;
    }
    if reply.pcr != pcr.get() {
        return Ok(vec![Failure::Hvm(HvmFailure::PcrConfig { expected: pcr, agent: reply.pcr })]);
    }
    let j = judge(&t.state, &HvmRound { pcr, list: reply.list.as_bytes(), from: reply.from, quoted: &quoted });
    if let Some(next) = j.next {
        t.state = next;
        t.boottime = boottime.or(t.boottime);
        t.files.extend(j.files);
    }
    Ok(j.failures.into_iter().map(Failure::Hvm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcrs_and_urls() {
        assert!(check_pcr(13).is_ok() && check_pcr(23).is_ok() && check_pcr(0).is_ok());
        for bad in [10, 16, 24, 255] {
            assert!(check_pcr(bad).unwrap_err().contains("hvm_pcr"), "{bad}");
        }
        assert_eq!(url("https://10.0.0.1:9002/v2.5", 7), "https://10.0.0.1:9002/cairn/v1/hvm?from=7");
        assert_eq!(url("https://[::1]:9002/v2.2", 0), "https://[::1]:9002/cairn/v1/hvm?from=0");
    }
}
