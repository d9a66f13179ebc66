//! The bootstrap-key endpoints: `POST /v{X}/keys/ukey`, `POST /v{X}/keys/vkey` and
//! `GET /v{X}/keys/verify?challenge=C` (Keylime's U/V protocol; the cryptography is
//! `cairn_core::bootstrap`).
//!
//! - `ukey` takes `{encrypted_key, auth_tag, payload?}` from the tenant, `vkey` takes
//!   `{encrypted_key}` from the verifier (sent only once the node has attested). Each half is
//!   RSA-OAEP decrypted with the node key and checked (base64, 32 bytes, a 48-byte hex auth tag, a
//!   payload at least IV + tag long) before it is kept: a malformed field is refused at once
//!   (400, naming the field). A half replaces an earlier half of the same kind.
//! - When both halves are held, the request that brought the second one derives K = U ⊕ V and
//!   checks `auth_tag` = HMAC-SHA384(K, this agent's uuid). A mismatch (a wrong U or a wrong V)
//!   is logged and answered 400 on that request; both halves are dropped so that a correct pair
//!   can be sent again, and nothing is written. A match keeps K (replacing an older K, which is
//!   zeroed) and, if U brought a payload, decrypts it (AES-256-GCM; a failing tag is a 400, K is
//!   kept, nothing is written) and delivers it to memory-backed storage ([`crate::payload`]).
//! - A verifier sends V again for the key already held when it attests the node anew (after a
//!   reactivation; Keylime's verifier does the same): the V that completed K is remembered, and the
//!   same V again is answered 200 and dropped, so it never meets the tenant's next U as a stale half.
//! - `verify` answers `{hmac: hex(HMAC-SHA384(K, C))}` for an alphanumeric challenge C, and 400
//!   while there is no K.
//!
//! Keys and payload bytes are never logged; only sizes and outcomes are.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use cairn_core::bootstrap::{
    challenge_hmac, combine, unwrap_with_nk, AuthTag, BootstrapError, BootstrapKey, EncryptedPayload, KeyHalf,
};
use cairn_proto::agent::{KeyVerifyResponse, UkeyRequest, VkeyRequest};
use cairn_proto::Envelope;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::api::{check_version, AgentState};
use crate::error::AgentError;
use crate::payload::{PayloadStore, Storage};

/// Largest `POST /keys/ukey` body (the payload travels in it).
pub const UKEY_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Longest `/keys/verify` challenge accepted.
pub const MAX_CHALLENGE_LEN: usize = 1024;

/// The halves received so far, K once derived, and where payloads go.
#[derive(Debug)]
pub struct Bootstrap {
    held: Mutex<Held>,
    store: Option<PayloadStore>,
}

#[derive(Debug, Default)]
struct Held {
    u: Option<UHalf>,
    v: Option<KeyHalf>,
    k: Option<BootstrapKey>,
    /// The V that completed K.
    v_of_k: Option<KeyHalf>,
}

#[derive(Debug)]
struct UHalf {
    half: KeyHalf,
    auth_tag: AuthTag,
    payload: Option<EncryptedPayload>,
}

impl Bootstrap {
    /// Payloads delivered to `store`.
    pub fn new(store: PayloadStore) -> Bootstrap {
        Bootstrap { held: Mutex::default(), store: Some(store) }
    }

    /// Keys accepted, but no place for payloads: a pair whose U carries one is refused after K
    /// is derived (for routers built without a state directory).
    pub fn without_payloads() -> Bootstrap {
        Bootstrap { held: Mutex::default(), store: None }
    }

    /// Whether K has been derived.
    pub async fn has_key(&self) -> bool {
        self.held.lock().await.k.is_some()
    }

    /// Keeps `u` or `v`, and completes the pair if both are held.
    async fn receive(&self, uuid: &str, u: Option<UHalf>, v: Option<KeyHalf>) -> Result<(), AgentError> {
        let mut held = self.held.lock().await;
        let which = if u.is_some() { "U" } else { "V" };
        if let Some(u) = u {
            if held.u.replace(u).is_some() {
                tracing::info!("bootstrap key: a new U replaces the one held");
            }
        }
        if let Some(v) = v {
            if held.v_of_k.as_ref().is_some_and(|old| old.same_as(&v)) {
                tracing::info!("bootstrap key: V sent again for the key already held; nothing to do");
                return Ok(());
            }
            if held.v.replace(v).is_some() {
                tracing::info!("bootstrap key: a new V replaces the one held");
            }
        }
        let (Some(_), Some(_)) = (&held.u, &held.v) else {
            tracing::info!("bootstrap key: {which} received; waiting for the other half");
            return Ok(());
        };
        let (Some(u), Some(v)) = (held.u.take(), held.v.take()) else { return Ok(()) };
        let k = combine(&u.half, &v);
        if let Err(e) = u.auth_tag.check(&k, uuid) {
            tracing::warn!("bootstrap key refused when {which} completed the pair: {e}; both halves dropped");
            return Err(AgentError::BadRequest(format!("{e}; both halves were dropped, send U and V again")));
        }
        tracing::info!("bootstrap key K derived ({which} completed the pair); the auth tag matches this agent");
        held.v_of_k = Some(v);
        let k = held.k.insert(k);
        let Some(payload) = u.payload else { return Ok(()) };
        let plaintext = zeroize::Zeroizing::new(payload.decrypt(k).map_err(|e| {
            tracing::warn!("bootstrap payload refused: {e}; K is kept, nothing was written");
            AgentError::BadRequest(format!("{e}; K is kept, nothing was written"))
        })?);
        let Some(store) = &self.store else {
            return Err(AgentError::Config("this agent has no state directory for bootstrap payloads".into()));
        };
        let bytes = plaintext.len();
        let delivery = store.deliver(plaintext).await?;
        let dir = store.layout().dir.display().to_string();
        let files = delivery.unpacked;
        match delivery.storage {
            Storage::Tmpfs => tracing::info!(%dir, bytes, ?files, "bootstrap payload delivered in memory (tmpfs)"),
            Storage::Disk => tracing::warn!(%dir, bytes, ?files, "bootstrap payload delivered ON DISK"),
        }
        Ok(())
    }
}

type Shared = State<Arc<AgentState>>;
type Reply<T> = Result<Json<Envelope<T>>, AgentError>;

fn bad(field: &str, e: BootstrapError) -> AgentError {
    AgentError::BadRequest(format!("{field}: {e}"))
}

/// `POST /v{X}/keys/ukey`.
pub(crate) async fn ukey(
    State(s): Shared,
    Path(v): Path<String>,
    body: Result<Json<UkeyRequest>, JsonRejection>,
) -> Reply<serde_json::Value> {
    check_version(&v)?;
    let Json(body) = body.map_err(|e| AgentError::BadRequest(format!("ukey body: {}", e.body_text())))?;
    let half = unwrap_with_nk(s.nk.private(), &body.encrypted_key).map_err(|e| bad("U", e))?;
    let auth_tag = AuthTag::from_hex(&body.auth_tag).map_err(|e| bad("U", e))?;
    let payload = body.payload.as_deref().map(EncryptedPayload::from_base64).transpose().map_err(|e| bad("U", e))?;
    tracing::info!(payload_bytes = payload.as_ref().map(EncryptedPayload::plaintext_len), "bootstrap key: U received");
    s.bootstrap.receive(&s.uuid, Some(UHalf { half, auth_tag, payload }), None).await?;
    Ok(Json(Envelope::ok(serde_json::json!({}))))
}

/// `POST /v{X}/keys/vkey`.
pub(crate) async fn vkey(
    State(s): Shared,
    Path(v): Path<String>,
    body: Result<Json<VkeyRequest>, JsonRejection>,
) -> Reply<serde_json::Value> {
    check_version(&v)?;
    let Json(body) = body.map_err(|e| AgentError::BadRequest(format!("vkey body: {}", e.body_text())))?;
    let half = unwrap_with_nk(s.nk.private(), &body.encrypted_key).map_err(|e| bad("V", e))?;
    s.bootstrap.receive(&s.uuid, None, Some(half)).await?;
    Ok(Json(Envelope::ok(serde_json::json!({}))))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChallengeQuery {
    challenge: Option<String>,
}

/// `GET /v{X}/keys/verify?challenge=C`.
pub(crate) async fn verify(
    State(s): Shared,
    Path(v): Path<String>,
    q: Result<Query<ChallengeQuery>, QueryRejection>,
) -> Reply<KeyVerifyResponse> {
    check_version(&v)?;
    let Query(q) = q.map_err(|e| AgentError::BadRequest(format!("query string: {e}")))?;
    let challenge = q.challenge.unwrap_or_default();
    if challenge.is_empty() {
        return Err(AgentError::BadRequest("challenge is missing".into()));
    }
    if challenge.len() > MAX_CHALLENGE_LEN || !challenge.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AgentError::BadRequest(format!("challenge must be 1 to {MAX_CHALLENGE_LEN} ASCII letters and digits")));
    }
    let held = s.bootstrap.held.lock().await;
    let Some(k) = &held.k else {
        let why = "no bootstrap key yet: K exists once U and V have both arrived and their auth tag matched";
        return Err(AgentError::BadRequest(why.into()));
    };
    Ok(Json(Envelope::ok(KeyVerifyResponse { hmac: challenge_hmac(k, &challenge) })))
}
