//! Enrolment of a simulated agent at a registrar, exactly as a real agent does it: register the
//! EK (with its bench-CA certificate), AK, mTLS certificate and address; activate the credential
//! in software; send the auth tag.

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::credential::{keylime_auth_tag, MadeCredential};
use cairn_proto::registrar::{ActivateRequest, RegisterRequest, RegisterResponse};
use cairn_proto::Envelope;

use crate::agent::SimAgent;
use crate::credential::activate;
use crate::error::SimError;

/// Registers and activates `agent`, reachable at `addr`, at `registrar` (its plain-HTTP
/// registration URL, e.g. `http://127.0.0.1:8890`).
pub(crate) async fn enrol(http: &reqwest::Client, registrar: &str, agent: &SimAgent, addr: SocketAddr) -> Result<(), SimError> {
    let v = cairn_proto::ApiVersion::CURRENT;
    let url = format!("{}/v{}.{}/agents/{}", registrar.trim_end_matches('/'), v.major, v.minor, agent.uuid);
    let id = &agent.identity;
    let body = RegisterRequest {
        ekcert: Some(B64.encode(&id.ek_cert)),
        ek_tpm: B64.encode(&id.ek_tpm),
        aik_tpm: B64.encode(id.ak.to_tpm2b()),
        mtls_cert: Some(id.mtls_cert_pem.clone()),
        ip: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        ..RegisterRequest::default()
    };
    let err = |step: &'static str, reason: String| SimError::Registrar { uuid: agent.uuid.clone(), step, reason };
    let reply: RegisterResponse = send(http.post(&url).json(&body)).await.map_err(|r| err("registration", r))?;
    let blob = B64.decode(reply.blob.trim()).map_err(|e| err("registration", format!("blob is not base64: {e}")))?;
    let made = MadeCredential::from_tpm2_tools(&blob).map_err(|e| err("registration", format!("credential blob: {e}")))?;
    let secret = activate(id, &made).map_err(|reason| SimError::Activation { uuid: agent.uuid.clone(), reason })?;
    let auth_tag = keylime_auth_tag(&secret, &agent.uuid);
    let _: serde_json::Value = send(http.put(format!("{url}/activate")).json(&ActivateRequest { auth_tag }))
        .await
        .map_err(|r| err("activation", r))?;
    Ok(())
}

async fn send<T: serde::de::DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    let env: Envelope<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| format!("HTTP {status}, not a Keylime envelope: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", env.status));
    }
    serde_json::from_value(env.results).map_err(|e| format!("unexpected results: {e}"))
}
