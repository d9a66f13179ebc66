//! Talking to one agent: an HTTPS client that trusts exactly the agent's pinned certificate and
//! presents the verifier's client certificate, kept per node so its connection stays alive
//! between rounds; and the `quotes/integrity` request with its reply decoded.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_proto::Envelope;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::error::VerifierError;

/// The verifier's client identity toward agents (PEM certificate chain and key).
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// An HTTPS client for one agent.
pub fn client(agent_cert_pem: &str, me: &ClientIdentity, timeout: Duration) -> Result<reqwest::Client, VerifierError> {
    let tls = |what: &str, e: &dyn std::fmt::Display| VerifierError::Tls(format!("{what}: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(agent_cert_pem.as_bytes()) {
        roots.add(c.map_err(|e| tls("agent certificate", &e))?).map_err(|e| tls("agent certificate", &e))?;
    }
    let chain = CertificateDer::pem_slice_iter(&me.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls("verifier client certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&me.key_pem).map_err(|e| tls("verifier client key", &e))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocol versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls("client certificate", &e))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(300))
        // One kept-alive connection per agent (a second one only while a push-on-change poll is open).
        .pool_max_idle_per_host(1)
        .build()
        .map_err(|e| tls("HTTP client", &e))
}

/// The fields of a `quotes/integrity` reply the verifier uses.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IntegrityReply {
    /// `r<attest>:<sig>:<pcrs>`.
    pub quote: String,
    /// The agent's boot time.
    #[serde(default)]
    pub boottime: Option<u64>,
    /// NK PEM (with partial=0).
    #[serde(default)]
    pub pubkey: Option<String>,
    /// IMA lines from `ima_measurement_list_entry`.
    #[serde(default)]
    pub ima_measurement_list: Option<String>,
    /// First entry of that list.
    #[serde(default)]
    pub ima_measurement_list_entry: Option<u64>,
    /// UEFI log, base64.
    #[serde(default)]
    pub mb_measurement_list: Option<String>,
}

impl IntegrityReply {
    /// The UEFI log bytes, if sent.
    pub fn uefi_log(&self) -> Result<Option<Vec<u8>>, String> {
        match self.mb_measurement_list.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(b) => B64.decode(b).map(Some).map_err(|e| format!("mb_measurement_list is not base64: {e}")),
        }
    }
}

/// Why a request got no usable reply: the node counts as unreachable for this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// Asks for an integrity quote.
pub async fn integrity_quote(
    http: &reqwest::Client,
    base: &str,
    nonce: &str,
    mask: u32,
    partial: bool,
    entry: u64,
) -> Result<IntegrityReply, Unreachable> {
    let url = format!(
        "{base}/quotes/integrity?nonce={nonce}&mask=0x{mask:x}&partial={}&ima_ml_entry={entry}",
        u8::from(partial)
    );
    let resp = http.get(&url).send().await.map_err(|e| Unreachable(describe(&e)))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| Unreachable(describe(&e)))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<Envelope<serde_json::Value>>(&body).map(|e| e.status).unwrap_or_default();
        return Err(Unreachable(format!("agent answered HTTP {status}: {why}")));
    }
    let env: Envelope<IntegrityReply> =
        serde_json::from_slice(&body).map_err(|e| Unreachable(format!("agent reply is not a quote: {e}")))?;
    Ok(env.results)
}

/// An error with its causes, on one line (reqwest hides the useful part in the source chain).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
