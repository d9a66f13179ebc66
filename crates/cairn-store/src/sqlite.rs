//! The SQLite backend: one file, WAL journal, one connection behind a mutex.
//!
//! Registrar traffic is a handful of small writes per agent enrolment, so one serialised
//! connection is plenty and keeps every operation trivially atomic. `synchronous = NORMAL` in WAL
//! mode survives a process crash (the acknowledged write is in the log); a power loss may lose
//! the last transactions, which an agent repairs by registering again.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::StoreError;
use crate::migrate::{open_migrated, MIGRATIONS};
use crate::registrar::{NewRegistration, Registration, RegistrarStore, Saved};

/// A SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode, migrated to the newest
    /// schema.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open_migrated(path, MIGRATIONS)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

const COLUMNS: &str =
    "agent_id, ek_tpm, ekcert, aik_tpm, mtls_cert, ip, port, regcount, active, challenge, registered_at, kind, vtpm_ca_cert, host_agent_id";

fn row_to_registration(r: &Row<'_>) -> rusqlite::Result<(Registration, i64, i64)> {
    let port: Option<i64> = r.get(6)?;
    let regcount: i64 = r.get(7)?;
    let reg = Registration {
        agent_id: r.get(0)?,
        ek_tpm: r.get(1)?,
        ekcert: r.get(2)?,
        aik_tpm: r.get(3)?,
        mtls_cert: r.get(4)?,
        ip: r.get(5)?,
        port: None,
        regcount: 0,
        active: r.get::<_, i64>(8)? != 0,
        challenge: r.get(9)?,
        registered_at: r.get(10)?,
        kind: r.get(11)?,
        vtpm_ca_cert: r.get(12)?,
        host_agent_id: r.get(13)?,
    };
    Ok((reg, port.unwrap_or(-1), regcount))
}

impl RegistrarStore for SqliteStore {
    fn save_registration(&self, reg: &NewRegistration) -> Result<Saved, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(StoreError::query("starting a registration"))?;
        let inserted = tx
            .execute(
                "INSERT INTO registrar_agents (agent_id, ek_tpm, ekcert, aik_tpm, mtls_cert, ip, port, regcount, active, challenge,
                     registered_at, kind, vtpm_ca_cert, host_agent_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 0, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(agent_id) DO NOTHING",
                params![
                    reg.agent_id,
                    reg.ek_tpm,
                    reg.ekcert,
                    reg.aik_tpm,
                    reg.mtls_cert,
                    reg.ip,
                    reg.port,
                    reg.challenge,
                    reg.now,
                    reg.kind,
                    reg.vtpm_ca_cert,
                    reg.host_agent_id
                ],
            )
            .map_err(StoreError::query("inserting a registration"))?;
        let saved = if inserted == 1 {
            Saved::New
        } else {
            let updated = tx
                .execute(
                    "UPDATE registrar_agents SET mtls_cert = ?5, ip = ?6, port = ?7, regcount = regcount + 1,
                         challenge = ?8, registered_at = ?9, kind = ?10, vtpm_ca_cert = ?11, host_agent_id = ?12
                     WHERE agent_id = ?1 AND ek_tpm = ?2 AND ekcert IS ?3 AND aik_tpm = ?4",
                    params![
                        reg.agent_id,
                        reg.ek_tpm,
                        reg.ekcert,
                        reg.aik_tpm,
                        reg.mtls_cert,
                        reg.ip,
                        reg.port,
                        reg.challenge,
                        reg.now,
                        reg.kind,
                        reg.vtpm_ca_cert,
                        reg.host_agent_id
                    ],
                )
                .map_err(StoreError::query("updating a registration"))?;
            if updated == 0 {
                Saved::IdentityConflict
            } else {
                let n: i64 = tx
                    .query_row("SELECT regcount FROM registrar_agents WHERE agent_id = ?1", [&reg.agent_id], |r| r.get(0))
                    .map_err(StoreError::query("reading regcount"))?;
                Saved::Reregistered { regcount: u32::try_from(n).unwrap_or(u32::MAX) }
            }
        };
        tx.commit().map_err(StoreError::query("committing a registration"))?;
        Ok(saved)
    }

    fn registration(&self, agent_id: &str) -> Result<Option<Registration>, StoreError> {
        let conn = self.conn()?;
        let sql = format!("SELECT {COLUMNS} FROM registrar_agents WHERE agent_id = ?1");
        let row = conn
            .query_row(&sql, [agent_id], row_to_registration)
            .optional()
            .map_err(StoreError::query("reading a registration"))?;
        let Some((mut reg, port, regcount)) = row else { return Ok(None) };
        let corrupt = |what| StoreError::Corrupt { agent_id: agent_id.to_owned(), what };
        reg.port = match port {
            -1 => None,
            p => Some(u16::try_from(p).map_err(|_| corrupt("port out of range"))?),
        };
        reg.regcount = u32::try_from(regcount).map_err(|_| corrupt("regcount out of range"))?;
        Ok(Some(reg))
    }

    fn activate(&self, agent_id: &str, challenge: &[u8]) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE registrar_agents SET active = 1, challenge = NULL WHERE agent_id = ?1 AND challenge = ?2",
                params![agent_id, challenge],
            )
            .map_err(StoreError::query("activating"))?;
        Ok(n == 1)
    }

    fn reject_activation(&self, agent_id: &str, challenge: &[u8]) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let removed = conn
            .execute("DELETE FROM registrar_agents WHERE agent_id = ?1 AND active = 0 AND challenge = ?2", params![agent_id, challenge])
            .map_err(StoreError::query("removing a failed registration"))?;
        if removed == 0 {
            conn.execute("UPDATE registrar_agents SET challenge = NULL WHERE agent_id = ?1 AND challenge = ?2", params![agent_id, challenge])
                .map_err(StoreError::query("clearing a failed challenge"))?;
        }
        Ok(removed == 1)
    }

    fn delete(&self, agent_id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute("DELETE FROM registrar_agents WHERE agent_id = ?1", [agent_id])
            .map_err(StoreError::query("deleting"))?;
        Ok(n == 1)
    }

    fn active_agents(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT agent_id FROM registrar_agents WHERE active = 1 ORDER BY agent_id")
            .map_err(StoreError::query("listing agents"))?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(StoreError::query("listing agents"))?;
        Ok(ids)
    }

    fn active_vtpm_cas(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT agent_id, vtpm_ca_cert FROM registrar_agents
                 WHERE active = 1 AND kind = 'host' AND vtpm_ca_cert IS NOT NULL ORDER BY agent_id",
            )
            .map_err(StoreError::query("listing vTPM CAs"))?;
        let cas = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<(String, Vec<u8>)>, _>>())
            .map_err(StoreError::query("listing vTPM CAs"))?;
        Ok(cas)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reg(id: &str, ak: u8, challenge: u8) -> NewRegistration {
        NewRegistration {
            agent_id: id.into(),
            ek_tpm: vec![1, 2, 3],
            ekcert: Some(vec![4, 5]),
            aik_tpm: vec![ak],
            mtls_cert: None,
            ip: Some("127.0.0.1".into()),
            port: Some(9002),
            challenge: vec![challenge; 32],
            now: 1000,
            kind: "host".into(),
            vtpm_ca_cert: None,
            host_agent_id: None,
        }
    }

    #[test]
    fn vtpm_cas_count_only_for_active_hosts() {
        let (_d, s) = open();
        let host = NewRegistration { vtpm_ca_cert: Some(vec![0x30, 1]), ..reg("h", 1, 1) };
        assert_eq!(s.save_registration(&host).unwrap(), Saved::New);
        assert!(s.active_vtpm_cas().unwrap().is_empty(), "not active yet");
        assert!(s.activate("h", &[1; 32]).unwrap());
        assert_eq!(s.active_vtpm_cas().unwrap(), [("h".to_owned(), vec![0x30, 1])]);
        let vm = NewRegistration { kind: "vm".into(), host_agent_id: Some("h".into()), vtpm_ca_cert: Some(vec![9]), ..reg("v", 2, 2) };
        s.save_registration(&vm).unwrap();
        s.activate("v", &[2; 32]).unwrap();
        let got = s.registration("v").unwrap().unwrap();
        assert_eq!((got.kind.as_str(), got.host_agent_id.as_deref()), ("vm", Some("h")));
        assert_eq!(s.active_vtpm_cas().unwrap().len(), 1, "a VM never publishes a CA");
        assert!(s.delete("h").unwrap());
        assert!(s.active_vtpm_cas().unwrap().is_empty());
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("r.sqlite")).unwrap();
        (dir, s)
    }

    #[test]
    fn registration_is_inactive_until_activated_with_its_challenge() {
        let (_d, s) = open();
        assert_eq!(s.save_registration(&reg("a", 7, 1)).unwrap(), Saved::New);
        let r = s.registration("a").unwrap().unwrap();
        assert!(!r.active);
        assert_eq!((r.regcount, r.port, r.challenge.as_deref()), (1, Some(9002), Some(&[1u8; 32][..])));
        assert!(s.active_agents().unwrap().is_empty());
        assert!(!s.activate("a", &[2; 32]).unwrap());
        assert!(s.activate("a", &[1; 32]).unwrap());
        let r = s.registration("a").unwrap().unwrap();
        assert!(r.active && r.challenge.is_none());
        assert_eq!(s.active_agents().unwrap(), ["a"]);
    }

    #[test]
    fn same_identity_bumps_regcount_other_identity_is_refused_untouched() {
        let (_d, s) = open();
        s.save_registration(&reg("a", 7, 1)).unwrap();
        s.activate("a", &[1; 32]).unwrap();
        let mut again = reg("a", 7, 2);
        again.port = Some(9003);
        assert_eq!(s.save_registration(&again).unwrap(), Saved::Reregistered { regcount: 2 });
        let r = s.registration("a").unwrap().unwrap();
        assert!(r.active, "an active agent stays active while re-activating");
        assert_eq!((r.port, r.regcount), (Some(9003), 2));
        assert_eq!(s.save_registration(&reg("a", 8, 3)).unwrap(), Saved::IdentityConflict);
        let mut no_cert = reg("a", 7, 3);
        no_cert.ekcert = None;
        assert_eq!(s.save_registration(&no_cert).unwrap(), Saved::IdentityConflict);
        assert_eq!(s.registration("a").unwrap().unwrap(), r, "a refused registration writes nothing");
    }

    #[test]
    fn failed_activation_removes_new_rows_but_not_active_ones() {
        let (_d, s) = open();
        s.save_registration(&reg("new", 7, 1)).unwrap();
        assert!(s.reject_activation("new", &[1; 32]).unwrap());
        assert!(s.registration("new").unwrap().is_none());
        s.save_registration(&reg("old", 7, 1)).unwrap();
        s.activate("old", &[1; 32]).unwrap();
        s.save_registration(&reg("old", 7, 2)).unwrap();
        assert!(!s.reject_activation("old", &[2; 32]).unwrap());
        let r = s.registration("old").unwrap().unwrap();
        assert!(r.active && r.challenge.is_none());
        assert!(s.delete("old").unwrap());
        assert!(!s.delete("old").unwrap());
    }

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.save_registration(&reg("a", 7, 1)).unwrap();
            s.activate("a", &[1; 32]).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.active_agents().unwrap(), ["a"]);
    }
}
