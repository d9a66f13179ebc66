//! What the registrar stores and the operations it needs, as one trait.
//!
//! A registration is the identity a TPM presented (EK, EK certificate, AK) plus contact data.
//! The identity of an agent id never changes once stored: re-registering with other keys is
//! refused by the store itself (atomically, not by a read-then-write in the service), while
//! re-registering the same identity bumps `regcount` and replaces the pending challenge.

use crate::error::StoreError;

/// A registration that passed every check, about to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRegistration {
    /// The agent id (Keylime's agent UUID).
    pub agent_id: String,
    /// EK TPM2B_PUBLIC bytes.
    pub ek_tpm: Vec<u8>,
    /// EK certificate as the agent sent it, if any.
    pub ekcert: Option<Vec<u8>>,
    /// AK TPM2B_PUBLIC bytes.
    pub aik_tpm: Vec<u8>,
    /// The agent's HTTPS certificate (PEM).
    pub mtls_cert: Option<String>,
    /// Contact address.
    pub ip: Option<String>,
    /// Contact port.
    pub port: Option<u16>,
    /// The credential secret awaiting activation.
    pub challenge: Vec<u8>,
    /// Registration time, unix seconds.
    pub now: i64,
    /// What the node is: `host` or `vm`.
    pub kind: String,
    /// A host's checked vTPM CA certificate (DER).
    pub vtpm_ca_cert: Option<Vec<u8>>,
    /// A VM's host: the agent whose vTPM CA issued its EK certificate.
    pub host_agent_id: Option<String>,
}

/// A stored registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The agent id.
    pub agent_id: String,
    /// EK TPM2B_PUBLIC bytes.
    pub ek_tpm: Vec<u8>,
    /// EK certificate, if any.
    pub ekcert: Option<Vec<u8>>,
    /// AK TPM2B_PUBLIC bytes.
    pub aik_tpm: Vec<u8>,
    /// The agent's HTTPS certificate (PEM).
    pub mtls_cert: Option<String>,
    /// Contact address.
    pub ip: Option<String>,
    /// Contact port.
    pub port: Option<u16>,
    /// Registrations so far (1 after the first).
    pub regcount: u32,
    /// Whether the agent has proven activation at least once.
    pub active: bool,
    /// The secret of a pending activation.
    pub challenge: Option<Vec<u8>>,
    /// Time of the last registration, unix seconds.
    pub registered_at: i64,
    /// What the node is: `host` or `vm`.
    pub kind: String,
    /// A host's checked vTPM CA certificate (DER).
    pub vtpm_ca_cert: Option<Vec<u8>>,
    /// A VM's host.
    pub host_agent_id: Option<String>,
}

/// Outcome of [`RegistrarStore::save_registration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// A new agent id: stored inactive.
    New,
    /// The same identity registered again: contact data and challenge replaced.
    Reregistered {
        /// The new count.
        regcount: u32,
    },
    /// The id is registered with another EK, EK certificate or AK: nothing was written.
    IdentityConflict,
}

/// The registrar's persistence. Every method is atomic.
pub trait RegistrarStore: Send + Sync {
    /// Stores `reg` as a new inactive registration, or — when the id exists with byte-identical
    /// `ek_tpm`, `ekcert` and `aik_tpm` — bumps `regcount` and replaces contact data and
    /// challenge (an active registration stays active). Any other existing row is left untouched.
    fn save_registration(&self, reg: &NewRegistration) -> Result<Saved, StoreError>;

    /// The registration of `agent_id`, active or not.
    fn registration(&self, agent_id: &str) -> Result<Option<Registration>, StoreError>;

    /// Marks `agent_id` active and forgets its challenge, if its pending challenge is still
    /// `challenge`; returns whether it did.
    fn activate(&self, agent_id: &str, challenge: &[u8]) -> Result<bool, StoreError>;

    /// After a failed activation proof for `challenge`: removes a never-activated registration;
    /// an active one only loses the pending challenge. Returns whether a row was removed.
    fn reject_activation(&self, agent_id: &str, challenge: &[u8]) -> Result<bool, StoreError>;

    /// Removes `agent_id`; returns whether it existed.
    fn delete(&self, agent_id: &str) -> Result<bool, StoreError>;

    /// Ids of active agents, sorted.
    fn active_agents(&self) -> Result<Vec<String>, StoreError>;

    /// The vTPM CA certificates of active hosts: (agent id, CA certificate DER), by agent id.
    fn active_vtpm_cas(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}
