//! Integrity-level changes as signed events: when a node's level changes, every `level_webhooks`
//! URL receives `{msg, signature}` — `msg` a JSON text with `type` = `cairn_level_change`, signed
//! with the revocation key exactly as revocations are (RSA-PSS/SHA-256), so a receiver checks both
//! with the one public key. Revocation webhooks do not receive these: a revocation handler that
//! acted on every message would act on a level going up.
//!
//! Each receiver gets its own task with retries (doubling delay); each attempt is recorded in the
//! store's deliveries under the event's id, beside revocations.

use std::sync::Arc;

use cairn_core::revocation::{sign_text, RevocationSigner, SignedRevocation};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::fleet::Fleet;
use crate::revoke::{post_signed, Receiver};

/// The `type` of a level-change message.
pub const LEVEL_CHANGE_TYPE: &str = "cairn_level_change";

/// One node's level change (the signed message's JSON).
#[derive(Clone, Debug, Serialize)]
pub struct LevelChange {
    /// Always [`LEVEL_CHANGE_TYPE`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Unique id of this event (`<agent>-level-<unix ms>`).
    pub event_id: String,
    /// The node.
    pub agent_id: String,
    /// Its address.
    pub ip: String,
    /// The level before (`null` when none was computed yet).
    pub from: Option<String>,
    /// The level now.
    pub to: String,
    /// Why the node is below `ima_all_ok` (the worst reasons first).
    pub reasons: Vec<serde_json::Value>,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// Sends every queued change until the channel closes.
pub async fn run(fleet: Arc<Fleet>, signer: Arc<RevocationSigner>, client: reqwest::Client, mut rx: mpsc::UnboundedReceiver<LevelChange>) {
    while let Some(change) = rx.recv().await {
        if fleet.config.level_webhooks.is_empty() {
            continue;
        }
        let text = match serde_json::to_string(&change) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(agent = %change.agent_id, error = %e, "level change not serialisable; not sent");
                continue;
            }
        };
        let signed = match sign_text(&signer, text) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(agent = %change.agent_id, error = %e, "signing a level change failed; not sent");
                continue;
            }
        };
        for url in fleet.config.level_webhooks.clone() {
            let (fleet, signed, client, change) = (fleet.clone(), signed.clone(), client.clone(), change.clone());
            tokio::spawn(async move { deliver(&fleet, &client, &url, &change, &signed).await });
        }
    }
}

async fn deliver(fleet: &Fleet, client: &reqwest::Client, url: &str, change: &LevelChange, signed: &SignedRevocation) {
    let to = Receiver { client, url, name: url, event_id: &change.event_id, agent_id: &change.agent_id };
    post_signed(fleet, &to, signed, "level change").await;
}
