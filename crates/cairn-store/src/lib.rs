//! # cairn-store
//!
//! Where Cairn's services keep state across restarts. Each service sees one trait describing
//! exactly the operations it needs ([`RegistrarStore`], [`VerifierStore`]), so a backend is a set of trait impls and the services never see SQL. The embedded
//! backend is SQLite ([`SqliteStore`]): one file in WAL mode, schema migrations compiled into the
//! binary and applied in order on open (`PRAGMA user_version` records how far a file got).
//! PostgreSQL, for verifier pools, is meant to be a second impl of the same traits.
//!
//! A reference database ([`RefDb`]: digest → package file, and the update feed) is a file of its
//! own with its own migrations, built offline by `cairn refdb` and read when computing levels.
//!
//! Invariants a backend must keep are stated on the trait methods; the important one is that
//! every method is atomic: a failed or refused call leaves nothing half-written.
//!
//! ```
//! use cairn_store::{NewRegistration, RegistrarStore, Saved, SqliteStore};
//! # fn main() -> Result<(), cairn_store::StoreError> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = SqliteStore::open(&dir.path().join("registrar.sqlite"))?;
//! let reg = NewRegistration { agent_id: "a1".into(), ek_tpm: vec![1], ekcert: None, aik_tpm: vec![2],
//!     mtls_cert: None, ip: None, port: None, challenge: vec![9; 32], now: 0, kind: "host".into(),
//!     vtpm_ca_cert: None, host_agent_id: None };
//! assert_eq!(store.save_registration(&reg)?, Saved::New);
//! assert!(store.activate("a1", &[9; 32])?);
//! assert_eq!(store.active_agents()?, ["a1"]);
//! # Ok(()) }
//! ```

mod error;
mod migrate;
mod refdb;
mod registrar;
mod sqlite;
mod sqlite_verifier;
mod verifier;

pub use error::StoreError;
pub use refdb::{RefDb, RefDbStats, RefFile, RefPackage};
pub use registrar::{NewRegistration, Registration, RegistrarStore, Saved};
pub use sqlite::SqliteStore;
pub use verifier::{
    AgentStatus, Delivery, HistoryEvent, PolicyKind, StatusUpdate, VerifierAgent, VerifierStore, HISTORY_PER_AGENT,
};
