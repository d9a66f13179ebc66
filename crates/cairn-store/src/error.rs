//! The one error type of the store: which operation failed, and the backend's reason.

use std::path::PathBuf;

use thiserror::Error;

/// A store operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A schema migration failed.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The schema version being applied.
        version: usize,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file's schema is newer than this build knows.
    #[error("the database has schema version {found}, this build knows up to {known}: use a newer Cairn")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version compiled in.
        known: usize,
    },
    /// A query failed.
    #[error("database {op} failed: {source}")]
    Query {
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value does not have the shape written (the file was edited or corrupted).
    #[error("stored row for {agent_id} is corrupt: {what}")]
    Corrupt {
        /// Which agent.
        agent_id: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A reference-database row does not have the shape written.
    #[error("reference database: {what}")]
    CorruptReference {
        /// What is wrong, naming the row.
        what: String,
    },
    /// Another thread panicked while holding the connection.
    #[error("the database connection is unusable after a panic")]
    Poisoned,
}

impl StoreError {
    pub(crate) fn query(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Query { op, source }
    }
}
