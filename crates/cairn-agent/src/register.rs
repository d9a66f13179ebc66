//! Enrolment at a Keylime-compatible registrar: register, then prove the AK shares a TPM with
//! the EK.
//!
//! 1. `GET /version` picks the API version (the highest both serve; 2.1 if the registrar does
//!    not say).
//! 2. `POST /v{X}/agents/{uuid}` with the EK certificate, EK, AK, mTLS certificate and contact
//!    address; the registrar answers with a credential (tpm2-tools file, base64) made for the
//!    EK and bound to the AK's name.
//! 3. The TPM activates it (only the TPM holding both keys can), and the agent sends
//!    `PUT /v{X}/agents/{uuid}/activate {auth_tag}` with auth_tag = HMAC-SHA384(b64(secret), uuid).
//!
//! A host with a vTPM CA (`vtpm_ca_dir`) adds Cairn's `cairn_vtpm_ca` to the registration: the CA
//! certificate, the CA key's public area, and TPM2_Certify of that key by the AK over SHA-256 of
//! the certificate, so the registrar learns the CA key is in this TPM. Every registration says
//! `cairn_kind` (`host` or `vm`). Keylime registrars ignore both fields.
//!
//! The same identity is registered again at every start; a registrar accepts that (and refuses
//! a different EK or AK under the same uuid).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::credential::{keylime_auth_tag, MadeCredential};
use cairn_core::HashAlg;
use cairn_proto::registrar::{ActivateRequest, RegisterRequest, RegisterResponse, VtpmCaEvidence};
use cairn_tpm::vtpm_ca::CaKey;
use cairn_tpm::Ak;
use cairn_proto::version::ServiceVersion;
use cairn_proto::{ApiVersion, Envelope};

use crate::config::NodeKind;
use crate::error::AgentError;
use crate::identity::TpmIdentity;
use crate::tpm_owner::TpmOwner;

/// API version used when the registrar does not answer `/version`.
const FALLBACK_VERSION: ApiVersion = ApiVersion { major: 2, minor: 1 };
/// Largest registrar reply read.
const MAX_REPLY: usize = 1024 * 1024;

/// What the agent registers.
#[derive(Clone, Debug)]
pub struct Enrolment<'a> {
    /// The agent uuid.
    pub uuid: &'a str,
    /// TPM keys.
    pub identity: &'a TpmIdentity,
    /// The agent's TLS certificate, PEM.
    pub mtls_cert: &'a str,
    /// Where verifiers reach the agent.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
    /// What the node is.
    pub kind: NodeKind,
    /// A host's vTPM CA directory, published with a TPM2_Certify proof.
    pub vtpm_ca_dir: Option<&'a Path>,
}

/// Registers and activates at `registrar`; returns the API version used.
pub async fn enrol(registrar: &reqwest::Url, owner: &TpmOwner, e: Enrolment<'_>) -> Result<ApiVersion, AgentError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|err| AgentError::Registrar(format!("HTTP client: {err}")))?;
    let version = negotiate(&client, registrar).await;
    let url = |tail: &str| {
        registrar
            .join(&format!("v{version}/agents/{}{tail}", e.uuid))
            .map_err(|err| AgentError::Registrar(format!("URL: {err}")))
    };
    let body = RegisterRequest {
        ekcert: e.identity.ek_cert.as_deref().map(|c| B64.encode(c)),
        ek_tpm: B64.encode(&e.identity.ek.public),
        aik_tpm: B64.encode(&e.identity.ak.public),
        mtls_cert: Some(e.mtls_cert.to_owned()),
        ip: Some(e.ip.to_string()),
        port: Some(e.port),
        cairn_kind: Some(e.kind.as_str().to_owned()),
        cairn_vtpm_ca: match e.vtpm_ca_dir {
            Some(dir) => Some(vtpm_ca_evidence(owner, &e.identity.ak, dir).await?),
            None => None,
        },
        ..RegisterRequest::default()
    };
    let reply: RegisterResponse = send(client.post(url("")?).json(&body), "registration").await?;
    let blob = B64.decode(reply.blob.trim()).map_err(|err| AgentError::Registrar(format!("blob is not base64: {err}")))?;
    let made = MadeCredential::from_tpm2_tools(&blob).map_err(|source| AgentError::Parse { what: "credential blob", source })?;
    let (ak, ek) = (e.identity.ak.clone(), e.identity.ek.clone());
    let secret = owner
        .run(move |tpm| Ok(tpm.activate_credential(&ak, &ek, &made.id_object, &made.encrypted_secret)?))
        .await?;
    let auth_tag = keylime_auth_tag(&secret, e.uuid);
    let _: serde_json::Value = send(client.put(url("/activate")?).json(&ActivateRequest { auth_tag }), "activation").await?;
    tracing::info!(uuid = e.uuid, %registrar, %version, "registered and activated");
    Ok(version)
}

/// The vTPM CA of `dir` and TPM2_Certify of its key by `ak`, over SHA-256 of the CA certificate.
async fn vtpm_ca_evidence(owner: &TpmOwner, ak: &Ak, dir: &Path) -> Result<VtpmCaEvidence, AgentError> {
    let (key, cert) = CaKey::read_dir(dir)?
        .ok_or_else(|| AgentError::Config(format!("vtpm_ca_dir: {} holds no vTPM CA (cairn vtpm create makes one)", dir.display())))?;
    let qualifying = HashAlg::Sha256.hash(&cert);
    let (ak, public) = (ak.clone(), key.public.clone());
    let certified = owner.run(move |tpm| Ok(tpm.ca_certify(&key, &ak, qualifying.as_bytes())?)).await?;
    Ok(VtpmCaEvidence {
        ca_cert: B64.encode(&cert),
        ca_public: B64.encode(&public),
        certify_attest: B64.encode(&certified.attest),
        certify_signature: B64.encode(&certified.signature),
    })
}

/// The highest version both sides serve, or [`FALLBACK_VERSION`].
async fn negotiate(client: &reqwest::Client, registrar: &reqwest::Url) -> ApiVersion {
    let Ok(url) = registrar.join("version") else { return FALLBACK_VERSION };
    match send::<ServiceVersion>(client.get(url), "version").await {
        Ok(v) => ApiVersion::negotiate(&v.supported_versions).unwrap_or(FALLBACK_VERSION),
        Err(err) => {
            tracing::warn!("registrar /version: {err}; using {FALLBACK_VERSION}");
            FALLBACK_VERSION
        }
    }
}

/// Sends a request and unwraps the envelope's `results`; a non-2xx answer is an error with the
/// registrar's reason.
async fn send<T: serde::de::DeserializeOwned>(req: reqwest::RequestBuilder, what: &str) -> Result<T, AgentError> {
    let err = |why: String| AgentError::Registrar(format!("{what}: {why}"));
    let resp = req.send().await.map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?;
    if bytes.len() > MAX_REPLY {
        return Err(err(format!("reply of {} bytes", bytes.len())));
    }
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("HTTP {status}, not a Keylime envelope ({e}): {}", String::from_utf8_lossy(&bytes))))?;
    if !status.is_success() {
        return Err(err(format!("HTTP {status}: {}", envelope.status)));
    }
    serde_json::from_value(envelope.results).map_err(|e| err(format!("unexpected results: {e}")))
}
