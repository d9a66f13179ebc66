//! Signed revocation: when a node fails, tell everyone who must act.
//!
//! A failed round queues a [`RevocationRequest`]. The sender task turns it into Keylime's
//! revocation message (`cairn_core::revocation`), signs it once with the verifier's revocation key
//! (RSA-PSS/SHA-256, maximum salt — what Keylime agents check), and delivers the same signed
//! `{msg, signature}` to every configured webhook and, over mTLS, to every other node's agent
//! (`POST /vX/notifications/revocation`). Each receiver gets its own task with retries (doubling
//! delay); every attempt is recorded in the store, so an operator can see who was told and when.
//! The failed node itself is not notified: it is the one that cannot be trusted.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::revocation::{sign, EmbeddedJson, RevocationMessage, RevocationSigner, SignedRevocation, REVOCATION_TYPE};
use cairn_proto::verifier::FailureView;
use cairn_store::{Delivery, StatusUpdate};
use tokio::sync::mpsc;

use crate::fleet::Fleet;
use crate::node::{self, Node};

/// First retry delay; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_millis(500);

/// What the sender needs to know about a failure.
#[derive(Clone, Debug)]
pub struct RevocationRequest {
    /// The failed node.
    pub agent_id: String,
    /// Its address.
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// Its PCR policy text.
    pub tpm_policy: String,
    /// Its metadata text.
    pub meta_data: String,
    /// Id of this revocation (unique; the delivery records carry it).
    pub revocation_id: String,
    /// Why it failed.
    pub failures: Vec<FailureView>,
    /// The quote itself failed (vs. a policy).
    pub quote_failed: bool,
}

impl RevocationRequest {
    /// A request for `node` failing with `failures`.
    pub fn new(node: &Node, revocation_id: String, failures: &[FailureView], quote_failed: bool) -> RevocationRequest {
        let spec = node.spec.read().map(|s| s.clone()).ok();
        RevocationRequest {
            agent_id: node.id.clone(),
            ip: spec.as_ref().map(|s| s.ip.clone()).unwrap_or_default(),
            port: spec.as_ref().map(|s| s.port).unwrap_or(0),
            tpm_policy: spec.as_ref().map(|s| s.tpm_policy.clone()).unwrap_or_else(|| "{}".into()),
            meta_data: spec.as_ref().map(|s| s.metadata.clone()).unwrap_or_else(|| "{}".into()),
            revocation_id,
            failures: failures.to_vec(),
            quote_failed,
        }
    }

    /// Keylime's message for this failure. `event_id` names the first failed check.
    pub fn message(&self) -> RevocationMessage {
        let first = self.failures.first().map(|f| f.check.as_str()).unwrap_or("unknown");
        let summary = self.failures.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ");
        let context = serde_json::json!({
            "message": summary,
            "failures": self.failures,
            "revocation_id": self.revocation_id,
        });
        RevocationMessage {
            kind: REVOCATION_TYPE.into(),
            ip: self.ip.clone(),
            agent_id: self.agent_id.clone(),
            port: self.port,
            tpm_policy: Some(EmbeddedJson::Text(self.tpm_policy.clone())),
            meta_data: Some(EmbeddedJson::Text(self.meta_data.clone())),
            event_time: asctime_utc(node::now().0),
            event_id: Some(format!("cairn.{first}")),
            severity_label: Some(if self.quote_failed { "emergency" } else { "critical" }.into()),
            context: Some(EmbeddedJson::Text(context.to_string())),
        }
    }
}

/// Sends every queued revocation until the channel closes.
pub async fn run(fleet: Arc<Fleet>, signer: Arc<RevocationSigner>, webhook: reqwest::Client, mut rx: mpsc::UnboundedReceiver<RevocationRequest>) {
    while let Some(req) = rx.recv().await {
        let message = req.message();
        let signed = match sign(&signer, &message) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(agent = %req.agent_id, error = %e, "signing a revocation failed; not sent");
                continue;
            }
        };
        let mut targets: Vec<(String, Target)> =
            fleet.config.webhooks.iter().map(|u| (u.clone(), Target::Webhook(webhook.clone(), u.clone()))).collect();
        if fleet.config.notify_agents {
            for n in fleet.all().unwrap_or_default().into_iter().filter(|n| n.id != req.agent_id) {
                let Ok(spec) = n.spec.read().map(|s| s.clone()) else { continue };
                match crate::agent_client::client(&spec.mtls_cert, &fleet.client_identity, fleet.config.request_timeout()) {
                    Ok(c) => {
                        let host = if spec.ip.contains(':') { format!("[{}]", spec.ip) } else { spec.ip.clone() };
                        let url = format!("https://{host}:{}/v{}/notifications/revocation", spec.port, spec.api_version);
                        targets.push((format!("agent:{}", n.id), Target::Agent(c, url)));
                    }
                    Err(e) => tracing::warn!(agent = %n.id, error = %e, "cannot notify this agent of a revocation"),
                }
            }
        }
        tracing::info!(agent = %req.agent_id, id = %req.revocation_id, receivers = targets.len(), "sending signed revocation");
        fleet.write(StatusUpdate {
            agent_id: req.agent_id.clone(),
            status: match fleet.node(&req.agent_id).ok().and_then(|n| n.status.lock().ok().map(|s| s.to_store())) {
                Some(s) => s,
                None => continue,
            },
            events: vec![node::event(
                &req.agent_id,
                "revocation",
                serde_json::json!({"revocation_id": req.revocation_id, "event_id": message.event_id, "receivers": targets.iter().map(|t| t.0.clone()).collect::<Vec<_>>()}),
            )],
        });
        for (name, target) in targets {
            let (fleet, signed, req) = (fleet.clone(), signed.clone(), req.clone());
            tokio::spawn(async move { deliver(&fleet, &req, &name, target, &signed).await });
        }
    }
}

/// Where a revocation goes.
enum Target {
    Webhook(reqwest::Client, String),
    Agent(reqwest::Client, String),
}

async fn deliver(fleet: &Fleet, req: &RevocationRequest, name: &str, target: Target, signed: &SignedRevocation) {
    let (client, url) = match &target {
        Target::Webhook(c, u) | Target::Agent(c, u) => (c, u),
    };
    let to = Receiver { client, url, name, event_id: &req.revocation_id, agent_id: &req.agent_id };
    post_signed(fleet, &to, signed, "revocation").await;
}

/// One receiver of a signed message.
pub(crate) struct Receiver<'a> {
    /// The client to post with.
    pub client: &'a reqwest::Client,
    /// Where to.
    pub url: &'a str,
    /// The receiver's name in the delivery records.
    pub name: &'a str,
    /// The event's id in the delivery records.
    pub event_id: &'a str,
    /// The node the event is about.
    pub agent_id: &'a str,
}

/// Posts `signed` to one receiver with retries (doubling delay), recording every attempt; `what`
/// names the message in logs. Returns whether it was delivered.
pub(crate) async fn post_signed(fleet: &Fleet, to: &Receiver<'_>, signed: &SignedRevocation, what: &str) -> bool {
    let attempts = fleet.config.delivery_attempts.max(1);
    for attempt in 1..=attempts {
        let result = to.client.post(to.url).json(signed).send().await;
        let (ok, outcome) = match result {
            Ok(r) if r.status().is_success() => (true, r.status().as_u16().to_string()),
            Ok(r) => (false, format!("HTTP {}", r.status())),
            Err(e) => (false, e.to_string()),
        };
        let record = Delivery {
            event_id: to.event_id.to_owned(),
            agent_id: to.agent_id.to_owned(),
            target: to.name.to_owned(),
            attempt,
            at_ms: node::now().1,
            ok,
            outcome: outcome.clone(),
        };
        let store = fleet.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.record_deliveries(&[record])).await;
        if ok {
            tracing::info!(agent = %to.agent_id, receiver = %to.name, attempt, "{what} delivered");
            return true;
        }
        tracing::warn!(agent = %to.agent_id, receiver = %to.name, attempt, outcome = %outcome, "{what} delivery failed");
        if attempt < attempts {
            tokio::time::sleep(RETRY_BASE * 2u32.saturating_pow(attempt - 1)).await;
        }
    }
    false
}

/// `time.asctime()` in UTC, as Keylime writes `event_time`: `Mon Aug  3 12:00:00 2026`.
fn asctime_utc(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = Civil::utc(unix);
    let weekday = DAYS[usize::try_from(unix.div_euclid(86_400).rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::from(t.month.saturating_sub(1)).min(11)];
    format!("{weekday} {month} {:>2} {:02}:{:02}:{:02} {}", t.day, t.hour, t.minute, t.second, t.year)
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
}

impl Civil {
    /// The calendar time of unix seconds (proleptic Gregorian, days-from-civil inverted).
    pub fn utc(unix: i64) -> Civil {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let small = |v: i64| u8::try_from(v).unwrap_or(0);
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: small(month),
            day: small(day),
            hour: small(secs / 3600),
            minute: small(secs % 3600 / 60),
            second: small(secs % 60),
        }
    }
}

impl std::fmt::Display for Civil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}-{:02} {:02}:{:02}:{:02}", self.year, self.month, self.day, self.hour, self.minute, self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asctime_matches_pythons() {
        // time.asctime(time.gmtime(0)) and (1785758400): a known Monday.
        assert_eq!(asctime_utc(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime_utc(1_785_758_400), "Mon Aug  3 12:00:00 2026");
        assert_eq!(asctime_utc(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
