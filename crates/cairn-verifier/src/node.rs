//! One node: what the API reads about it ([`Node`]) and the task that attests it ([`run`]).
//!
//! Each node has one async task. It sleeps until the node is due (or is woken by a reactivate),
//! takes a permit from the fleet-wide semaphore (bounded concurrency), asks the agent for an
//! integrity quote over its kept-alive connection, and hands the reply to
//! `cairn_core::attest::judge` with the node's parsed policies and the state it kept from the last
//! round (incremental IMA replay, TPM clock, boot time). The outcome becomes the node's status
//! (see `state.rs`), a batched store write and, on a failure, a signed revocation.
//!
//! Interplay with the tenant: `stop`, `reactivate` and spec changes bump the node's generation; a
//! round that was in flight when that happened is discarded rather than applied.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_core::attest::{judge, AgentPolicy, AgentState, Failure, Round, Verdict};
use cairn_core::crypto::VerifyingKey;
use cairn_core::levels::{BootVerdict, IntegrityLevel, LevelReport};
use cairn_core::tpm::ClockInfo;
use cairn_proto::verifier::FailureView;
use cairn_store::{AgentStatus, HistoryEvent, StatusUpdate};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::agent_client::{self, integrity_quote, IntegrityReply, Unreachable};
use crate::fleet::Fleet;
use crate::hvm::HvmTracker;
use crate::level_events::{LevelChange, LEVEL_CHANGE_TYPE};
use crate::levels::{boot_verdict, LevelTracker, MAX_REASONS};
use crate::revoke::RevocationRequest;
use crate::rounds::RoundEnd;
use crate::spec::NodeSpec;
use crate::state::NodeState;
use crate::vmbatch::{Evidence, HostKeys, VmBatchStatus};

/// What the API reads and the tenant changes.
#[derive(Debug)]
pub struct Node {
    /// The node id.
    pub id: String,
    /// What the tenant asked for.
    pub spec: RwLock<NodeSpec>,
    /// The attestation status.
    pub status: Mutex<NodeStatus>,
    /// Wakes the task (reactivate, spec change, shutdown).
    pub wake: Notify,
    /// The agent pushed a change: run the next round now (the kept IMA state stays).
    pub early: std::sync::atomic::AtomicBool,
    /// IMA entries judged so far (what the push-on-change watcher asks about).
    pub known_entries: std::sync::atomic::AtomicU64,
}

/// A node's status between rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The state.
    pub state: Option<NodeState>,
    /// The failure was the quote itself (INVALID_QUOTE) rather than a policy (FAILED).
    #[serde(default)]
    pub quote_failed: bool,
    /// Why the node is failed or unreachable.
    #[serde(skip)]
    pub failures: Vec<FailureView>,
    /// Rounds passed.
    #[serde(skip)]
    pub attestation_count: u64,
    /// Unix seconds of the last quote received.
    #[serde(skip)]
    pub last_received_quote: Option<i64>,
    /// Unix seconds of the last pass.
    #[serde(skip)]
    pub last_successful_attestation: Option<i64>,
    /// Consecutive unanswered requests.
    #[serde(default)]
    pub misses: u32,
    /// Id of the last revocation sent.
    #[serde(default)]
    pub last_event_id: Option<String>,
    /// Bumped by stop, reactivate and spec changes.
    #[serde(skip)]
    pub generation: u64,
    /// Start the next round now rather than at its time.
    #[serde(skip)]
    pub due_now: bool,
    /// The TPM clock of the last verified quote (kept across restarts: an old quote stays old).
    #[serde(default)]
    pub last_clock: Option<(u32, u32, u64)>,
    /// The boot time the agent last reported.
    #[serde(default)]
    pub boottime: Option<u64>,
    /// The bootstrap-key half V has been delivered to the agent.
    #[serde(default)]
    pub v_released: bool,
    /// The integrity level of the last judged round (with a reference database).
    #[serde(default)]
    pub level: Option<IntegrityLevel>,
    /// Why the node is below `ima_all_ok`, worst first (at most [`crate::levels::MAX_REASONS`]).
    #[serde(default)]
    pub level_reasons: Vec<serde_json::Value>,
    /// For a VM with a VM policy: the last judgement of its leaf in its host's VM batch.
    #[serde(default)]
    pub vm_batch: Option<VmBatchStatus>,
    /// The node is failed because of its host-side VM evidence alone (a passing batch revives it).
    #[serde(default)]
    pub vm_evidence_failed: bool,
}

impl NodeStatus {
    /// The state, `pending` before any.
    pub fn state(&self) -> NodeState {
        self.state.unwrap_or(NodeState::Pending)
    }

    /// The row the store keeps.
    pub fn to_store(&self) -> AgentStatus {
        AgentStatus {
            operational_state: self.state().operational_state(self.quote_failed),
            attestation_count: self.attestation_count,
            last_received_quote: self.last_received_quote,
            last_successful_attestation: self.last_successful_attestation,
            failure: if self.failures.is_empty() { None } else { serde_json::to_string(&self.failures).ok() },
            round_state: serde_json::to_string(self).ok(),
        }
    }

    /// Back from the store (unknown or damaged state JSON: pending, attested again at once).
    pub fn from_store(s: &AgentStatus) -> NodeStatus {
        let mut n: NodeStatus = s.round_state.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        n.failures = s.failure.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        n.attestation_count = s.attestation_count;
        n.last_received_quote = s.last_received_quote;
        n.last_successful_attestation = s.last_successful_attestation;
        n.due_now = true;
        // Host-side VM evidence is fresh evidence only: after a restart a VM waits for its host's next batch.
        n.vm_batch = None;
        n
    }
}

/// Unix seconds and milliseconds now.
pub fn now() -> (i64, i64) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A history event for `id`.
pub fn event(id: &str, kind: &str, detail: serde_json::Value) -> HistoryEvent {
    HistoryEvent { agent_id: id.to_owned(), at_ms: now().1, kind: kind.to_owned(), detail: detail.to_string() }
}

/// A failure as reported.
pub fn view(f: &Failure) -> FailureView {
    FailureView { check: f.check().to_owned(), message: f.to_string() }
}

/// 20 random alphanumeric characters, as Keylime's verifier sends.
pub fn nonce() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let mut buf = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut buf).is_err() {
            continue;
        }
        // 248 = 4 × 62: rejecting larger bytes keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == 20 {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b % 62)]));
        }
    }
    out
}

/// The parsed pieces a round needs, rebuilt when the spec or a policy changes.
struct Prepared {
    generation: u64,
    epoch: u64,
    policy: AgentPolicy,
    mask: u32,
    base: String,
    root: String,
    http: reqwest::Client,
    hvm: Option<cairn_core::pcr::PcrIndex>,
    levels: bool,
}

fn prepare(fleet: &Fleet, node: &Node, generation: u64, epoch: u64) -> Result<Prepared, String> {
    let spec = node.spec.read().map_err(|_| "spec lock poisoned".to_owned())?.clone();
    let ak = spec.ak().map_err(|e| e.to_string())?;
    let hash = spec.quote_hash().map_err(|e| e.to_string())?;
    let store = fleet.store.as_ref();
    let runtime = match &spec.runtime_policy_name {
        Some(n) => Some(fleet.policies.runtime(store, n).map_err(|e| e.to_string())?),
        None => None,
    };
    let measured_boot = match &spec.mb_policy_name {
        Some(n) => Some(fleet.policies.measured_boot(store, n).map_err(|e| e.to_string())?),
        None => None,
    };
    let policy = AgentPolicy {
        ak: VerifyingKey::from_public(&ak),
        nk_pem: spec.nk_pem.clone(),
        hash,
        pcr_policy: spec.pcr_policy().map_err(|e| e.to_string())?,
        runtime,
        measured_boot,
        require_safe_clock: fleet.config.require_safe_clock,
    };
    let http = agent_client::client(&spec.mtls_cert, &fleet.client_identity, fleet.config.request_timeout())
        .map_err(|e| e.to_string())?;
    let host = if spec.ip.contains(':') { format!("[{}]", spec.ip) } else { spec.ip.clone() };
    Ok(Prepared {
        generation,
        epoch,
        policy,
        mask: spec.mask().map_err(|e| e.to_string())?,
        base: format!("https://{host}:{}/v{}", spec.port, spec.api_version),
        root: format!("https://{host}:{}", spec.port),
        http,
        hvm: spec.hvm_pcr.and_then(cairn_core::pcr::PcrIndex::new),
        levels: fleet.refdb.is_some(),
    })
}

/// The node's push-on-change watcher, aborted when replaced or when the node's task ends.
#[derive(Default)]
struct WatcherGuard(Option<tokio::task::AbortHandle>);

impl WatcherGuard {
    fn replace(&mut self, next: Option<tokio::task::AbortHandle>) {
        if let Some(old) = std::mem::replace(&mut self.0, next) {
            old.abort();
        }
    }
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.replace(None);
    }
}

/// What one round came to.
enum Outcome {
    /// Every check passed; the NK when the reply carried one the spec did not hold yet.
    Pass { nk_learned: Option<String> },
    /// Checks failed.
    Fail(Vec<Failure>),
    /// No usable reply.
    Unreachable(String),
    /// The node's spec or policies cannot be used (e.g. a policy was deleted).
    Misconfigured(String),
}

/// Attests `node` until the fleet shuts down (the task is aborted when the node is removed).
pub async fn run(fleet: Arc<Fleet>, node: Arc<Node>) {
    let mut stop = fleet.stop.clone();
    let mut prepared: Option<Prepared> = None;
    let mut watcher = WatcherGuard::default();
    let mut agent_state: Option<AgentState> = None;
    let mut hvm_state: Option<HvmTracker> = None;
    let mut levels = LevelTracker::default();
    let mut next = Instant::now();
    loop {
        // Wait until the node is polled and due.
        loop {
            if *stop.borrow() {
                return;
            }
            let (polled, due_now) = match node.status.lock() {
                Ok(mut s) => (s.state().polled(), std::mem::take(&mut s.due_now)),
                Err(_) => return,
            };
            if due_now {
                next = Instant::now();
                agent_state = None; // reactivated or restarted: replay from the first entry
                hvm_state = None;
                levels.reset_ima();
            }
            if node.early.swap(false, std::sync::atomic::Ordering::AcqRel) {
                next = Instant::now();
            }
            if polled && Instant::now() >= next {
                break;
            }
            if polled {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = node.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            } else {
                tokio::select! {
                    () = node.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let started = Instant::now();
        let Ok(permit) = fleet.permits.clone().acquire_owned().await else { return };
        let generation = node.status.lock().map(|s| s.generation).unwrap_or(u64::MAX);
        let epoch = fleet.policy_epoch();
        let nk_learned = prepared.as_ref().is_some_and(|p| p.policy.nk_pem.is_none())
            && node.spec.read().is_ok_and(|s| s.nk_pem.is_some());
        if nk_learned || prepared.as_ref().is_some_and(|p| p.generation != generation || p.epoch != epoch) {
            prepared = None;
        }
        if prepared.is_none() {
            watcher.replace(None);
            match prepare(&fleet, &node, generation, epoch) {
                Ok(p) => prepared = Some(p),
                Err(why) => {
                    drop(permit);
                    let delay = apply(&fleet, &node, generation, Outcome::Misconfigured(why), &agent_state, None);
                    next = started + delay;
                    continue;
                }
            }
        }
        let Some(p) = prepared.as_ref() else { continue };
        if agent_state.is_none() {
            let kept = node.status.lock().map(|s| s.clone()).unwrap_or_default();
            agent_state = Some(restored_state(p.policy.hash, &kept));
        }
        let round_started = std::time::Instant::now();
        let mut outcome = attest(p, &mut agent_state, &mut hvm_state, &mut levels).await;
        if matches!(outcome, Outcome::Pass { .. }) {
            // A host's VM evidence, once for all its VMs with a VM policy (none: no request).
            let keys = HostKeys { http: &p.http, root: &p.root, ak: &p.policy.ak, hash: p.policy.hash, require_safe: p.policy.require_safe_clock };
            match crate::vmbatch::host_step(&fleet, &node, keys).await {
                Ok(None) => {}
                Ok(Some(f)) => outcome = Outcome::Fail(vec![f]),
                Err(Unreachable(why)) => outcome = Outcome::Unreachable(why),
            }
        }
        let level = match (&fleet.refdb, &outcome) {
            (Some(cache), Outcome::Pass { .. }) => levels.level(cache, BootVerdict::Trusted).await,
            (Some(cache), Outcome::Fail(f)) => levels.level(cache, boot_verdict(f)).await,
            _ => None,
        };
        let passed = matches!(outcome, Outcome::Pass { .. });
        let end = match &outcome {
            Outcome::Pass { .. } => Some(RoundEnd::Pass),
            Outcome::Fail(_) => Some(RoundEnd::Fail),
            Outcome::Unreachable(_) => Some(RoundEnd::Unreachable),
            Outcome::Misconfigured(_) => None,
        };
        let delay = apply(&fleet, &node, generation, outcome, &agent_state, level);
        if let Some(end) = end {
            fleet.rounds.record(end, round_started.elapsed());
        }
        // A VM whose host is not trusted passed its own checks but is not trusted: no key, no watcher.
        let trusted = passed && node.status.lock().is_ok_and(|s| s.state() == NodeState::Attested);
        if trusted {
            if let Some(s) = agent_state.as_ref() {
                node.known_entries.store(s.ima.replay.next_entry(), std::sync::atomic::Ordering::Release);
            }
            release_v(&fleet, &node, p, generation).await;
            // Watched from the first pass on: the long poll then reuses the idle connection, so an
            // agent that does not push costs one connection, not two.
            if watcher.0.is_none() && fleet.config.push_on_change && p.mask & (1 << 10) != 0 {
                let (f, n, http, root) = (fleet.clone(), node.clone(), p.http.clone(), p.root.clone());
                watcher.replace(Some(tokio::spawn(crate::watch::watch(f, n, http, root)).abort_handle()));
            }
        }
        drop(permit);
        next = started + delay;
    }
}

/// One round: request, decode, judge. Leaves the judged next state in `agent_state` only on a pass.
async fn attest(
    p: &Prepared,
    agent_state: &mut Option<AgentState>,
    hvm: &mut Option<HvmTracker>,
    levels: &mut LevelTracker,
) -> Outcome {
    let state = agent_state.get_or_insert_with(|| AgentState::new(p.policy.hash));
    let entry = state.ima.replay.next_entry();
    let partial = p.policy.nk_pem.is_some();
    let nonce = nonce();
    let reply: IntegrityReply = match integrity_quote(&p.http, &p.base, &nonce, p.mask, partial, entry).await {
        Ok(r) => r,
        Err(Unreachable(why)) => return Outcome::Unreachable(why),
    };
    let uefi = match reply.uefi_log() {
        Ok(u) => u,
        Err(why) => return Outcome::Unreachable(why),
    };
    let round = Round {
        nonce: nonce.as_bytes(),
        mask: p.mask,
        quote: &reply.quote,
        boottime: reply.boottime,
        pubkey: reply.pubkey.as_deref(),
        ima_lines: reply.ima_measurement_list.as_deref().map(str::as_bytes),
        ima_entry: reply.ima_measurement_list_entry,
        uefi_log: uefi.as_deref(),
    };
    let judgement = judge(&p.policy, state, &round);
    let hvm_failures = match p.hvm {
        Some(pcr) => match crate::hvm::step(&p.http, &p.base, pcr, p.policy.hash, hvm, &judgement, reply.boottime).await {
            Ok(f) => f,
            Err(Unreachable(why)) => return Outcome::Unreachable(why),
        },
        None => Vec::new(),
    };
    let verdict = match (judgement.verdict, hvm_failures.is_empty()) {
        (v, true) => v,
        (Verdict::Pass, false) => Verdict::Fail(hvm_failures),
        (Verdict::Fail(mut f), false) => {
            f.extend(hvm_failures);
            Verdict::Fail(f)
        }
    };
    match verdict {
        Verdict::Pass => {
            if p.levels {
                // The files of the entries this quote proved, for the node's integrity level.
                if let Some(lines) = reply.ima_measurement_list.as_deref() {
                    let start = reply.ima_measurement_list_entry.unwrap_or(0);
                    levels.add_ima(lines.as_bytes(), start, judgement.next_state.ima.replay.next_entry());
                }
                if let Some(t) = hvm.as_ref() {
                    levels.set_hvm(&t.files);
                }
            }
            *state = judgement.next_state;
            let nk_learned = if partial { None } else { reply.pubkey.clone() };
            Outcome::Pass { nk_learned }
        }
        Verdict::Fail(failures) => Outcome::Fail(failures),
    }
}

/// After a passing round: sends the tenant's V to the agent (wrapped to its NK, which PCR 16 bound to
/// this TPM in the round just judged), once. A failure is logged and retried after the next pass.
async fn release_v(fleet: &Fleet, node: &Node, p: &Prepared, generation: u64) {
    let (v, nk) = match node.spec.read() {
        Ok(s) => (s.v.clone(), s.nk_pem.clone()),
        Err(_) => return,
    };
    let released = node.status.lock().map(|s| s.v_released || s.generation != generation).unwrap_or(true);
    let (Some(v), Some(nk), false) = (v, nk, released) else { return };
    let wrapped = cairn_core::bootstrap::KeyHalf::from_base64("v", &v)
        .and_then(|half| cairn_core::bootstrap::wrap_for_nk(&nk, &half));
    let body = match wrapped {
        Ok(encrypted_key) => serde_json::json!({ "encrypted_key": encrypted_key }),
        Err(e) => {
            tracing::error!(agent = %node.id, error = %e, "cannot wrap V to the agent's NK");
            return;
        }
    };
    let url = format!("{}/keys/vkey", p.base);
    let outcome = match p.http.post(&url).json(&body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("agent answered HTTP {}", r.status())),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => {
            let update = match node.status.lock() {
                Ok(mut st) if st.generation == generation => {
                    st.v_released = true;
                    StatusUpdate {
                        agent_id: node.id.clone(),
                        status: st.to_store(),
                        events: vec![event(&node.id, "key_released", serde_json::json!({}))],
                    }
                }
                _ => return,
            };
            tracing::info!(agent = %node.id, "bootstrap key half V released after a passing round");
            fleet.write(update);
        }
        Err(why) => tracing::warn!(agent = %node.id, reason = %why, "releasing V failed; retried after the next passing round"),
    }
}

/// Applies a round's outcome to the node's status; returns the delay to the next round.
fn apply(
    fleet: &Fleet,
    node: &Node,
    generation: u64,
    outcome: Outcome,
    agent_state: &Option<AgentState>,
    level: Option<LevelReport>,
) -> Duration {
    let interval = fleet.config.quote_interval();
    let (now_s, _) = now();
    // Read before this node's lock is taken: locks are only ever nested VM → host.
    let host_block = matches!(outcome, Outcome::Pass { .. }).then(|| host_block(fleet, node)).flatten();
    let vm_host = node.spec.read().ok().filter(|s| s.vm_policy.is_some()).and_then(|s| s.host_agent_id.clone());
    let Ok(mut st) = node.status.lock() else { return interval };
    if st.generation != generation {
        return Duration::ZERO; // stopped, reactivated or changed meanwhile: this round does not count
    }
    let before = st.state();
    let mut events = Vec::new();
    let mut revoke = None;
    if !matches!(outcome, Outcome::Pass { .. }) {
        st.vm_evidence_failed = false;
    }
    let delay = match outcome {
        Outcome::Pass { nk_learned } => {
            st.quote_failed = false;
            st.misses = 0;
            st.last_received_quote = Some(now_s);
            if let Some(s) = agent_state.as_ref() {
                st.last_clock = s.last_clock.map(|c| (c.reset_count, c.restart_count, c.clock));
                st.boottime = s.boottime;
            }
            match host_block {
                // A VM's own evidence passed but its host is not trusted: neither is the VM.
                Some(why) => {
                    st.state = Some(NodeState::HostUntrusted);
                    st.failures = vec![FailureView { check: "host".into(), message: why.clone() }];
                    if before != NodeState::HostUntrusted {
                        tracing::warn!(agent = %node.id, reason = %why, "VM untrusted because of its host");
                        events.push(event(&node.id, "host_untrusted", serde_json::json!({"reason": why})));
                        let event_id = format!("{}-{}", node.id, now().1);
                        st.last_event_id = Some(event_id.clone());
                        revoke = Some(RevocationRequest::new(node, event_id, &st.failures, false));
                    }
                }
                None => match vm_host.as_deref().map(|h| crate::vmbatch::evidence(h, st.vm_batch.as_ref(), now().1, crate::vmbatch::max_age(fleet))) {
                    // A VM's own evidence passed, its host is attested, but the host's VM batch has not judged it yet.
                    Some(Evidence::Waiting(why)) => {
                        st.state = Some(NodeState::Pending);
                        st.vm_evidence_failed = false;
                        st.failures = vec![FailureView { check: "vm_evidence_pending".into(), message: why }];
                    }
                    // Its leaf in the host's batch failed (or is too old): failed, revived by a passing batch.
                    Some(Evidence::Fail(views)) => {
                        st.state = Some(NodeState::Failed);
                        st.vm_evidence_failed = true;
                        if before != NodeState::Failed {
                            tracing::warn!(agent = %node.id, failures = %summary(&views), "VM failed on its host-side evidence");
                            events.push(event(&node.id, "vm_evidence_fail", serde_json::json!({"failures": views})));
                            let event_id = format!("{}-{}", node.id, now().1);
                            st.last_event_id = Some(event_id.clone());
                            revoke = Some(RevocationRequest::new(node, event_id, &views, false));
                        }
                        st.failures = views;
                    }
                    Some(Evidence::Pass) | None => {
                        st.vm_evidence_failed = false;
                        st.state = Some(NodeState::Attested);
                        st.failures.clear();
                        st.attestation_count += 1;
                        st.last_successful_attestation = Some(now_s);
                        if before != NodeState::Attested {
                            events.push(event(&node.id, "pass", serde_json::json!({"from": before.name()})));
                        }
                    }
                },
            }
            if let Some(nk) = nk_learned {
                fleet.learn_nk(node, nk);
            }
            interval
        }
        Outcome::Fail(failures) => {
            let views: Vec<FailureView> = failures.iter().map(view).collect();
            st.state = Some(NodeState::Failed);
            st.quote_failed = failures.iter().any(|f| matches!(f, Failure::Quote(_) | Failure::QuoteString(_)));
            st.misses = 0;
            st.last_received_quote = Some(now_s);
            tracing::warn!(agent = %node.id, failures = %summary(&views), "attestation failed");
            events.push(event(&node.id, "fail", serde_json::json!({"failures": views})));
            st.failures = views;
            let event_id = format!("{}-{}", node.id, now().1);
            st.last_event_id = Some(event_id.clone());
            revoke = Some(RevocationRequest::new(node, event_id, &st.failures, st.quote_failed));
            interval
        }
        Outcome::Unreachable(why) => {
            st.misses = st.misses.saturating_add(1);
            if before != NodeState::Unreachable {
                tracing::warn!(agent = %node.id, reason = %why, "agent unreachable");
                events.push(event(&node.id, "unreachable", serde_json::json!({"reason": why})));
            }
            st.state = Some(NodeState::Unreachable);
            st.failures = vec![FailureView { check: "unreachable".into(), message: why }];
            fleet.config.retry_delay(st.misses)
        }
        Outcome::Misconfigured(why) => {
            tracing::warn!(agent = %node.id, reason = %why, "cannot attest: configuration");
            if before != NodeState::Failed {
                events.push(event(&node.id, "fail", serde_json::json!({"failures": [{"check": "configuration", "message": why}]})));
            }
            st.state = Some(NodeState::Failed);
            st.quote_failed = false;
            st.failures = vec![FailureView { check: "configuration".into(), message: why }];
            interval
        }
    };
    if let Some(report) = level {
        if let Some(change) = level_change(node, &mut st, &report) {
            events.push(event(&node.id, "level", serde_json::json!({"from": change.from, "to": change.to, "reasons": change.reasons})));
            fleet.level_changed(change);
        }
    }
    let after = st.state();
    let update = StatusUpdate { agent_id: node.id.clone(), status: st.to_store(), events };
    drop(st);
    fleet.write(update);
    if let Some(r) = revoke {
        fleet.revoke(r);
    }
    if (before == NodeState::Attested) != (after == NodeState::Attested) {
        host_changed(fleet, node, after);
    }
    delay
}

/// Why a VM's host keeps it untrusted now; `None` when the node is no VM or its host is attested.
fn host_block(fleet: &Fleet, node: &Node) -> Option<String> {
    let host = node.spec.read().ok()?.host_agent_id.clone()?;
    let Ok(h) = fleet.node(&host) else { return Some(format!("host {host} is no longer attested by this verifier")) };
    let Ok(st) = h.status.lock() else { return Some(format!("host {host}: status unavailable")) };
    match (st.state(), st.failures.first()) {
        (NodeState::Attested, _) => None,
        (s, Some(f)) => Some(format!("host {host} is {s}: {}", f.message)),
        (s, None) => Some(format!("host {host} is {s}")),
    }
}

/// A node became trusted or stopped being trusted: its VMs follow at once. Attested VMs of a host
/// that is no longer attested turn `host_untrusted` now (with a revocation); VMs waiting on a host
/// that is attested again are attested at once.
pub fn host_changed(fleet: &Fleet, host: &Node, now_state: NodeState) {
    let vms: Vec<Arc<Node>> = fleet
        .all()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.spec.read().is_ok_and(|s| s.host_agent_id.as_deref() == Some(host.id.as_str())))
        .collect();
    if vms.is_empty() {
        return;
    }
    let why = host_block_of(host, now_state);
    for vm in vms {
        match &why {
            None => {
                let waiting = vm.status.lock().is_ok_and(|s| s.state() == NodeState::HostUntrusted);
                if waiting {
                    vm.early.store(true, std::sync::atomic::Ordering::Release);
                    vm.wake.notify_one();
                }
            }
            Some(why) => {
                let Ok(mut st) = vm.status.lock() else { continue };
                if !matches!(st.state(), NodeState::Attested | NodeState::Pending) {
                    continue;
                }
                st.state = Some(NodeState::HostUntrusted);
                st.failures = vec![FailureView { check: "host".into(), message: why.clone() }];
                let event_id = format!("{}-{}", vm.id, now().1);
                st.last_event_id = Some(event_id.clone());
                let revoke = RevocationRequest::new(&vm, event_id, &st.failures, false);
                let update = StatusUpdate {
                    agent_id: vm.id.clone(),
                    status: st.to_store(),
                    events: vec![event(&vm.id, "host_untrusted", serde_json::json!({"reason": why}))],
                };
                drop(st);
                tracing::warn!(agent = %vm.id, reason = %why, "VM untrusted because of its host");
                fleet.write(update);
                fleet.revoke(revoke);
            }
        }
    }
}

/// [`host_block`] seen from the host, whose new state is `state`.
fn host_block_of(host: &Node, state: NodeState) -> Option<String> {
    if state == NodeState::Attested {
        return None;
    }
    let first = host.status.lock().ok().and_then(|s| s.failures.first().map(|f| f.message.clone()));
    Some(match first {
        Some(m) => format!("host {} is {state}: {m}", host.id),
        None => format!("host {} is {state}", host.id),
    })
}

/// Records a round's level in the status; the change, when the level is not the one it was.
fn level_change(node: &Node, st: &mut NodeStatus, report: &LevelReport) -> Option<LevelChange> {
    st.level_reasons = report.reasons.iter().take(MAX_REASONS).filter_map(|r| serde_json::to_value(r).ok()).collect();
    let before = st.level.replace(report.level);
    if before == Some(report.level) {
        return None;
    }
    let reasons: Vec<serde_json::Value> = st.level_reasons.clone();
    tracing::info!(agent = %node.id, from = ?before.map(IntegrityLevel::name), to = report.level.name(), "integrity level changed");
    let at_ms = now().1;
    Some(LevelChange {
        kind: LEVEL_CHANGE_TYPE,
        event_id: format!("{}-level-{at_ms}", node.id),
        agent_id: node.id.clone(),
        ip: node.spec.read().map(|s| s.ip.clone()).unwrap_or_default(),
        from: before.map(|l| l.name().to_owned()),
        to: report.level.name().to_owned(),
        reasons,
        at_ms,
    })
}

fn summary(views: &[FailureView]) -> String {
    views.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// Restores the kept TPM clock and boot time into a fresh state.
pub fn restored_state(hash: cairn_core::HashAlg, st: &NodeStatus) -> AgentState {
    let mut s = AgentState::new(hash);
    s.last_clock = st.last_clock.map(|(reset_count, restart_count, clock)| ClockInfo { clock, reset_count, restart_count, safe: true });
    s.boottime = st.boottime;
    s
}
