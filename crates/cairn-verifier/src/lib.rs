//! # cairn-verifier
//!
//! Continuous attestation. Every node a tenant adds is attested on an interval: a fresh nonce,
//! an integrity quote from its agent (incremental IMA, UEFI log when measured boot applies), and
//! `cairn_core::attest::judge` over it with the node's policies and what was kept from the last
//! round. A failing node is marked failed with every reason named and a signed revocation goes
//! to webhooks and to the other agents; a node that does not answer is `unreachable` — never
//! trusted — and is retried with backoff until it answers again.
//!
//! The shape: one async task per node ([`node`]), a fleet-wide semaphore bounding rounds in
//! flight, a kept-alive HTTPS connection per agent, policies parsed once and shared
//! ([`policies`]), status writes batched into one transaction ([`writer`]), and tenant operations
//! written through to the store before they are answered ([`fleet`]). The tenant API is Keylime's
//! verifier API 2.x over mutual TLS, plus Cairn's read API ([`api`]). Hosts added in host mode
//! also have their hypervisor measurement list fetched and judged every round ([`hvm`]); a host with VM
//! nodes that carry a VM policy also has its VM batch fetched once per round and judged for each
//! of them ([`vmbatch`]). With a
//! reference database, every round also gives each node an integrity level ([`levels`]); level
//! changes are signed events ([`level_events`]) and `GET /cairn/v1/placement` answers which hosts
//! qualify for a level now.

pub mod agent_client;
pub mod api;
pub mod config;
pub mod error;
pub mod fleet;
pub mod hvm;
pub mod level_events;
pub mod levels;
pub mod node;
pub mod openapi;
pub mod policies;
pub mod revoke;
pub mod rounds;
pub mod serve;
pub mod spec;
pub mod state;
pub mod vmbatch;
pub mod watch;
pub mod writer;

pub use config::VerifierConfig;
pub use error::VerifierError;
pub use serve::Verifier;
pub use state::NodeState;
