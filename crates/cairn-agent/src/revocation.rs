//! `POST /v{X}/notifications/revocation`: a verifier tells this agent that a node (possibly this
//! one) failed attestation.
//!
//! The body is Keylime's `{msg, signature}`. The agent acts only on messages signed by the
//! verifier's revocation key, configured as `revocation_cert` (a PEM public key or certificate):
//! - no key configured → 403, every notification refused (and logged): an agent cannot tell a
//!   verifier's message from anyone else's without it;
//! - a body that is not `{msg, signature}`, a signature that is not base64, a signed `msg` that is
//!   not a revocation message → 400 with the reason;
//! - a signature missing, of the wrong length, or not by the configured key → 403 with the reason;
//! - verified → 200 (an empty Keylime envelope) at once, and the local actions
//!   ([`crate::actions`]) run in the background with the message. A message naming this agent
//!   itself is acted on like any other, and logged as such.
//!
//! The check is `cairn_core::revocation::verify`: signature first, message parsed after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use cairn_core::revocation::{verify, RevocationError, RevocationVerifier, SignedRevocation};
use cairn_proto::revocation::RevocationNotification;
use cairn_proto::Envelope;

use crate::actions::Actions;
use crate::api::{check_version, AgentState};
use crate::error::AgentError;

/// What the revocation endpoint needs: the key messages must be signed with, and the actions.
#[derive(Debug)]
pub struct Revocations {
    verifier: Option<RevocationVerifier>,
    actions: Arc<Actions>,
}

impl Revocations {
    /// Reads the revocation key from `cert` (if configured); actions come from `actions_dir`.
    pub fn load(cert: Option<&Path>, actions_dir: PathBuf) -> Result<Revocations, AgentError> {
        let verifier = match cert {
            None => {
                tracing::warn!("no revocation_cert: revocation notifications will be refused");
                None
            }
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(AgentError::io(path))?;
                let v = RevocationVerifier::from_pem(&text)
                    .map_err(|e| AgentError::Config(format!("revocation_cert {}: {e}", path.display())))?;
                tracing::info!(
                    "revocation notifications are checked with the RSA-{} key in {}; actions run from {}",
                    v.bits(),
                    path.display(),
                    actions_dir.display()
                );
                Some(v)
            }
        };
        Ok(Revocations { verifier, actions: Arc::new(Actions::new(actions_dir)) })
    }

    /// Every notification refused (no key), no actions.
    pub fn refusing() -> Revocations {
        Revocations { verifier: None, actions: Arc::new(Actions::new(PathBuf::new())) }
    }

    /// With this key and these actions.
    pub fn new(verifier: Option<RevocationVerifier>, actions: Actions) -> Revocations {
        Revocations { verifier, actions: Arc::new(actions) }
    }
}

type Shared = State<Arc<AgentState>>;

/// The handler.
pub(crate) async fn notify(
    State(s): Shared,
    UrlPath(v): UrlPath<String>,
    body: Result<Json<RevocationNotification>, JsonRejection>,
) -> Result<Json<Envelope<serde_json::Value>>, AgentError> {
    check_version(&v)?;
    let Some(verifier) = &s.revocation.verifier else {
        tracing::warn!("revocation notification refused: no revocation_cert is configured");
        return Err(AgentError::Forbidden("this agent has no revocation_cert configured: revocation notifications are refused".into()));
    };
    let Json(body) = body.map_err(|e| {
        tracing::warn!("revocation notification refused: {}", e.body_text());
        AgentError::BadRequest(format!("revocation body: {}", e.body_text()))
    })?;
    let signed = SignedRevocation { msg: body.msg, signature: body.signature };
    let message = verify(verifier, &signed).map_err(|e| {
        tracing::warn!("revocation notification refused: {e}");
        refusal(e)
    })?;
    let about_self = message.agent_id == s.uuid;
    tracing::warn!(
        agent_id = %message.agent_id,
        ip = %message.ip,
        port = message.port,
        event_id = message.event_id.as_deref().unwrap_or(""),
        severity = message.severity_label.as_deref().unwrap_or(""),
        about_self,
        "verified revocation notification"
    );
    if about_self {
        tracing::warn!("the revocation names this agent itself; its actions run as for any other");
    }
    drop(s.revocation.actions.spawn(signed.msg, message, &s.uuid));
    Ok(Json(Envelope::ok(serde_json::json!({}))))
}

/// 403 when the message is not the configured key's, 400 when it is malformed.
fn refusal(e: RevocationError) -> AgentError {
    match e {
        RevocationError::MissingSignature | RevocationError::SignatureLength { .. } | RevocationError::BadSignature => {
            AgentError::Forbidden(e.to_string())
        }
        other => AgentError::BadRequest(other.to_string()),
    }
}
