//! Request handlers: decode, judge (through [`crate::checks`] and cairn-core), store, answer.
//!
//! Nothing is written before every check passed, and each write is one atomic store call, so a
//! refused or failed request leaves the store as it was.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use cairn_core::credential::{auth_tag_matches, make_credential, os_random, ObjectName};
use cairn_proto::registrar::{ActivateRequest, AgentList, AgentRecord, RegisterRequest, RegisterResponse};
use cairn_proto::version::ServiceVersion;
use cairn_proto::{ApiVersion, Envelope};
use cairn_core::ekcert::Certificate;
use cairn_proto::registrar::KIND_VM;
use cairn_store::{NewRegistration, RegistrarStore, Registration, Saved};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::agent_id::AgentId;
use crate::app::AppState;
use crate::checks::{check_registration, requested_kind};
use crate::error::RegistrarError;

/// Bytes of the credential secret (capped by the EK's nameAlg digest size).
const SECRET_LEN: usize = 32;
/// Length of a hex HMAC-SHA384.
const AUTH_TAG_HEX: usize = 96;

type Reply<T> = Result<Json<Envelope<T>>, RegistrarError>;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn check_version(v: &str) -> Result<ApiVersion, RegistrarError> {
    ApiVersion::from_path_segment(v).filter(|v| v.is_supported()).ok_or_else(|| RegistrarError::Version(v.to_owned()))
}

fn check_path(v: &str, id: &str) -> Result<AgentId, RegistrarError> {
    check_version(v)?;
    AgentId::parse(id).ok_or_else(|| RegistrarError::AgentId(id.chars().take(64).collect()))
}

fn json_body<T: DeserializeOwned>(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<T, RegistrarError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => RegistrarError::BodyTooLarge { limit: state.inner.max_body },
        _ => RegistrarError::Body(e.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(|e| RegistrarError::Json(e.to_string()))
}

/// `GET /version`.
pub(crate) async fn version() -> Json<Envelope<ServiceVersion>> {
    Json(Envelope::ok(ServiceVersion { current_version: ApiVersion::CURRENT, supported_versions: ApiVersion::SUPPORTED.to_vec() }))
}

/// `POST /vX/agents/{id}`: check, MakeCredential, store inactive, return the blob.
pub(crate) async fn register(State(state): State<AppState>, Path((v, id)): Path<(String, String)>, body: Result<Bytes, BytesRejection>) -> Reply<RegisterResponse> {
    let id = check_path(&v, &id)?;
    let req: RegisterRequest = json_body(&state, body)?;
    let s = &state.inner;
    let vtpm_cas = if requested_kind(&req)? == KIND_VM { active_vtpm_cas(s.store.as_ref())? } else { Vec::new() };
    let checked = check_registration(id.as_str(), &req, &s.trust, &vtpm_cas, s.accept_without_ek_cert, (s.clock)())?;
    let mut secret = vec![0u8; SECRET_LEN.min(checked.ek.name_alg.len())];
    os_random(&mut secret).map_err(RegistrarError::Credential)?;
    let made = make_credential(&checked.ek, &ObjectName::of(&checked.ak), &secret, &mut os_random).map_err(RegistrarError::Credential)?;
    let new = NewRegistration {
        agent_id: id.to_string(),
        ek_tpm: checked.ek_tpm,
        ekcert: checked.ekcert,
        aik_tpm: checked.aik_tpm,
        mtls_cert: checked.mtls_cert,
        ip: checked.ip.map(|ip| ip.to_string()),
        port: req.port,
        challenge: secret,
        now: (s.clock)(),
        kind: checked.kind.to_owned(),
        vtpm_ca_cert: checked.vtpm_ca_cert,
        host_agent_id: checked.host_agent_id,
    };
    let tpm = checked.chain.as_ref().and_then(|c| c.tpm.as_ref()).map(|t| format!("{t:?}"));
    match s.store.save_registration(&new)? {
        Saved::New => tracing::info!(
            agent = %id,
            kind = %new.kind,
            host = ?new.host_agent_id,
            vtpm_ca = new.vtpm_ca_cert.is_some(),
            ek = %checked.ek.key_name(),
            ak = %checked.ak.key_name(),
            tpm = ?tpm,
            "agent registered, awaiting activation"
        ),
        Saved::Reregistered { regcount } => tracing::info!(agent = %id, regcount, "agent registered again with the same identity"),
        Saved::IdentityConflict => {
            let which = s.store.registration(id.as_str())?.map(|old| differs(&old, &new)).unwrap_or("identity");
            return Err(RegistrarError::IdentityConflict { agent: id.to_string(), which });
        }
    }
    Ok(Json(Envelope::ok(RegisterResponse { blob: b64(&made.to_tpm2_tools()) })))
}

/// The vTPM CAs of active hosts, parsed; a stored certificate that no longer parses is skipped
/// (it was checked when stored) and logged.
fn active_vtpm_cas(store: &dyn RegistrarStore) -> Result<Vec<(String, Certificate)>, RegistrarError> {
    let mut out = Vec::new();
    for (host, der) in store.active_vtpm_cas()? {
        match Certificate::from_der(&der) {
            Ok(cert) => out.push((host, cert)),
            Err(e) => tracing::warn!(host = %host, error = %e, "stored vTPM CA certificate does not parse; skipped"),
        }
    }
    Ok(out)
}

/// Which part of the stored identity a refused re-registration changes.
fn differs(old: &Registration, new: &NewRegistration) -> &'static str {
    if old.ek_tpm != new.ek_tpm {
        "EK"
    } else if old.ekcert != new.ekcert {
        "EK certificate"
    } else {
        "AK"
    }
}

/// `PUT /vX/agents/{id}/activate`: constant-time auth_tag check; a wrong tag removes a
/// never-activated registration.
pub(crate) async fn activate(State(state): State<AppState>, Path((v, id)): Path<(String, String)>, body: Result<Bytes, BytesRejection>) -> Reply<Value> {
    let id = check_path(&v, &id)?;
    let req: ActivateRequest = json_body(&state, body)?;
    let tag = req.auth_tag.trim();
    if tag.len() != AUTH_TAG_HEX || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RegistrarError::Json(format!("auth_tag must be {AUTH_TAG_HEX} hex characters (HMAC-SHA384), got {} characters", tag.len())));
    }
    let store = &state.inner.store;
    let reg = store.registration(id.as_str())?.ok_or_else(|| RegistrarError::NotFound(id.to_string()))?;
    let challenge = reg.challenge.ok_or_else(|| RegistrarError::NoPendingActivation(id.to_string()))?;
    if auth_tag_matches(&challenge, id.as_str(), tag) {
        if !store.activate(id.as_str(), &challenge)? {
            return Err(RegistrarError::NoPendingActivation(id.to_string()));
        }
        tracing::info!(agent = %id, "agent activated");
        Ok(Json(Envelope::ok(json!({}))))
    } else {
        let removed = store.reject_activation(id.as_str(), &challenge)?;
        tracing::warn!(agent = %id, removed, "wrong auth_tag");
        Err(RegistrarError::WrongAuthTag { agent: id.to_string(), removed })
    }
}

/// `GET /vX/agents/`: active agents.
pub(crate) async fn list(State(state): State<AppState>, Path(v): Path<String>) -> Reply<AgentList> {
    check_version(&v)?;
    Ok(Json(Envelope::ok(AgentList { uuids: state.inner.store.active_agents()? })))
}

/// `GET /vX/agents/{id}`: an active agent's keys and contact data.
pub(crate) async fn show(State(state): State<AppState>, Path((v, id)): Path<(String, String)>) -> Reply<AgentRecord> {
    let id = check_path(&v, &id)?;
    let reg = state.inner.store.registration(id.as_str())?.ok_or_else(|| RegistrarError::NotFound(id.to_string()))?;
    if !reg.active {
        return Err(RegistrarError::NotActive(id.to_string()));
    }
    Ok(Json(Envelope::ok(AgentRecord {
        aik_tpm: b64(&reg.aik_tpm),
        ek_tpm: b64(&reg.ek_tpm),
        ekcert: reg.ekcert.as_deref().map(b64),
        mtls_cert: reg.mtls_cert,
        ip: reg.ip,
        port: reg.port,
        regcount: reg.regcount,
        cairn_kind: Some(reg.kind),
        host_agent_id: reg.host_agent_id,
    })))
}

/// `DELETE /vX/agents/{id}`.
pub(crate) async fn delete(State(state): State<AppState>, Path((v, id)): Path<(String, String)>) -> Reply<Value> {
    let id = check_path(&v, &id)?;
    if !state.inner.store.delete(id.as_str())? {
        return Err(RegistrarError::NotFound(id.to_string()));
    }
    tracing::info!(agent = %id, "agent deleted");
    Ok(Json(Envelope::ok(json!({}))))
}

/// Admin paths on the registration port.
pub(crate) async fn admin_on_tls() -> RegistrarError {
    RegistrarError::AdminOnTls
}
