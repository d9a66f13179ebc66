//! What the verifier stores and the operations it needs, as one trait.
//!
//! A node the tenant added is kept as its *spec* — the tenant's request as the verifier normalised
//! it, a JSON document the verifier owns and the store does not interpret — plus an attestation
//! *status* that changes every round. Status changes travel in batches ([`StatusUpdate`]) so a
//! verifier attesting thousands of nodes writes once per batch, not once per quote; each batch is
//! one transaction together with the history events it records, so a crash never leaves a status
//! without its event or half a batch. The history keeps what an operator needs to read back
//! (failures with their reasons, state changes), bounded per node.

use crate::error::StoreError;

/// How many history events are kept per node; older ones are dropped as new ones arrive.
pub const HISTORY_PER_AGENT: usize = 200;

/// The two kinds of named policy a verifier keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A runtime (IMA) policy, Keylime's `allowlists`.
    Runtime,
    /// A measured-boot reference state, Keylime's `mbpolicies`.
    MeasuredBoot,
}

impl PolicyKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Runtime => "runtime",
            PolicyKind::MeasuredBoot => "measured_boot",
        }
    }
}

/// A node's attestation status as last written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Operational state (Keylime's numbering, see the verifier).
    pub operational_state: i64,
    /// Rounds that passed.
    pub attestation_count: u64,
    /// Unix seconds of the last quote received.
    pub last_received_quote: Option<i64>,
    /// Unix seconds of the last passing round.
    pub last_successful_attestation: Option<i64>,
    /// The last failure (JSON, owned by the verifier), while the node is failed.
    pub failure: Option<String>,
    /// What the verifier keeps between rounds (JSON, owned by the verifier).
    pub round_state: Option<String>,
}

/// A node as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierAgent {
    /// The agent id.
    pub agent_id: String,
    /// The tenant's request, normalised (JSON owned by the verifier).
    pub spec: String,
    /// Unix seconds when it was added.
    pub added_at: i64,
    /// Its status.
    pub status: AgentStatus,
}

/// Something that happened to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEvent {
    /// The node.
    pub agent_id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Short kind (`pass`, `fail`, `unreachable`, …; owned by the verifier).
    pub kind: String,
    /// Details (JSON owned by the verifier).
    pub detail: String,
}

/// A new status for a node and the events that go with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The node.
    pub agent_id: String,
    /// Its new status.
    pub status: AgentStatus,
    /// Events to append to its history.
    pub events: Vec<HistoryEvent>,
}

/// One attempt to deliver a signed revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The revocation's event id.
    pub event_id: String,
    /// The node that was revoked.
    pub agent_id: String,
    /// Where it went (a webhook URL or `agent:<uuid>`).
    pub target: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Whether the receiver accepted it.
    pub ok: bool,
    /// The HTTP status or the error.
    pub outcome: String,
}

/// The verifier's persistence. Every method is atomic.
pub trait VerifierStore: Send + Sync {
    /// Stores a new node; returns false (writing nothing) when the id is already there.
    fn add_agent(&self, agent: &VerifierAgent) -> Result<bool, StoreError>;

    /// Replaces a node's spec; returns whether it exists.
    fn update_agent_spec(&self, agent_id: &str, spec: &str) -> Result<bool, StoreError>;

    /// Removes a node with its history and delivery records; returns whether it existed.
    fn delete_agent(&self, agent_id: &str) -> Result<bool, StoreError>;

    /// One node.
    fn verifier_agent(&self, agent_id: &str) -> Result<Option<VerifierAgent>, StoreError>;

    /// Every node, sorted by id.
    fn verifier_agents(&self) -> Result<Vec<VerifierAgent>, StoreError>;

    /// Writes every update in one transaction; updates for nodes deleted meanwhile are skipped.
    fn save_statuses(&self, updates: &[StatusUpdate]) -> Result<(), StoreError>;

    /// The newest `limit` events of a node, newest first.
    fn history(&self, agent_id: &str, limit: usize) -> Result<Vec<HistoryEvent>, StoreError>;

    /// Stores a new named policy; returns false (writing nothing) when the name is taken.
    fn add_policy(
        &self,
        kind: PolicyKind,
        name: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Replaces a named policy's body; returns whether it exists.
    fn replace_policy(&self, kind: PolicyKind, name: &str, body: &str) -> Result<bool, StoreError>;

    /// A named policy's body.
    fn policy(&self, kind: PolicyKind, name: &str) -> Result<Option<String>, StoreError>;

    /// The names of the policies of a kind, sorted.
    fn policy_names(&self, kind: PolicyKind) -> Result<Vec<String>, StoreError>;

    /// Removes a named policy; returns whether it existed.
    fn delete_policy(&self, kind: PolicyKind, name: &str) -> Result<bool, StoreError>;

    /// Appends delivery attempts.
    fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<(), StoreError>;

    /// A node's delivery records, oldest first.
    fn deliveries(&self, agent_id: &str) -> Result<Vec<Delivery>, StoreError>;
}
