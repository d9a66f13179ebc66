//! In-tree schema migrations, applied in order on open.
//!
//! Migration *n* (1-based) is `MIGRATIONS[n-1]`; a database's `PRAGMA user_version` is the
//! number already applied. Each migration runs in its own transaction together with the
//! version bump, so a crash mid-way leaves the previous version intact. Migrations are only
//! ever appended, never edited once released.

use rusqlite::Connection;

use crate::error::StoreError;

/// SQLite schema migrations, oldest first.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_registrar.sql"),
    include_str!("../migrations/sqlite/0002_verifier.sql"),
];

/// Brings `conn` to the newest schema; returns the version it is at.
pub(crate) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::query("reading the schema version"))?;
    let applied = usize::try_from(found).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew { found, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i + 1;
        let err = |source| StoreError::Migration { version, source };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version as i64).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(MIGRATIONS.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_files() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), MIGRATIONS.len());
        // Idempotent: a second open applies nothing (the CREATE TABLE would fail otherwise).
        assert_eq!(migrate(&mut c).unwrap(), MIGRATIONS.len());
        c.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate(&mut c), Err(StoreError::SchemaTooNew { found: 99, .. })));
    }
}
