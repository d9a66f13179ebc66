//! The Keylime agent API (pull mode), as an axum router.
//!
//! | route | answer |
//! |---|---|
//! | `GET /version` | `{supported_version}` |
//! | `GET /v{X}/agent/info` | uuid, hash/enc/sign algorithms, AK handle |
//! | `GET /v{X}/keys/pubkey` | the NK public key, PEM |
//! | `POST /v{X}/keys/ukey` | the tenant's bootstrap half U, auth tag and payload ([`crate::bootstrap`]) |
//! | `POST /v{X}/keys/vkey` | the verifier's bootstrap half V; with U: K, auth tag checked, payload delivered |
//! | `GET /v{X}/keys/verify?challenge=` | `{hmac}` = HMAC-SHA384(K, challenge); 400 before K |
//! | `GET /v{X}/quotes/identity?nonce=` | a quote of PCR 16 (NK bound), with the NK |
//! | `GET /v{X}/quotes/integrity?nonce=&mask=&partial=&ima_ml_entry=` | a quote of `mask` + 16, with the logs its PCRs need |
//! | `POST /v{X}/notifications/revocation` | a signed revocation: checked, then local actions run ([`crate::revocation`]) |
//! | `GET /cairn/v1/ima/changes?known=&timeout_ms=` | push-on-change long poll: `{entries}` once the IMA log differs from `known` ([`crate::changes`]); 404 unless enabled |
//! | `GET /cairn/v1/hvm?from=N` | host mode: the hypervisor measurement list from entry N ([`crate::hvm`]); 404 when off |
//!
//! Every answer is a Keylime envelope; every refusal names its reason (see [`crate::error`]).
//! The router is built by [`app`] and tested in-process; [`crate::server`] puts it behind TLS.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_proto::agent::{AgentInfo, HvmListResponse, PubkeyResponse, QuoteResponse, VmBatchItem, VmBatchResponse};
use cairn_proto::version::AgentVersion;
use cairn_proto::{ApiVersion, Envelope};
use cairn_tpm::Ak;
use serde::Deserialize;

use crate::bootstrap::{self, Bootstrap, UKEY_BODY_LIMIT};
use crate::changes::{ChangesQuery, ImaWatch};
use crate::error::AgentError;
use crate::hvm::HvmStore;
use crate::identity::TpmIdentity;
use crate::keys::NodeKey;
use crate::logs;
use crate::quote::{self, PcrMask, QuoteNonce, IMA_PCR};
use crate::revocation::{self, Revocations};
use crate::tpm_owner::TpmOwner;

/// Largest request body accepted (the pull API has no large bodies; `keys/ukey`, which carries
/// the payload, takes up to [`UKEY_BODY_LIMIT`]).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Debug)]
pub struct AgentState {
    /// The TPM worker.
    pub tpm: TpmOwner,
    /// The agent's uuid.
    pub uuid: String,
    /// The AK.
    pub ak: Ak,
    /// The EK's algorithm name.
    pub enc_alg: String,
    /// The AK's scheme name.
    pub sign_alg: &'static str,
    /// The node key.
    pub nk: Arc<NodeKey>,
    /// IMA ASCII measurement list.
    pub ima_log: PathBuf,
    /// UEFI event log.
    pub uefi_log: PathBuf,
    /// The revocation key and actions.
    pub revocation: Revocations,
    /// Bootstrap key halves, K, and where payloads go.
    pub bootstrap: Bootstrap,
    /// Push-on-change: the IMA log's entry count, watched for a verifier.
    pub changes: Arc<ImaWatch>,
    /// The hypervisor measurement list, in host mode.
    pub hvm: Option<Arc<HvmStore>>,
    /// The host's VMs as batched evidence, in host mode.
    pub vms: Option<Arc<crate::vms::VmEvidence>>,
}

impl AgentState {
    /// The state for an agent with this identity and keys; it refuses revocation notifications
    /// until given a key ([`AgentState::with_revocation`]) and bootstrap payloads until given a
    /// place for them ([`AgentState::with_bootstrap`]).
    pub fn new(tpm: TpmOwner, uuid: String, id: &TpmIdentity, nk: Arc<NodeKey>, ima_log: PathBuf, uefi_log: PathBuf) -> AgentState {
        let revocation = Revocations::refusing();
        let bootstrap = Bootstrap::without_payloads();
        let changes = Arc::new(ImaWatch::new(ima_log.clone(), false));
        AgentState {
            changes,
            tpm,
            uuid,
            ak: id.ak.clone(),
            enc_alg: id.enc_alg(),
            sign_alg: id.sign_alg(),
            nk,
            ima_log,
            uefi_log,
            revocation,
            bootstrap,
            hvm: None,
            vms: None,
        }
    }

    /// With this revocation key and actions.
    pub fn with_revocation(self, revocation: Revocations) -> AgentState {
        AgentState { revocation, ..self }
    }

    /// With push-on-change on or off.
    pub fn with_push_on_change(self, enabled: bool) -> AgentState {
        let changes = Arc::new(ImaWatch::new(self.ima_log.clone(), enabled));
        AgentState { changes, ..self }
    }

    /// With this bootstrap state (where payloads go).
    pub fn with_bootstrap(self, bootstrap: Bootstrap) -> AgentState {
        AgentState { bootstrap, ..self }
    }

    /// With host mode's VM evidence (`None`: host mode off).
    pub fn with_vms(self, vms: Option<Arc<crate::vms::VmEvidence>>) -> AgentState {
        AgentState { vms, ..self }
    }

    /// With host mode's list (`None`: host mode off).
    pub fn with_hvm(self, hvm: Option<Arc<HvmStore>>) -> AgentState {
        AgentState { hvm, ..self }
    }
}

type Shared = State<Arc<AgentState>>;
type Reply<T> = Result<Json<Envelope<T>>, AgentError>;

/// The agent's router.
pub fn app(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/{version}/agent/info", get(info))
        .route("/{version}/keys/pubkey", get(pubkey))
        .route("/{version}/keys/ukey", post(bootstrap::ukey).layer(DefaultBodyLimit::max(UKEY_BODY_LIMIT)))
        .route("/{version}/keys/vkey", post(bootstrap::vkey))
        .route("/{version}/keys/verify", get(bootstrap::verify))
        .route("/{version}/quotes/identity", get(identity_quote))
        .route("/{version}/quotes/integrity", get(integrity_quote))
        .route("/{version}/notifications/revocation", post(revocation::notify))
        .route("/cairn/v1/ima/changes", get(ima_changes))
        .route("/cairn/v1/hvm", get(hvm_list))
        .route("/cairn/v1/vms/batch", get(vm_batch))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> AgentError {
    AgentError::NotFound(format!("no endpoint {}", uri.path()))
}

/// The `v2.x` path segment, if Cairn serves it.
pub(crate) fn check_version(segment: &str) -> Result<ApiVersion, AgentError> {
    match ApiVersion::from_path_segment(segment) {
        Some(v) if v.is_supported() => Ok(v),
        Some(v) => Err(AgentError::BadRequest(format!("API version {v} is not supported"))),
        None => Err(AgentError::NotFound(format!("{segment:?} is not an API version (v2.x)"))),
    }
}

async fn ima_changes(State(s): Shared, q: Result<Query<ChangesQuery>, QueryRejection>) -> Reply<serde_json::Value> {
    if !s.changes.enabled() {
        return Err(AgentError::NotFound("push-on-change is off on this agent (push_on_change)".into()));
    }
    let Query(q) = q.map_err(|e| AgentError::BadRequest(format!("query string: {e}")))?;
    let known = q.known.unwrap_or(0);
    let timeout = std::time::Duration::from_millis(q.timeout_ms.unwrap_or(30_000));
    let entries = s.changes.wait(known, timeout).await?;
    Ok(Json(Envelope::ok(serde_json::json!({ "entries": entries }))))
}

async fn version() -> Json<Envelope<AgentVersion>> {
    Json(Envelope::ok(AgentVersion { supported_version: ApiVersion::CURRENT }))
}

async fn info(State(s): Shared, Path(v): Path<String>) -> Reply<AgentInfo> {
    check_version(&v)?;
    Ok(Json(Envelope::ok(AgentInfo {
        agent_uuid: s.uuid.clone(),
        tpm_hash_alg: s.ak.hash.name().to_owned(),
        tpm_enc_alg: s.enc_alg.clone(),
        tpm_sign_alg: s.sign_alg.to_owned(),
        ak_handle: s.ak.handle,
    })))
}

async fn pubkey(State(s): Shared, Path(v): Path<String>) -> Reply<PubkeyResponse> {
    check_version(&v)?;
    Ok(Json(Envelope::ok(PubkeyResponse { pubkey: s.nk.public_pem().to_owned() })))
}

/// Query parameters of both quote endpoints, as text (validated by [`crate::quote`]).
#[derive(Debug, Deserialize)]
struct QuoteQuery {
    nonce: Option<String>,
    mask: Option<String>,
    partial: Option<String>,
    ima_ml_entry: Option<String>,
}

fn query(q: Result<Query<QuoteQuery>, QueryRejection>) -> Result<QuoteQuery, AgentError> {
    q.map(|Query(q)| q).map_err(|e| AgentError::BadRequest(format!("query string: {e}")))
}

async fn identity_quote(State(s): Shared, Path(v): Path<String>, q: Result<Query<QuoteQuery>, QueryRejection>) -> Reply<QuoteResponse> {
    check_version(&v)?;
    let q = query(q)?;
    let nonce = QuoteNonce::parse(q.nonce.as_deref())?;
    let pem = s.nk.public_pem().to_owned();
    let quote = quote::quote(&s.tpm, s.ak.clone(), pem.clone(), nonce, PcrMask::parse(None)?).await?;
    Ok(Json(Envelope::ok(QuoteResponse {
        quote,
        hash_alg: s.ak.hash.name().to_owned(),
        enc_alg: s.enc_alg.clone(),
        sign_alg: s.sign_alg.to_owned(),
        pubkey: Some(pem),
        boottime: logs::boottime(),
        ima_measurement_list: None,
        ima_measurement_list_entry: None,
        mb_measurement_list: None,
    })))
}

async fn integrity_quote(State(s): Shared, Path(v): Path<String>, q: Result<Query<QuoteQuery>, QueryRejection>) -> Reply<QuoteResponse> {
    check_version(&v)?;
    let q = query(q)?;
    let nonce = QuoteNonce::parse(q.nonce.as_deref())?;
    let mask = PcrMask::parse(q.mask.as_deref())?;
    let partial = quote::parse_partial(q.partial.as_deref())?;
    let entry = quote::parse_entry(q.ima_ml_entry.as_deref())?;
    let pem = s.nk.public_pem().to_owned();
    // Logs are read after the quote: a log may run ahead of the quoted PCR (the verifier finds
    // the matching prefix), never behind it.
    let quote = quote::quote(&s.tpm, s.ak.clone(), pem.clone(), nonce, mask).await?;
    // File reads happen off the async workers (an IMA list can be megabytes).
    let (ima_path, uefi_path) = (s.ima_log.clone(), s.uefi_log.clone());
    let (ima, mb) = tokio::task::spawn_blocking(move || {
        let ima = mask.has(IMA_PCR).then(|| logs::ima_from(&ima_path, entry)).flatten();
        let mb = mask.has(0).then(|| logs::uefi_log(&uefi_path)).flatten();
        (ima, mb)
    })
    .await
    .map_err(|e| AgentError::Io { path: "log reader task".into(), source: std::io::Error::other(e) })?;
    let (ima, ima_entry) = match ima {
        Some((text, e)) => (Some(text), Some(e)),
        None => (None, None),
    };
    Ok(Json(Envelope::ok(QuoteResponse {
        quote,
        hash_alg: s.ak.hash.name().to_owned(),
        enc_alg: s.enc_alg.clone(),
        sign_alg: s.sign_alg.to_owned(),
        pubkey: (!partial).then_some(pem),
        boottime: logs::boottime(),
        ima_measurement_list: ima,
        ima_measurement_list_entry: ima_entry,
        mb_measurement_list: mb,
    })))
}

/// `nonce` and `mask` of `GET /cairn/v1/vms/batch`.
#[derive(Debug, Deserialize)]
struct BatchQuery {
    nonce: Option<String>,
    mask: Option<String>,
}

/// Every VM on this host as one evidence leaf, all under one quote whose qualifying data is
/// H(nonce ‖ Merkle root) (docs/vm-evidence.md).
async fn vm_batch(State(s): Shared, q: Result<Query<BatchQuery>, QueryRejection>) -> Reply<VmBatchResponse> {
    let q = q.map(|Query(q)| q).map_err(|e| AgentError::BadRequest(format!("query string: {e}")))?;
    let nonce = QuoteNonce::parse(q.nonce.as_deref())?;
    let mask = PcrMask::parse(q.mask.as_deref())?;
    let vms = s.vms.clone().ok_or_else(|| AgentError::NotFound("host mode is off on this agent".into()))?;
    let collected = tokio::task::spawn_blocking(move || vms.collect())
        .await
        .map_err(|e| AgentError::Io { path: "VM evidence task".into(), source: std::io::Error::other(e) })?;
    if collected.leaves.is_empty() {
        return Err(AgentError::NotFound(format!("no VM to attest on this host (skipped: {:?})", collected.skipped)));
    }
    let batch = cairn_core::vmbatch::Batch::new(&collected.leaves).map_err(|e| AgentError::BadRequest(e.to_string()))?;
    let qualifying = batch.qualifying_data(nonce.as_bytes());
    let sel = mask.selection(s.ak.hash);
    let ak = s.ak.clone();
    let quote = s.tpm.run(move |tpm| Ok(tpm.quote(&ak, &qualifying, &sel)?)).await?;
    let quote = cairn_core::quote::encode_quote_string(&quote.attest, &quote.signature, &cairn_core::tpm::encode_pcr_blob(&quote.pcrs));
    let vms = batch
        .entries()
        .map(|e| VmBatchItem { vm: e.vm.to_string(), leaf: B64.encode(e.leaf), proof: B64.encode(e.proof.encode()) })
        .collect();
    Ok(Json(Envelope::ok(VmBatchResponse { quote, root: batch.root().to_hex(), count: batch.count(), vms, skipped: collected.skipped })))
}

/// `from` of `GET /cairn/v1/hvm`.
#[derive(Debug, Deserialize)]
struct HvmQuery {
    from: Option<String>,
}

async fn hvm_list(State(s): Shared, q: Result<Query<HvmQuery>, QueryRejection>) -> Reply<HvmListResponse> {
    let q = q.map(|Query(q)| q).map_err(|e| AgentError::BadRequest(format!("query string: {e}")))?;
    let from = match q.from.as_deref() {
        None => 0,
        Some(v) => v.parse().map_err(|_| AgentError::BadRequest(format!("from {v:?} is not an entry number")))?,
    };
    let store = s.hvm.as_ref().ok_or_else(|| AgentError::NotFound("host mode is off on this agent".into()))?;
    Ok(Json(Envelope::ok(store.from(from).await)))
}
