//! [`VerifierStore`] on SQLite: the verifier's tables beside the registrar's in the same file.
//!
//! Status batches are one transaction with prepared statements reused across the batch, so a
//! batch of a thousand rounds costs one commit. History is trimmed per node inside the same
//! transaction, keeping at most [`HISTORY_PER_AGENT`] events.

use rusqlite::{params, OptionalExtension, Row};

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::verifier::{
    AgentStatus, Delivery, HistoryEvent, PolicyKind, StatusUpdate, VerifierAgent, VerifierStore,
    HISTORY_PER_AGENT,
};

const AGENT_COLUMNS: &str =
    "agent_id, spec, added_at, operational_state, attestation_count, last_received_quote, \
                             last_successful_attestation, failure, round_state";

fn row_to_agent(r: &Row<'_>) -> rusqlite::Result<VerifierAgent> {
    let count: i64 = r.get(4)?;
    Ok(VerifierAgent {
        agent_id: r.get(0)?,
        spec: r.get(1)?,
        added_at: r.get(2)?,
        status: AgentStatus {
            operational_state: r.get(3)?,
            attestation_count: u64::try_from(count).unwrap_or(0),
            last_received_quote: r.get(5)?,
            last_successful_attestation: r.get(6)?,
            failure: r.get(7)?,
            round_state: r.get(8)?,
        },
    })
}

fn count_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl VerifierStore for SqliteStore {
    fn add_agent(&self, a: &VerifierAgent) -> Result<bool, StoreError> {
        let s = &a.status;
        let n = self
            .conn()?
            .execute(
                "INSERT INTO verifier_agents (agent_id, spec, added_at, operational_state, attestation_count,
                     last_received_quote, last_successful_attestation, failure, round_state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(agent_id) DO NOTHING",
                params![
                    a.agent_id,
                    a.spec,
                    a.added_at,
                    s.operational_state,
                    count_sql(s.attestation_count),
                    s.last_received_quote,
                    s.last_successful_attestation,
                    s.failure,
                    s.round_state
                ],
            )
            .map_err(StoreError::query("adding a node"))?;
        Ok(n == 1)
    }

    fn update_agent_spec(&self, agent_id: &str, spec: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE verifier_agents SET spec = ?2 WHERE agent_id = ?1",
                params![agent_id, spec],
            )
            .map_err(StoreError::query("updating a node"))?;
        Ok(n == 1)
    }

    fn delete_agent(&self, agent_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction()
            .map_err(StoreError::query("starting a node removal"))?;
        let n = tx
            .execute(
                "DELETE FROM verifier_agents WHERE agent_id = ?1",
                [agent_id],
            )
            .map_err(StoreError::query("removing a node"))?;
        tx.execute(
            "DELETE FROM verifier_history WHERE agent_id = ?1",
            [agent_id],
        )
        .map_err(StoreError::query("removing a node's history"))?;
        tx.execute(
            "DELETE FROM verifier_deliveries WHERE agent_id = ?1",
            [agent_id],
        )
        .map_err(StoreError::query("removing a node's deliveries"))?;
        tx.commit()
            .map_err(StoreError::query("committing a node removal"))?;
        Ok(n == 1)
    }

    fn verifier_agent(&self, agent_id: &str) -> Result<Option<VerifierAgent>, StoreError> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM verifier_agents WHERE agent_id = ?1");
        self.conn()?
            .query_row(&sql, [agent_id], row_to_agent)
            .optional()
            .map_err(StoreError::query("reading a node"))
    }

    fn verifier_agents(&self) -> Result<Vec<VerifierAgent>, StoreError> {
        let conn = self.conn()?;
        let sql = format!("SELECT {AGENT_COLUMNS} FROM verifier_agents ORDER BY agent_id");
        let mut stmt = conn
            .prepare(&sql)
            .map_err(StoreError::query("listing nodes"))?;
        let rows = stmt
            .query_map([], row_to_agent)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(StoreError::query("listing nodes"))?;
        Ok(rows)
    }

    fn save_statuses(&self, updates: &[StatusUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let tx = conn
            .transaction()
            .map_err(StoreError::query("starting a status batch"))?;
        {
            let mut status = tx
                .prepare_cached(
                    "UPDATE verifier_agents SET operational_state = ?2, attestation_count = ?3,
                         last_received_quote = ?4, last_successful_attestation = ?5, failure = ?6, round_state = ?7
                     WHERE agent_id = ?1",
                )
                .map_err(StoreError::query("preparing a status update"))?;
            let mut event = tx
                .prepare_cached("INSERT INTO verifier_history (agent_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)")
                .map_err(StoreError::query("preparing a history insert"))?;
            let mut trim = tx
                .prepare_cached(
                    "DELETE FROM verifier_history WHERE agent_id = ?1 AND id <= (
                         SELECT id FROM verifier_history WHERE agent_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                )
                .map_err(StoreError::query("preparing a history trim"))?;
            let keep = i64::try_from(HISTORY_PER_AGENT).unwrap_or(i64::MAX);
            for u in updates {
                let s = &u.status;
                let n = status
                    .execute(params![
                        u.agent_id,
                        s.operational_state,
                        count_sql(s.attestation_count),
                        s.last_received_quote,
                        s.last_successful_attestation,
                        s.failure,
                        s.round_state
                    ])
                    .map_err(StoreError::query("writing a status"))?;
                if n == 0 {
                    continue; // deleted meanwhile
                }
                for e in &u.events {
                    event
                        .execute(params![e.agent_id, e.at_ms, e.kind, e.detail])
                        .map_err(StoreError::query("writing history"))?;
                }
                if !u.events.is_empty() {
                    trim.execute(params![u.agent_id, keep])
                        .map_err(StoreError::query("writing history"))?;
                }
            }
        }
        tx.commit()
            .map_err(StoreError::query("committing a status batch"))
    }

    fn history(&self, agent_id: &str, limit: usize) -> Result<Vec<HistoryEvent>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT agent_id, at_ms, kind, detail FROM verifier_history WHERE agent_id = ?1 ORDER BY id DESC LIMIT ?2")
            .map_err(StoreError::query("reading history"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![agent_id, limit], |r| {
                Ok(HistoryEvent {
                    agent_id: r.get(0)?,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(StoreError::query("reading history"))?;
        Ok(rows)
    }

    fn add_policy(
        &self,
        kind: PolicyKind,
        name: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "INSERT INTO verifier_policies (kind, name, body, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(kind, name) DO NOTHING",
                params![kind.as_str(), name, body, now],
            )
            .map_err(StoreError::query("adding a policy"))?;
        Ok(n == 1)
    }

    fn replace_policy(&self, kind: PolicyKind, name: &str, body: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "UPDATE verifier_policies SET body = ?3 WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name, body],
            )
            .map_err(StoreError::query("replacing a policy"))?;
        Ok(n == 1)
    }

    fn policy(&self, kind: PolicyKind, name: &str) -> Result<Option<String>, StoreError> {
        self.conn()?
            .query_row(
                "SELECT body FROM verifier_policies WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::query("reading a policy"))
    }

    fn policy_names(&self, kind: PolicyKind) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT name FROM verifier_policies WHERE kind = ?1 ORDER BY name")
            .map_err(StoreError::query("listing policies"))?;
        let names = stmt
            .query_map([kind.as_str()], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(StoreError::query("listing policies"))?;
        Ok(names)
    }

    fn delete_policy(&self, kind: PolicyKind, name: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()?
            .execute(
                "DELETE FROM verifier_policies WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name],
            )
            .map_err(StoreError::query("deleting a policy"))?;
        Ok(n == 1)
    }

    fn record_deliveries(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction()
            .map_err(StoreError::query("starting a delivery record"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO verifier_deliveries (event_id, agent_id, target, attempt, at_ms, ok, outcome)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(StoreError::query("preparing a delivery record"))?;
            for d in deliveries {
                stmt.execute(params![
                    d.event_id, d.agent_id, d.target, d.attempt, d.at_ms, d.ok, d.outcome
                ])
                .map_err(StoreError::query("recording a delivery"))?;
            }
        }
        tx.commit()
            .map_err(StoreError::query("committing a delivery record"))
    }

    fn deliveries(&self, agent_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare(
                "SELECT event_id, agent_id, target, attempt, at_ms, ok, outcome FROM verifier_deliveries
                 WHERE agent_id = ?1 ORDER BY id",
            )
            .map_err(StoreError::query("reading deliveries"))?;
        let rows = stmt
            .query_map([agent_id], |r| {
                Ok(Delivery {
                    event_id: r.get(0)?,
                    agent_id: r.get(1)?,
                    target: r.get(2)?,
                    attempt: r.get(3)?,
                    at_ms: r.get(4)?,
                    ok: r.get(5)?,
                    outcome: r.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(StoreError::query("reading deliveries"))?;
        Ok(rows)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("v.sqlite")).unwrap();
        (dir, s)
    }

    fn agent(id: &str) -> VerifierAgent {
        VerifierAgent {
            agent_id: id.into(),
            spec: "{}".into(),
            added_at: 5,
            status: AgentStatus::default(),
        }
    }

    fn event(id: &str, n: i64) -> HistoryEvent {
        HistoryEvent {
            agent_id: id.into(),
            at_ms: n,
            kind: "pass".into(),
            detail: n.to_string(),
        }
    }

    #[test]
    fn nodes_are_added_once_updated_in_batches_and_removed_with_their_records() {
        let (_d, s) = open();
        assert!(s.add_agent(&agent("b")).unwrap());
        assert!(s.add_agent(&agent("a")).unwrap());
        let mut dup = agent("a");
        dup.spec = "{\"x\":1}".into();
        assert!(!s.add_agent(&dup).unwrap());
        assert_eq!(
            s.verifier_agent("a").unwrap().unwrap().spec,
            "{}",
            "a refused add writes nothing"
        );
        assert!(s.update_agent_spec("a", "{\"y\":2}").unwrap());
        assert!(!s.update_agent_spec("zz", "{}").unwrap());

        let status = AgentStatus {
            operational_state: 3,
            attestation_count: 7,
            last_received_quote: Some(100),
            last_successful_attestation: Some(99),
            failure: None,
            round_state: Some("{\"clock\":1}".into()),
        };
        let updates = vec![
            StatusUpdate {
                agent_id: "a".into(),
                status: status.clone(),
                events: vec![event("a", 1), event("a", 2)],
            },
            StatusUpdate {
                agent_id: "gone".into(),
                status: status.clone(),
                events: vec![event("gone", 1)],
            },
        ];
        s.save_statuses(&updates).unwrap();
        let all = s.verifier_agents().unwrap();
        assert_eq!(
            all.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(all[0].status, status);
        assert_eq!(all[0].spec, "{\"y\":2}");
        assert_eq!(
            s.history("a", 10)
                .unwrap()
                .iter()
                .map(|e| e.at_ms)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(
            s.history("gone", 10).unwrap().is_empty(),
            "no history for an unknown node"
        );

        let d = Delivery {
            event_id: "e1".into(),
            agent_id: "a".into(),
            target: "http://hook".into(),
            attempt: 1,
            at_ms: 3,
            ok: false,
            outcome: "connection refused".into(),
        };
        s.record_deliveries(&[
            d.clone(),
            Delivery {
                attempt: 2,
                ok: true,
                outcome: "200".into(),
                ..d.clone()
            },
        ])
        .unwrap();
        assert_eq!(
            s.deliveries("a")
                .unwrap()
                .iter()
                .map(|d| (d.attempt, d.ok))
                .collect::<Vec<_>>(),
            [(1, false), (2, true)]
        );

        assert!(s.delete_agent("a").unwrap());
        assert!(!s.delete_agent("a").unwrap());
        assert!(s.history("a", 10).unwrap().is_empty() && s.deliveries("a").unwrap().is_empty());
    }

    #[test]
    fn history_is_bounded_per_node() {
        let (_d, s) = open();
        s.add_agent(&agent("a")).unwrap();
        for batch in 0..5 {
            let events = (0..100).map(|i| event("a", batch * 100 + i)).collect();
            s.save_statuses(&[StatusUpdate {
                agent_id: "a".into(),
                status: AgentStatus::default(),
                events,
            }])
            .unwrap();
        }
        let h = s.history("a", 10_000).unwrap();
        assert_eq!(h.len(), HISTORY_PER_AGENT);
        assert_eq!(h[0].at_ms, 499, "newest first, the oldest dropped");
    }

    #[test]
    fn named_policies_by_kind() {
        let (_d, s) = open();
        assert!(s.add_policy(PolicyKind::Runtime, "p", "{}", 1).unwrap());
        assert!(!s
            .add_policy(PolicyKind::Runtime, "p", "{\"x\":1}", 1)
            .unwrap());
        assert!(s
            .add_policy(PolicyKind::MeasuredBoot, "p", "mb", 1)
            .unwrap());
        assert_eq!(
            s.policy(PolicyKind::Runtime, "p").unwrap().as_deref(),
            Some("{}")
        );
        assert!(s
            .replace_policy(PolicyKind::Runtime, "p", "{\"v\":2}")
            .unwrap());
        assert!(!s.replace_policy(PolicyKind::Runtime, "q", "{}").unwrap());
        assert_eq!(
            s.policy(PolicyKind::Runtime, "p").unwrap().as_deref(),
            Some("{\"v\":2}")
        );
        assert_eq!(s.policy_names(PolicyKind::MeasuredBoot).unwrap(), ["p"]);
        assert!(s.delete_policy(PolicyKind::Runtime, "p").unwrap());
        assert!(s.policy(PolicyKind::Runtime, "p").unwrap().is_none());
        assert_eq!(
            s.policy(PolicyKind::MeasuredBoot, "p").unwrap().as_deref(),
            Some("mb")
        );
    }
}
