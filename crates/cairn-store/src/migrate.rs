//! In-tree schema migrations, applied in order on open.
//!
//! Migration *n* (1-based) is `MIGRATIONS[n-1]`; a database's `PRAGMA user_version` is the
//! number already applied. Each migration runs in its own transaction together with the
//! version bump, so a crash mid-way leaves the previous version intact. Migrations are only
//! ever appended, never edited once released.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;

/// How long a writer waits for another's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the SQLite file at `path` as every Cairn store uses it — WAL,
/// `synchronous = NORMAL`, foreign keys on, a busy timeout — migrated to the newest of `migrations`.
pub(crate) fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)).map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// SQLite schema migrations of the service store, oldest first.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_registrar.sql"),
    include_str!("../migrations/sqlite/0002_verifier.sql"),
    include_str!("../migrations/sqlite/0003_registrar_vms.sql"),
];

/// SQLite schema migrations of a reference database (its own file), oldest first.
pub(crate) const REFDB_MIGRATIONS: &[&str] = &[include_str!("../migrations/refdb/0001_refdb.sql")];

/// Brings `conn` to the newest schema of `MIGRATIONS`; returns the version it is at.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<usize, StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::query("reading the schema version"))?;
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > migrations.len() {
        return Err(StoreError::SchemaTooNew { found, known: migrations.len() });
    }
    for (i, sql) in migrations.iter().enumerate().skip(applied) {
        let version = i + 1;
        let err = |source| StoreError::Migration { version, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version as i64).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(migrations.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        for m in [MIGRATIONS, REFDB_MIGRATIONS] {
            let mut c = Connection::open_in_memory().unwrap();
            assert_eq!(migrate(&mut c, m).unwrap(), m.len());
            // Idempotent: a second open applies nothing (the CREATE TABLE would fail otherwise).
            assert_eq!(migrate(&mut c, m).unwrap(), m.len());
            c.pragma_update(None, "user_version", 99).unwrap();
            assert!(matches!(migrate(&mut c, m), Err(StoreError::SchemaTooNew { found: 99, .. })));
        }
    }
}
