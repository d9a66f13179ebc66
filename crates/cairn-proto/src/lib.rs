//! # cairn-proto
//!
//! The bytes Cairn's services exchange: Keylime's REST API 2.x (so Keylime agents, registrars,
//! verifiers and tenants can be mixed with Cairn's) and Cairn's own `/cairn/v1/…` extensions.
//! Types only — no I/O, no HTTP framework: services map these to and from their routers.

pub mod agent;
pub mod envelope;
pub mod registrar;
pub mod revocation;
pub mod verifier;
pub mod version;

pub use envelope::Envelope;
pub use version::ApiVersion;
