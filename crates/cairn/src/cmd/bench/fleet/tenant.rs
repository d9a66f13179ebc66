//! The bench's tenant: what `cairn node add` does for each agent, over one async mTLS client —
//! read the agent's AK, mTLS certificate and address from the registrar, add it to the verifier
//! with the shared named runtime policy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_proto::verifier::AddAgentRequest;
use cairn_sim::SimFleet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::metrics::Metrics;

const API: &str = "v2.5";

/// A tenant client for one verifier and one registrar.
pub struct Tenant {
    http: reqwest::Client,
    verifier: String,
    registrar: String,
}

impl Tenant {
    /// With the client certificate of the local CA in `tls_dir`.
    pub fn new(tls_dir: &Path, verifier: SocketAddr, registrar_tls: SocketAddr) -> anyhow::Result<Tenant> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(tls_dir.join("ca-cert.pem"))? {
            roots.add(c?)?;
        }
        let chain = CertificateDer::pem_file_iter(tls_dir.join("client-cert.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(tls_dir.join("client-key.pem"))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(Tenant { http, verifier: format!("https://{verifier}"), registrar: format!("https://{registrar_tls}") })
    }

    /// Stores the runtime policy `name` at the verifier.
    pub async fn add_policy(&self, name: &str, policy_json: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "runtime_policy": B64.encode(policy_json) });
        let resp = self.http.post(format!("{}/{API}/allowlists/{name}", self.verifier)).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("the verifier refused the runtime policy: HTTP {} {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// Adds every simulated agent, `parallel` at a time.
    pub async fn add_all(&self, sim: &SimFleet, policy: &str, parallel: usize, progress: &(dyn Fn(String) + Sync)) -> anyhow::Result<()> {
        let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for agent in &sim.agents {
            let (sem, http, uuid) = (sem.clone(), self.http.clone(), agent.uuid.clone());
            let (verifier, registrar, policy) = (self.verifier.clone(), self.registrar.clone(), policy.to_owned());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                add_one(&http, &verifier, &registrar, &uuid, &policy).await
            });
        }
        let mut done = 0usize;
        while let Some(r) = set.join_next().await {
            r??;
            done += 1;
            if done % 1000 == 0 {
                progress(format!("{done} of {} agents added to the verifier", sim.agents.len()));
            }
        }
        Ok(())
    }

    /// The verifier's `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = self.http.get(format!("{}/metrics", self.verifier)).send().await?.text().await?;
        Ok(Metrics::parse(&text))
    }
}

async fn add_one(http: &reqwest::Client, verifier: &str, registrar: &str, uuid: &str, policy: &str) -> anyhow::Result<()> {
    let reg: serde_json::Value = http.get(format!("{registrar}/{API}/agents/{uuid}")).send().await?.json().await?;
    let r = reg.get("results").with_context(|| format!("registrar has no record of {uuid}"))?;
    let text = |k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let body = AddAgentRequest {
        cloudagent_ip: text("ip").with_context(|| format!("{uuid}: no ip at the registrar"))?,
        cloudagent_port: r.get("port").and_then(serde_json::Value::as_u64).and_then(|p| u16::try_from(p).ok()).context("no port")?,
        ak_tpm: text("aik_tpm"),
        mtls_cert: text("mtls_cert"),
        runtime_policy_name: Some(policy.to_owned()),
        supported_version: Some(API.trim_start_matches('v').to_owned()),
        ..AddAgentRequest::default()
    };
    let resp = http.post(format!("{verifier}/{API}/agents/{uuid}")).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("the verifier refused {uuid}: HTTP {} {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}
