//! The tenant-facing HTTP API: Keylime's verifier API 2.x plus Cairn's read API.
//!
//! Keylime's paths (`/vX/agents/{uuid}`, `/vX/allowlists/{name}`, `/vX/mbpolicies/{name}`) take
//! and return Keylime's bodies inside the `{code, status, results}` envelope. Cairn's own paths
//! live under `/cairn/v1/`: the fleet with reasons, a node's history and revocation deliveries,
//! the revocation public key, and an OpenAPI document at `/cairn/v1/openapi.json`. `/metrics`
//! serves Prometheus text. The router only translates; every decision is in `fleet` and `spec`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::levels::IntegrityLevel;
use cairn_proto::verifier::{
    AddAgentRequest, AgentList, AgentView, HistoryView, MbPolicyRequest, Placement, RuntimePolicyRequest,
};
use cairn_proto::version::ServiceVersion;
use cairn_proto::{ApiVersion, Envelope};
use cairn_store::PolicyKind;
use serde::{Deserialize, Serialize};

use crate::error::VerifierError;
use crate::fleet::{blocking, Fleet};
use crate::spec::NodeSpec;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// The fleet.
    pub fleet: Arc<Fleet>,
    /// The revocation public key (PEM).
    pub revocation_public_pem: Arc<str>,
}

type S = State<ApiState>;
type Reply<T> = Result<Json<Envelope<T>>, VerifierError>;

fn ok<T>(t: T) -> Reply<T> {
    Ok(Json(Envelope::ok(t)))
}

fn empty() -> Reply<serde_json::Value> {
    ok(serde_json::json!({}))
}

/// The router.
pub fn app(state: ApiState) -> Router {
    let limit = state.fleet.config.max_body_bytes;
    Router::new()
        .route("/version", get(version))
        .route("/{v}/agents/", get(list_agents))
        .route("/{v}/agents", get(list_agents))
        .route("/{v}/agents/{id}", get(get_agent).post(add_agent).delete(delete_agent))
        .route("/{v}/agents/{id}/reactivate", put(reactivate))
        .route("/{v}/agents/{id}/stop", put(stop))
        .route("/{v}/allowlists/", get(runtime_names))
        .route("/{v}/allowlists", get(runtime_names))
        .route("/{v}/allowlists/{name}", get(get_runtime).post(add_runtime).put(put_runtime).delete(delete_runtime))
        .route("/{v}/mbpolicies/", get(mb_names))
        .route("/{v}/mbpolicies", get(mb_names))
        .route("/{v}/mbpolicies/{name}", get(get_mb).post(add_mb).put(put_mb).delete(delete_mb))
        .route("/cairn/v1/nodes", get(cairn_nodes))
        .route("/cairn/v1/nodes/{id}", get(cairn_node))
        .route("/cairn/v1/nodes/{id}/history", get(cairn_history))
        .route("/cairn/v1/nodes/{id}/deliveries", get(cairn_deliveries))
        .route("/cairn/v1/placement", get(placement))
        .route("/cairn/v1/revocation-key", get(revocation_key))
        .route("/cairn/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> VerifierError {
    VerifierError::NotFound(format!("no endpoint {}", uri.path()))
}

fn check_version(segment: &str) -> Result<ApiVersion, VerifierError> {
    match ApiVersion::from_path_segment(segment) {
        Some(v) if v.is_supported() => Ok(v),
        Some(v) => Err(VerifierError::BadRequest(format!("API version {v} is not supported"))),
        None => Err(VerifierError::NotFound(format!("{segment:?} is not an API version (v2.x)"))),
    }
}

/// Agent ids: what Keylime allows (letters, digits, `-`, `_`, `.`), 1–255 characters.
fn check_id(id: &str) -> Result<(), VerifierError> {
    let fine = !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(VerifierError::BadRequest(format!("{id:?} is not a valid agent id")))
    }
}

async fn version() -> Json<Envelope<ServiceVersion>> {
    Json(Envelope::ok(ServiceVersion {
        current_version: ApiVersion::CURRENT,
        supported_versions: ApiVersion::SUPPORTED.to_vec(),
    }))
}

/// `GET /vX/agents/` query: `bulk` (any value, as Keylime reads it) asks for every node's view by
/// id; `verifier=ID` keeps the nodes of that verifier only.
#[derive(Deserialize)]
struct ListQuery {
    bulk: Option<String>,
    verifier: Option<String>,
}

/// `GET /vX/agents/`: the id list (with Cairn's views), or with `?bulk` Keylime's map id → view.
#[derive(Serialize)]
#[serde(untagged)]
enum Listing {
    List(AgentList),
    Bulk(BTreeMap<String, AgentView>),
}

async fn list_agents(State(s): S, Path(v): Path<String>, Query(q): Query<ListQuery>) -> Reply<Listing> {
    check_version(&v)?;
    let mut agents = s.fleet.all()?.iter().map(|n| s.fleet.view(n)).collect::<Result<Vec<_>, _>>()?;
    if let Some(id) = q.verifier.as_deref().filter(|id| !id.is_empty()) {
        agents.retain(|a| a.verifier_id == id);
    }
    if q.bulk.is_some() {
        return ok(Listing::Bulk(agents.into_iter().map(|a| (a.agent_id.clone(), a)).collect()));
    }
    ok(Listing::List(AgentList { uuids: agents.iter().map(|a| vec![a.agent_id.clone()]).collect(), agents }))
}

async fn get_agent(State(s): S, Path((v, id)): Path<(String, String)>) -> Reply<AgentView> {
    check_version(&v)?;
    let node = s.fleet.node(&id)?;
    ok(s.fleet.view(&node)?)
}

async fn add_agent(State(s): S, Path((v, id)): Path<(String, String)>, body: axum::body::Bytes) -> Reply<serde_json::Value> {
    let version = check_version(&v)?;
    check_id(&id)?;
    let req: AddAgentRequest =
        serde_json::from_slice(&body).map_err(|e| VerifierError::BadRequest(format!("request body: {e}")))?;
    let default = format!("{}.{}", version.major, version.minor);
    let checked = NodeSpec::from_request(&id, &req, &default)?;
    s.fleet.add(&id, checked).await?;
    empty()
}

async fn delete_agent(State(s): S, Path((v, id)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.delete(&id).await?;
    empty()
}

async fn reactivate(State(s): S, Path((v, id)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.reactivate(&id)?;
    empty()
}

async fn stop(State(s): S, Path((v, id)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.stop_node(&id)?;
    empty()
}

async fn names(s: &ApiState, kind: PolicyKind) -> Result<Vec<String>, VerifierError> {
    let store = s.fleet.store.clone();
    blocking(move || store.policy_names(kind)).await
}

async fn policy_text(s: &ApiState, kind: PolicyKind, name: &str) -> Result<String, VerifierError> {
    let (store, n) = (s.fleet.store.clone(), name.to_owned());
    blocking(move || store.policy(kind, &n))
        .await?
        .ok_or_else(|| VerifierError::NotFound(format!("no {} policy named {name:?}", kind.as_str())))
}

async fn runtime_names(State(s): S, Path(v): Path<String>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    ok(serde_json::json!({ "runtimepolicy names": names(&s, PolicyKind::Runtime).await? }))
}

async fn mb_names(State(s): S, Path(v): Path<String>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    ok(serde_json::json!({ "mbpolicy names": names(&s, PolicyKind::MeasuredBoot).await? }))
}

fn runtime_text(body: &[u8]) -> Result<String, VerifierError> {
    let r: RuntimePolicyRequest =
        serde_json::from_slice(body).map_err(|e| VerifierError::BadRequest(format!("request body: {e}")))?;
    if r.runtime_policy_sig.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(VerifierError::BadRequest("runtime_policy_sig: detached policy signatures are not supported".into()));
    }
    let b64 = r.runtime_policy.unwrap_or_default();
    if b64.trim().is_empty() {
        return Err(VerifierError::BadRequest("runtime_policy is empty".into()));
    }
    let bytes = B64.decode(b64.trim()).map_err(|e| VerifierError::BadRequest(format!("runtime_policy is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| VerifierError::BadRequest("runtime_policy is not UTF-8 text".into()))
}

fn mb_text(body: &[u8]) -> Result<String, VerifierError> {
    let r: MbPolicyRequest =
        serde_json::from_slice(body).map_err(|e| VerifierError::BadRequest(format!("request body: {e}")))?;
    r.mb_policy
        .or(r.mb_refstate)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| VerifierError::BadRequest("mb_policy is empty".into()))
}

async fn get_runtime(State(s): S, Path((v, name)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    let text = policy_text(&s, PolicyKind::Runtime, &name).await?;
    ok(serde_json::json!({ "name": name, "tpm_policy": "", "runtime_policy": B64.encode(text) }))
}

async fn add_runtime(State(s): S, Path((v, name)): Path<(String, String)>, body: axum::body::Bytes) -> Reply<serde_json::Value> {
    check_version(&v)?;
    check_id(&name)?;
    s.fleet.add_policy(PolicyKind::Runtime, &name, runtime_text(&body)?).await?;
    empty()
}

async fn put_runtime(State(s): S, Path((v, name)): Path<(String, String)>, body: axum::body::Bytes) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.replace_policy(PolicyKind::Runtime, &name, runtime_text(&body)?).await?;
    empty()
}

async fn delete_runtime(State(s): S, Path((v, name)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.delete_policy(PolicyKind::Runtime, &name).await?;
    empty()
}

async fn get_mb(State(s): S, Path((v, name)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    let text = policy_text(&s, PolicyKind::MeasuredBoot, &name).await?;
    ok(serde_json::json!({ "name": name, "mb_policy": text }))
}

async fn add_mb(State(s): S, Path((v, name)): Path<(String, String)>, body: axum::body::Bytes) -> Reply<serde_json::Value> {
    check_version(&v)?;
    check_id(&name)?;
    s.fleet.add_policy(PolicyKind::MeasuredBoot, &name, mb_text(&body)?).await?;
    empty()
}

async fn put_mb(State(s): S, Path((v, name)): Path<(String, String)>, body: axum::body::Bytes) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.replace_policy(PolicyKind::MeasuredBoot, &name, mb_text(&body)?).await?;
    empty()
}

async fn delete_mb(State(s): S, Path((v, name)): Path<(String, String)>) -> Reply<serde_json::Value> {
    check_version(&v)?;
    s.fleet.delete_policy(PolicyKind::MeasuredBoot, &name).await?;
    empty()
}

async fn cairn_nodes(State(s): S) -> Reply<Vec<AgentView>> {
    ok(s.fleet.all()?.iter().map(|n| s.fleet.view(n)).collect::<Result<Vec<_>, _>>()?)
}

async fn cairn_node(State(s): S, Path(id): Path<String>) -> Reply<AgentView> {
    let node = s.fleet.node(&id)?;
    ok(s.fleet.view(&node)?)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn cairn_history(State(s): S, Path(id): Path<String>, Query(q): Query<Limit>) -> Reply<Vec<HistoryView>> {
    s.fleet.node(&id)?;
    let store = s.fleet.store.clone();
    let limit = q.limit.unwrap_or(50).min(cairn_store::HISTORY_PER_AGENT);
    let events = blocking(move || store.history(&id, limit)).await?;
    ok(events
        .into_iter()
        .map(|e| HistoryView {
            at_ms: e.at_ms,
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::String(e.detail)),
            kind: e.kind,
        })
        .collect())
}

async fn cairn_deliveries(State(s): S, Path(id): Path<String>) -> Reply<serde_json::Value> {
    let store = s.fleet.store.clone();
    let rows = blocking(move || store.deliveries(&id)).await?;
    ok(serde_json::Value::Array(
        rows.into_iter()
            .map(|d| {
                serde_json::json!({"revocation_id": d.event_id, "target": d.target, "attempt": d.attempt,
                                   "at_ms": d.at_ms, "ok": d.ok, "outcome": d.outcome})
            })
            .collect(),
    ))
}

/// `GET /cairn/v1/placement` query.
#[derive(Deserialize)]
struct PlacementQuery {
    trusted_host: Option<String>,
    min_trusted_host: Option<String>,
}

fn level_param(name: &str, value: Option<&str>) -> Result<Option<IntegrityLevel>, VerifierError> {
    value
        .map(|v| {
            v.parse::<IntegrityLevel>().map_err(|_| {
                let all: Vec<&str> = IntegrityLevel::ALL.iter().map(|l| l.name()).collect();
                VerifierError::BadRequest(format!("{name}={v:?} is not a level; levels, worst first: {}", all.join(", ")))
            })
        })
        .transpose()
}

async fn placement(State(s): S, Query(q): Query<PlacementQuery>) -> Reply<Placement> {
    let exact = level_param("trusted_host", q.trusted_host.as_deref())?;
    let min = level_param("min_trusted_host", q.min_trusted_host.as_deref())?;
    let hosts = s.fleet.placement(exact, min)?;
    ok(Placement {
        trusted_host: exact.map(|l| l.name().to_owned()),
        min_trusted_host: min.map(|l| l.name().to_owned()),
        hosts,
        levels: IntegrityLevel::ALL.iter().map(|l| l.name().to_owned()).collect(),
    })
}

async fn revocation_key(State(s): S) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/x-pem-file")], s.revocation_public_pem.to_string())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT)
}

async fn metrics(State(s): S) -> impl IntoResponse {
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    let mut attestations = 0u64;
    for n in s.fleet.all().unwrap_or_default() {
        if let Ok(st) = n.status.lock() {
            *counts.entry(st.state().name()).or_default() += 1;
            attestations += st.attestation_count;
        }
    }
    let mut out = String::from("# HELP cairn_verifier_nodes Nodes by state.\n# TYPE cairn_verifier_nodes gauge\n");
    for state in ["pending", "attested", "unreachable", "failed", "stopped"] {
        out.push_str(&format!("cairn_verifier_nodes{{state=\"{state}\"}} {}\n", counts.get(state).copied().unwrap_or(0)));
    }
    out.push_str("# HELP cairn_verifier_attestations_passed Passing rounds of the nodes now known.\n");
    out.push_str("# TYPE cairn_verifier_attestations_passed counter\n");
    out.push_str(&format!("cairn_verifier_attestations_passed {attestations}\n"));
    out.push_str(&s.fleet.rounds.prometheus());
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
