//! The fleet: every node the verifier attests, its task, and the tenant's operations on them.
//!
//! Tenant operations write to the store before they answer (an added node or policy survives a
//! `kill -9` the moment the tenant has its 200), then change the in-memory node and wake its task.
//! Round results go the other way: memory first, the store through the batched writer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cairn_core::levels::IntegrityLevel;
use cairn_proto::verifier::{AgentView, PlacementHost};
use cairn_store::{PolicyKind, StatusUpdate, VerifierAgent, VerifierStore};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::agent_client::ClientIdentity;
use crate::config::VerifierConfig;
use crate::error::VerifierError;
use crate::level_events::LevelChange;
use crate::levels::RefCache;
use crate::node::{self, event, Node, NodeStatus};
use crate::policies::{self, PolicyCache};
use crate::revoke::RevocationRequest;
use crate::spec::{CheckedAdd, NodeSpec};
use crate::state::NodeState;
use crate::vmbatch::VmOnHost;

/// Where node tasks send what outlives a round: status writes, revocations, level changes.
#[derive(Debug)]
pub struct Outboxes {
    /// To the batched store writer.
    pub writer: mpsc::Sender<StatusUpdate>,
    /// To the revocation sender.
    pub revocations: mpsc::UnboundedSender<RevocationRequest>,
    /// To the level-change sender.
    pub level_events: mpsc::UnboundedSender<LevelChange>,
}

/// Everything the node tasks and the API share.
pub struct Fleet {
    /// The store.
    pub store: Arc<dyn VerifierStore>,
    /// Parsed policies.
    pub policies: PolicyCache,
    /// Settings.
    pub config: VerifierConfig,
    /// What the verifier presents to agents.
    pub client_identity: ClientIdentity,
    /// Rounds in flight.
    pub permits: Arc<Semaphore>,
    /// Turns true at shutdown.
    pub stop: watch::Receiver<bool>,
    /// Rounds run since start (for `/metrics`).
    pub rounds: crate::rounds::RoundStats,
    /// The reference database levels are computed with (none: levels are not computed).
    pub refdb: Option<Arc<RefCache>>,
    level_events: mpsc::UnboundedSender<LevelChange>,
    nodes: Mutex<HashMap<String, (Arc<Node>, AbortHandle)>>,
    /// VM nodes with a VM policy, by host id, each with its policy parsed once when the node starts
    /// (a host round looks its VMs up here instead of scanning the fleet and re-parsing).
    vms_by_host: Mutex<VmIndex>,
    writer: mpsc::Sender<StatusUpdate>,
    revocations: mpsc::UnboundedSender<RevocationRequest>,
    epoch: AtomicU64,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// VM nodes with a VM policy by host id, each with its parsed policy.
type VmIndex = HashMap<String, Vec<(Arc<Node>, VmOnHost)>>;

/// Drops VM `id` from the by-host index.
fn unindex_vm(vms: &mut VmIndex, id: &str) {
    vms.retain(|_, list| {
        list.retain(|(n, _)| n.id != id);
        !list.is_empty()
    });
}

fn poisoned() -> VerifierError {
    VerifierError::Internal("fleet lock poisoned".into())
}

impl Fleet {
    /// A fleet over `store`, not yet attesting anything (see [`Fleet::resume`]).
    pub fn new(
        store: Arc<dyn VerifierStore>,
        config: VerifierConfig,
        client_identity: ClientIdentity,
        stop: watch::Receiver<bool>,
        outboxes: Outboxes,
        refdb: Option<Arc<RefCache>>,
    ) -> Fleet {
        let Outboxes { writer, revocations, level_events } = outboxes;
        Fleet {
            store,
            policies: PolicyCache::default(),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            client_identity,
            stop,
            rounds: crate::rounds::RoundStats::default(),
            refdb,
            level_events,
            nodes: Mutex::new(HashMap::new()),
            vms_by_host: Mutex::new(HashMap::new()),
            writer,
            revocations,
            epoch: AtomicU64::new(0),
        }
    }

    /// Loads every stored node and starts attesting those that are polled, at once.
    pub fn resume(self: &Arc<Self>) -> Result<usize, VerifierError> {
        let stored = self.store.verifier_agents()?;
        let n = stored.len();
        for a in stored {
            let spec: NodeSpec = match serde_json::from_str(&a.spec) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(agent = %a.agent_id, error = %e, "stored node spec is unreadable; node skipped");
                    continue;
                }
            };
            let status = NodeStatus::from_store(&a.status);
            self.spawn(a.agent_id, spec, status)?;
        }
        Ok(n)
    }

    fn spawn(self: &Arc<Self>, id: String, spec: NodeSpec, status: NodeStatus) -> Result<Arc<Node>, VerifierError> {
        let vm = match (&spec.host_agent_id, &spec.vm_policy) {
            (Some(host), Some(_)) => {
                let parsed = spec.vm_policy().map_err(|e| e.to_string()).and_then(|p| p.ok_or_else(|| "no vm_uuid".to_owned()));
                Some((host.clone(), parsed))
            }
            _ => None,
        };
        let node = Arc::new(Node {
            id: id.clone(),
            spec: RwLock::new(spec),
            status: Mutex::new(status),
            wake: Notify::new(),
            early: std::sync::atomic::AtomicBool::new(false),
            known_entries: AtomicU64::new(0),
        });
        let task = tokio::spawn(node::run(self.clone(), node.clone()));
        let old = self.nodes.lock().map_err(|_| poisoned())?.insert(id, (node.clone(), task.abort_handle()));
        if let Some((_, h)) = old {
            h.abort();
        }
        let mut vms = self.vms_by_host.lock().map_err(|_| poisoned())?;
        unindex_vm(&mut vms, &node.id);
        if let Some((host, parsed)) = vm {
            vms.entry(host).or_default().push((node.clone(), parsed));
        }
        Ok(node)
    }

    /// The VM nodes on `host` that have a VM policy, with it parsed.
    pub fn vms_on(&self, host: &str) -> Vec<(Arc<Node>, VmOnHost)> {
        self.vms_by_host.lock().ok().and_then(|m| m.get(host).cloned()).unwrap_or_default()
    }

    /// The node `id`.
    pub fn node(&self, id: &str) -> Result<Arc<Node>, VerifierError> {
        self.nodes
            .lock()
            .map_err(|_| poisoned())?
            .get(id)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| VerifierError::NotFound(format!("agent {id} is not known to this verifier")))
    }

    /// Every node, sorted by id.
    pub fn all(&self) -> Result<Vec<Arc<Node>>, VerifierError> {
        let mut v: Vec<Arc<Node>> = self.nodes.lock().map_err(|_| poisoned())?.values().map(|(n, _)| n.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    /// Adds a node: stores its inline policies and itself, then starts attesting it.
    pub async fn add(self: &Arc<Self>, id: &str, checked: CheckedAdd) -> Result<(), VerifierError> {
        if self.nodes.lock().map_err(|_| poisoned())?.contains_key(id) {
            return Err(VerifierError::Conflict(format!("agent {id} is already added; delete it first")));
        }
        for p in &checked.inline {
            let parsed = policies::parse(p.kind, &p.text)?;
            let (s, kind, name, text) = (self.store.clone(), p.kind, p.name.clone(), p.text.clone());
            // A policy named after the node is the node's own: a new add replaces it.
            let own = p.name == id;
            let stored = blocking(move || match s.policy(kind, &name)? {
                None => s.add_policy(kind, &name, &text, node::now().0).map(|_| true),
                Some(existing) if existing == text => Ok(true),
                Some(_) if own => s.replace_policy(kind, &name, &text),
                Some(_) => Ok(false),
            })
            .await?;
            if own {
                self.epoch.fetch_add(1, Ordering::AcqRel);
            }
            if !stored {
                return Err(VerifierError::Conflict(format!(
                    "a different {} policy named {:?} exists; use another name or update it",
                    p.kind.as_str(),
                    p.name
                )));
            }
            self.policies.put(p.kind, &p.name, parsed)?;
        }
        for (kind, name) in [(PolicyKind::Runtime, &checked.spec.runtime_policy_name), (PolicyKind::MeasuredBoot, &checked.spec.mb_policy_name)] {
            if let Some(n) = name {
                self.policies.get(self.store.as_ref(), kind, n)?;
            }
        }
        if let Some(host) = &checked.spec.host_agent_id {
            self.node(host).map_err(|_| {
                VerifierError::BadRequest(format!("host_agent_id: host {host} is not attested by this verifier; add it first"))
            })?;
        }
        let status = NodeStatus { state: Some(NodeState::Pending), ..NodeStatus::default() };
        let row = VerifierAgent {
            agent_id: id.to_owned(),
            spec: serde_json::to_string(&checked.spec).map_err(|e| VerifierError::Internal(e.to_string()))?,
            added_at: node::now().0,
            status: status.to_store(),
        };
        let s = self.store.clone();
        let r = row.clone();
        if !blocking(move || s.add_agent(&r)).await? {
            return Err(VerifierError::Conflict(format!("agent {id} is already added; delete it first")));
        }
        self.write(StatusUpdate {
            agent_id: id.to_owned(),
            status: row.status,
            events: vec![event(id, "added", serde_json::json!({"ip": checked.spec.ip, "port": checked.spec.port}))],
        });
        tracing::info!(agent = %id, ip = %checked.spec.ip, port = checked.spec.port, "node added");
        self.spawn(id.to_owned(), checked.spec, status)?;
        Ok(())
    }

    /// Removes a node and everything recorded about it.
    pub async fn delete(&self, id: &str) -> Result<(), VerifierError> {
        let removed = self.nodes.lock().map_err(|_| poisoned())?.remove(id);
        unindex_vm(&mut *self.vms_by_host.lock().map_err(|_| poisoned())?, id);
        let s = self.store.clone();
        let key = id.to_owned();
        let existed = blocking(move || s.delete_agent(&key)).await?;
        match removed {
            Some((n, task)) => {
                task.abort();
                // Its VMs lose their host: untrusted at once.
                node::host_changed(self, &n, NodeState::Stopped);
            }
            None if !existed => return Err(VerifierError::NotFound(format!("agent {id} is not known to this verifier"))),
            None => {}
        }
        tracing::info!(agent = %id, "node deleted");
        Ok(())
    }

    /// Stops polling a node (it reads as FAIL until reactivated).
    pub fn stop_node(&self, id: &str) -> Result<(), VerifierError> {
        let node = self.node(id)?;
        self.transition(&node, NodeState::Stopped, "stopped", false)
    }

    /// Attests a node again from scratch, at once.
    pub fn reactivate(&self, id: &str) -> Result<(), VerifierError> {
        let node = self.node(id)?;
        self.transition(&node, NodeState::Pending, "reactivated", true)
    }

    fn transition(&self, node: &Node, to: NodeState, kind: &str, due_now: bool) -> Result<(), VerifierError> {
        let (update, was_attested) = {
            let mut st = node.status.lock().map_err(|_| poisoned())?;
            let was_attested = st.state() == NodeState::Attested;
            st.state = Some(to);
            st.generation += 1;
            st.failures.clear();
            st.quote_failed = false;
            st.vm_evidence_failed = false;
            st.misses = 0;
            st.due_now = due_now;
            if due_now {
                st.v_released = false; // reactivated: V goes out again after the next pass
            }
            let u = StatusUpdate { agent_id: node.id.clone(), status: st.to_store(), events: vec![event(&node.id, kind, serde_json::json!({}))] };
            (u, was_attested)
        };
        self.write(update);
        if was_attested {
            node::host_changed(self, node, to);
        }
        node.wake.notify_one();
        tracing::info!(agent = %node.id, "node {kind}");
        Ok(())
    }

    /// Keeps the NK an agent sent on its first passing round.
    pub fn learn_nk(&self, node: &Node, nk: String) {
        let spec = match node.spec.write() {
            Ok(mut s) if s.nk_pem.is_none() => {
                s.nk_pem = Some(nk);
                s.clone()
            }
            _ => return,
        };
        let (store, id) = (self.store.clone(), node.id.clone());
        tokio::task::spawn_blocking(move || {
            let saved = serde_json::to_string(&spec).map_err(|e| e.to_string()).and_then(|j| {
                store.update_agent_spec(&id, &j).map_err(|e| e.to_string())
            });
            if let Err(e) = saved {
                tracing::error!(agent = %id, error = %e, "storing the learned NK failed");
            }
        });
    }

    /// Queues a status write.
    pub fn write(&self, update: StatusUpdate) {
        if let Err(mpsc::error::TrySendError::Full(u)) = self.writer.try_send(update) {
            let tx = self.writer.clone();
            tokio::spawn(async move {
                let _ = tx.send(u).await;
            });
        }
    }

    /// Queues a revocation.
    pub fn revoke(&self, r: RevocationRequest) {
        if self.revocations.send(r).is_err() {
            tracing::error!("revocation sender is gone; a revocation was not sent");
        }
    }

    /// Queues a level-change event for the level webhooks.
    pub fn level_changed(&self, change: LevelChange) {
        if !self.config.level_webhooks.is_empty() && self.level_events.send(change).is_err() {
            tracing::error!("level event sender is gone; a level change was not sent");
        }
    }

    /// Changes whenever a policy is replaced or deleted.
    pub fn policy_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores a new named policy (checked by parsing it).
    pub async fn add_policy(&self, kind: PolicyKind, name: &str, text: String) -> Result<(), VerifierError> {
        let parsed = policies::parse(kind, &text)?;
        let (s, n) = (self.store.clone(), name.to_owned());
        if !blocking(move || s.add_policy(kind, &n, &text, node::now().0)).await? {
            return Err(VerifierError::Conflict(format!("a {} policy named {name:?} exists", kind.as_str())));
        }
        self.policies.put(kind, name, parsed)
    }

    /// Replaces a named policy; nodes using it judge by the new one from their next round.
    pub async fn replace_policy(&self, kind: PolicyKind, name: &str, text: String) -> Result<(), VerifierError> {
        let parsed = policies::parse(kind, &text)?;
        let (s, n) = (self.store.clone(), name.to_owned());
        if !blocking(move || s.replace_policy(kind, &n, &text)).await? {
            return Err(VerifierError::NotFound(format!("no {} policy named {name:?}", kind.as_str())));
        }
        self.policies.put(kind, name, parsed)?;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Deletes a named policy no node uses.
    pub async fn delete_policy(&self, kind: PolicyKind, name: &str) -> Result<(), VerifierError> {
        let users: Vec<String> = self
            .all()?
            .iter()
            .filter(|n| {
                n.spec.read().is_ok_and(|s| match kind {
                    PolicyKind::Runtime => s.runtime_policy_name.as_deref() == Some(name),
                    PolicyKind::MeasuredBoot => s.mb_policy_name.as_deref() == Some(name),
                })
            })
            .map(|n| n.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(VerifierError::Conflict(format!("{} policy {name:?} is used by {}", kind.as_str(), users.join(", "))));
        }
        let (s, n) = (self.store.clone(), name.to_owned());
        if !blocking(move || s.delete_policy(kind, &n)).await? {
            return Err(VerifierError::NotFound(format!("no {} policy named {name:?}", kind.as_str())));
        }
        self.policies.forget(kind, name)?;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The view of a node the API returns.
    pub fn view(&self, node: &Node) -> Result<AgentView, VerifierError> {
        let spec = node.spec.read().map_err(|_| poisoned())?.clone();
        let st = node.status.lock().map_err(|_| poisoned())?.clone();
        let state = st.state();
        Ok(AgentView {
            operational_state: state.operational_state(st.quote_failed),
            attestation_status: state.attestation_status().to_owned(),
            ip: spec.ip.clone(),
            port: spec.port,
            tpm_policy: spec.tpm_policy.clone(),
            meta_data: spec.metadata.clone(),
            has_mb_refstate: u8::from(spec.mb_policy_name.is_some()),
            has_runtime_policy: u8::from(spec.runtime_policy_name.is_some()),
            accept_tpm_hash_algs: spec.accept_tpm_hash_algs.clone(),
            accept_tpm_encryption_algs: spec.accept_tpm_encryption_algs.clone(),
            accept_tpm_signing_algs: spec.accept_tpm_signing_algs.clone(),
            hash_alg: spec.quote_hash().map(|h| h.name().to_owned()).unwrap_or_default(),
            enc_alg: spec.enc_alg(),
            sign_alg: spec.sign_alg(),
            verifier_id: self.config.verifier_id.clone(),
            verifier_ip: self.config.ip.to_string(),
            verifier_port: self.config.port,
            last_event_id: st.last_event_id.clone(),
            attestation_count: st.attestation_count,
            last_received_quote: st.last_received_quote.unwrap_or(0),
            last_successful_attestation: st.last_successful_attestation.unwrap_or(0),
            agent_id: node.id.clone(),
            cairn_state: state.name().to_owned(),
            failures: st.failures.clone(),
            runtime_policy_name: spec.runtime_policy_name.clone(),
            mb_policy_name: spec.mb_policy_name.clone(),
            hvm_pcr: spec.hvm_pcr,
            host_name: spec.host_name.clone(),
            host_agent_id: spec.host_agent_id.clone(),
            vm_uuid: spec.vm_uuid.clone(),
            vm_batch: st.vm_batch.as_ref().map(crate::vmbatch::VmBatchStatus::view),
            integrity_level: st.level.map(|l| l.name().to_owned()),
            integrity_level_reasons: st.level_reasons.clone(),
        })
    }
}

impl Fleet {
    /// Hosts that qualify now for a placement query: attested (last round passed, not unreachable),
    /// passed within [`VerifierConfig::placement_max_age`], with a computed level equal to `exact` and
    /// at least `min` (either may be absent, not both).
    pub fn placement(&self, exact: Option<IntegrityLevel>, min: Option<IntegrityLevel>) -> Result<Vec<PlacementHost>, VerifierError> {
        if self.refdb.is_none() {
            return Err(VerifierError::Conflict(
                "integrity levels are not computed: this verifier has no reference database (`refdb`)".into(),
            ));
        }
        if exact.is_none() && min.is_none() {
            return Err(VerifierError::BadRequest("give trusted_host=LEVEL or min_trusted_host=LEVEL".into()));
        }
        let max_age = i64::try_from(self.config.placement_max_age().as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
        let (now_s, _) = node::now();
        let mut hosts = Vec::new();
        for n in self.all()? {
            let st = n.status.lock().map_err(|_| poisoned())?.clone();
            let (Some(level), Some(last)) = (st.level, st.last_successful_attestation) else { continue };
            let fresh = now_s.saturating_sub(last) <= max_age;
            if st.state() != NodeState::Attested || !fresh {
                continue;
            }
            if exact.is_some_and(|l| l != level) || min.is_some_and(|m| level < m) {
                continue;
            }
            let spec = n.spec.read().map_err(|_| poisoned())?;
            hosts.push(PlacementHost {
                agent_id: n.id.clone(),
                host_name: spec.host_name.clone().unwrap_or_else(|| spec.ip.clone()),
                ip: spec.ip.clone(),
                integrity_level: level.name().to_owned(),
                last_successful_attestation: last,
            });
        }
        Ok(hosts)
    }
}

/// Runs a store call off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cairn_store::StoreError> + Send + 'static,
) -> Result<T, VerifierError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| VerifierError::Internal(e.to_string()))?.map_err(VerifierError::from)
}
