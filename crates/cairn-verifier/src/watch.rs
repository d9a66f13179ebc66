//! Push-on-change, the verifier's side: one long poll per node to its agent's
//! `/cairn/v1/ima/changes`, over the node's own mutual-TLS client.
//!
//! When the agent answers that its IMA log holds other than the entries already judged, the
//! node's task is told to run its next round now (`Node::early`) rather than at its interval.
//! The round is an ordinary one — nonce, quote, every check — so a lying or noisy agent can only
//! ask to be attested sooner, and at most once per [`MIN_GAP`]. An agent that does not offer
//! the endpoint (404: a Keylime agent, or push-on-change off) is simply not watched.
//! Nodes without a runtime policy are not watched either: their IMA log is not judged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::fleet::Fleet;
use crate::node::Node;

/// How long the agent may hold one request.
pub const WAIT: Duration = Duration::from_secs(30);
/// Shortest time between two pushed rounds of one node.
pub const MIN_GAP: Duration = Duration::from_millis(200);

/// Watches `node`'s agent at `root` (`https://host:port`) until shutdown or a 404.
pub async fn watch(fleet: Arc<Fleet>, node: Arc<Node>, http: reqwest::Client, root: String) {
    let mut stop = fleet.stop.clone();
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let polled = node.status.lock().map(|s| s.state().polled()).unwrap_or(false);
        if !polled {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let known = node.known_entries.load(Ordering::Acquire);
        let url = format!("{root}/cairn/v1/ima/changes?known={known}&timeout_ms={}", WAIT.as_millis());
        let request = http.get(&url).timeout(WAIT + Duration::from_secs(5)).send();
        let reply = tokio::select! {
            r = request => r,
            _ = stop.changed() => return,
        };
        let entries = match reply {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                tracing::debug!(agent = %node.id, "agent does not offer push-on-change; attested on its interval only");
                return;
            }
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok().and_then(|v| v["results"]["entries"].as_u64()),
            _ => None,
        };
        let Some(entries) = entries else {
            failures = failures.saturating_add(1);
            let backoff = Duration::from_secs(1 << failures.min(5));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        failures = 0;
        if entries == known {
            continue; // timed out without a change
        }
        node.early.store(true, Ordering::Release);
        node.wake.notify_one();
        // Let the round run: at least MIN_GAP, then until the new entries are judged (or 5 s).
        tokio::time::sleep(MIN_GAP).await;
        let until = Instant::now() + Duration::from_secs(5);
        while node.known_entries.load(Ordering::Acquire) == known && Instant::now() < until {
            if !node.status.lock().map(|s| s.state().polled()).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
