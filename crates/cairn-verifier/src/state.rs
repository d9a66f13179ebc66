//! What a node's attestation state is, and how it reads in Keylime's numbering.
//!
//! Cairn keeps five states; Keylime clients read `operational_state` (Keylime's numbers) and
//! `attestation_status`. The mapping is fixed here so every reader agrees:
//!
//! | Cairn         | operational_state      | attestation_status | polled? |
//! |---------------|------------------------|--------------------|---------|
//! | `pending`     | 3 GET_QUOTE            | PENDING            | yes     |
//! | `attested`    | 3 GET_QUOTE            | PASS               | yes     |
//! | `unreachable` | 4 GET_QUOTE_RETRY      | FAIL               | yes, with backoff |
//! | `failed`      | 7 FAILED / 9 INVALID_QUOTE | FAIL           | no, until reactivated |
//! | `stopped`     | 10 TENANT_FAILED       | FAIL               | no, until reactivated |
//!
//! A node that cannot be reached is never reported as passing: its status is FAIL until a round
//! passes again.

use serde::{Deserialize, Serialize};

/// Keylime's operational states used by Cairn.
pub mod keylime {
    /// Polling for quotes.
    pub const GET_QUOTE: i64 = 3;
    /// The agent did not answer; retrying.
    pub const GET_QUOTE_RETRY: i64 = 4;
    /// A policy check failed.
    pub const FAILED: i64 = 7;
    /// Removed by the tenant (reported while a delete completes).
    pub const TERMINATED: i64 = 8;
    /// The quote itself failed verification.
    pub const INVALID_QUOTE: i64 = 9;
    /// Stopped by the tenant.
    pub const TENANT_FAILED: i64 = 10;
}

/// A node's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Added; no round has passed yet.
    Pending,
    /// The last round passed.
    Attested,
    /// The last request(s) did not reach the agent.
    Unreachable,
    /// A round failed; polling stopped until reactivated.
    Failed,
    /// The tenant stopped polling.
    Stopped,
    /// A VM whose own rounds pass but whose host is not attested (failed, unreachable, stopped or
    /// pending): never trusted, still attested every interval, back to `attested` when its host is.
    HostUntrusted,
}

impl NodeState {
    /// Whether the verifier polls the node in this state.
    pub fn polled(self) -> bool {
        matches!(self, NodeState::Pending | NodeState::Attested | NodeState::Unreachable | NodeState::HostUntrusted)
    }

    /// Keylime's `attestation_status`.
    pub fn attestation_status(self) -> &'static str {
        match self {
            NodeState::Pending => "PENDING",
            NodeState::Attested => "PASS",
            NodeState::Unreachable | NodeState::Failed | NodeState::Stopped | NodeState::HostUntrusted => "FAIL",
        }
    }

    /// The lower-case name used in Cairn's API and tables.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Attested => "attested",
            NodeState::Unreachable => "unreachable",
            NodeState::Failed => "failed",
            NodeState::Stopped => "stopped",
            NodeState::HostUntrusted => "host_untrusted",
        }
    }

    /// Keylime's `operational_state`; `quote_failed` tells INVALID_QUOTE from FAILED.
    pub fn operational_state(self, quote_failed: bool) -> i64 {
        match self {
            NodeState::Pending | NodeState::Attested => keylime::GET_QUOTE,
            NodeState::Unreachable => keylime::GET_QUOTE_RETRY,
            NodeState::Failed if quote_failed => keylime::INVALID_QUOTE,
            NodeState::Failed | NodeState::HostUntrusted => keylime::FAILED,
            NodeState::Stopped => keylime::TENANT_FAILED,
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_failed_and_stopped_are_never_pass() {
        for s in [NodeState::Unreachable, NodeState::Failed, NodeState::Stopped] {
            assert_eq!(s.attestation_status(), "FAIL");
        }
        assert_eq!(NodeState::Attested.attestation_status(), "PASS");
        assert_eq!(NodeState::Failed.operational_state(true), keylime::INVALID_QUOTE);
        assert_eq!(NodeState::Failed.operational_state(false), keylime::FAILED);
        assert!(!NodeState::Failed.polled() && NodeState::Unreachable.polled());
    }
}
