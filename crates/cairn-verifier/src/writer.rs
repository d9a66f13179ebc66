//! The store writer: status updates from every node's rounds, written in batches.
//!
//! Rounds never wait on the disk. Each sends its [`StatusUpdate`] into a bounded channel; this
//! task takes whatever has queued (up to [`MAX_BATCH`]), folds several updates of one node into
//! its newest status plus all their events, and writes the batch in one transaction. At shutdown
//! it drains the queue before returning, so a graceful stop loses nothing; a crash loses at most
//! the last batch in flight, and the node is attested again at start anyway.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_store::{StatusUpdate, VerifierStore};
use tokio::sync::{mpsc, watch};

/// Most updates written in one transaction.
pub const MAX_BATCH: usize = 2048;

/// Runs until `stop` turns true and the queue is empty.
pub async fn run(store: Arc<dyn VerifierStore>, mut rx: mpsc::Receiver<StatusUpdate>, mut stop: watch::Receiver<bool>) {
    loop {
        let first = tokio::select! {
            u = rx.recv() => u,
            _ = stop.wait_for(|s| *s) => None,
        };
        let mut batch = Vec::new();
        if let Some(u) = first {
            batch.push(u);
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return; // stopping, nothing left
        }
        let batch = fold(batch);
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.save_statuses(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "writing attestation statuses failed"),
            Err(e) => tracing::error!(error = %e, "the status writer task failed"),
        }
    }
}

/// One update per node: its newest status, every event in order.
fn fold(batch: Vec<StatusUpdate>) -> Vec<StatusUpdate> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<StatusUpdate> = Vec::with_capacity(batch.len());
    for u in batch {
        match index.get(&u.agent_id) {
            Some(&i) => {
                let slot = &mut out[i];
                slot.status = u.status;
                slot.events.extend(u.events);
            }
            None => {
                index.insert(u.agent_id.clone(), out.len());
                out.push(u);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::{AgentStatus, HistoryEvent};

    fn up(id: &str, count: u64, event: Option<&str>) -> StatusUpdate {
        let events = event
            .map(|k| vec![HistoryEvent { agent_id: id.into(), at_ms: 0, kind: k.into(), detail: "{}".into() }])
            .unwrap_or_default();
        StatusUpdate { agent_id: id.into(), status: AgentStatus { attestation_count: count, ..Default::default() }, events }
    }

    #[test]
    fn fold_keeps_the_newest_status_and_every_event() {
        let out = fold(vec![up("a", 1, Some("pass")), up("b", 1, None), up("a", 2, None), up("a", 3, Some("fail"))]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].status.attestation_count, 3);
        assert_eq!(out[0].events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["pass", "fail"]);
    }
}
