//! A whole Cairn deployment in one process, on real parts, for the demo and the benchmarks: a
//! local EK CA; a registrar and a verifier sharing one SQLite file and one local TLS CA; N agents,
//! each on its own swtpm (EK certificates from the CA), enrolled at the registrar, trusting the
//! verifier's client certificate and revocation key, each with a revocation action that records
//! the revoked peer. Optionally every agent starts with an IMA log the cluster measures into PCR 10
//! exactly as a kernel would.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_agent::config::RawConfig;
use cairn_agent::Agent;
use cairn_core::pcr::PcrIndex;
use cairn_core::{Digest, HashAlg};
use cairn_registrar::{Registrar, RegistrarConfig};
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use cairn_tpm::Tpm;
use cairn_verifier::{Verifier, VerifierConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::node::Endpoints;

/// What to start.
pub struct ClusterSpec {
    /// Number of agents.
    pub agents: usize,
    /// The verifier's quote interval.
    pub interval_ms: u64,
    /// Webhooks for revocations.
    pub webhooks: Vec<String>,
    /// An IMA log (ASCII) every agent starts with, measured into its PCR 10.
    pub ima_log: Option<Vec<u8>>,
}

/// One agent and its TPM.
pub struct ClusterNode {
    /// Its software TPM.
    pub swtpm: Swtpm,
    /// The running agent (taken at stop).
    pub agent: Option<Agent>,
    /// Its IMA log file.
    pub ima: PathBuf,
    /// Its state directory.
    pub state: PathBuf,
    /// Where its revocation action records revoked peers.
    pub dropped: PathBuf,
}

/// The running deployment.
pub struct Cluster {
    /// The shared database.
    pub database: PathBuf,
    /// Registrar registration port.
    pub registrar_http: SocketAddr,
    /// Registrar TLS port.
    pub registrar_tls: SocketAddr,
    /// Verifier tenant port.
    pub verifier_addr: SocketAddr,
    /// The local TLS CA directory (tenant client certificate inside).
    pub tls_dir: PathBuf,
    /// The verifier's revocation public key.
    pub revocation_public_key: PathBuf,
    /// The tenant's view of it.
    pub endpoints: Endpoints,
    /// The agents.
    pub nodes: Vec<ClusterNode>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Starts everything under `dir`; `progress` receives one line per agent.
    pub async fn start(dir: &Path, spec: &ClusterSpec, progress: impl Fn(String)) -> anyhow::Result<Cluster> {
        let ca = SwtpmCa::create(&dir.join("ek-ca")).context("cannot create the local EK CA (is swtpm-tools installed?)")?;
        let trust = dir.join("registrar/tpm_cert_store");
        std::fs::create_dir_all(&trust)?;
        for (i, pem) in [ca.root_pem(), ca.issuer_pem()].iter().enumerate() {
            std::fs::copy(pem, trust.join(format!("ek-ca-{i}.pem"))).with_context(|| format!("copying {}", pem.display()))?;
        }
        let database = dir.join("cairn.sqlite");
        let rc = RegistrarConfig {
            port: 0,
            tls_port: 0,
            state_dir: dir.join("registrar"),
            database: Some(database.clone()),
            trust_dir: Some(trust),
            ..RegistrarConfig::default()
        };
        let registrar = Registrar::bind(&rc).await.context("starting the registrar")?;
        let (registrar_http, registrar_tls) = (registrar.http_addr, registrar.tls_addr);
        let tls_dir = dir.join("registrar/tls");
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = registrar.serve(stopped(rx)).await;
        }));
        let vc = VerifierConfig {
            port: 0,
            state_dir: dir.join("verifier"),
            database: Some(database.clone()),
            tls_dir: Some(tls_dir.clone()),
            quote_interval_ms: spec.interval_ms,
            retry_base_ms: 500,
            retry_max_ms: 5000,
            webhooks: spec.webhooks.clone(),
            ..VerifierConfig::default()
        };
        let verifier = Verifier::bind(&vc).await.context("starting the verifier")?;
        let verifier_addr = verifier.addr;
        let revocation_public_key = verifier.revocation_public_key.clone();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = verifier.serve(stopped(rx)).await {
                tracing::error!(error = %e, "verifier stopped with an error");
            }
        }));

        let mut nodes = Vec::new();
        for i in 0..spec.agents {
            let adir = dir.join(format!("agent-{}", i + 1));
            std::fs::create_dir_all(adir.join("actions"))?;
            let swtpm = Swtpm::start(&adir.join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None })
                .with_context(|| format!("starting swtpm {}", i + 1))?;
            let ima = adir.join("ascii_runtime_measurements");
            std::fs::write(&ima, b"")?;
            if let Some(log) = &spec.ima_log {
                measure(&swtpm.tcti(), &ima, log)?;
            }
            let uefi = adir.join("binary_bios_measurements");
            std::fs::write(&uefi, b"")?;
            let dropped = adir.join("peers-dropped.txt");
            write_action(&adir.join("actions/10-drop-peer"), &dropped)?;
            let state = adir.join("state");
            let raw = RawConfig {
                tcti: Some(swtpm.tcti()),
                state_dir: Some(state.clone()),
                listen: Some("127.0.0.1:0".into()),
                registrar: Some(format!("http://{registrar_http}")),
                ima_log: Some(ima.clone()),
                uefi_log: Some(uefi),
                client_ca: Some(tls_dir.join("ca-cert.pem")),
                revocation_cert: Some(revocation_public_key.clone()),
                revocation_actions_dir: Some(adir.join("actions")),
                ak_alg: Some("ecc256".into()),
                ..RawConfig::default()
            };
            let agent = Agent::start(raw.validate()?).await.with_context(|| format!("starting agent {}", i + 1))?;
            progress(format!("      agent {}: {} on {} (swtpm {}), enrolled", i + 1, agent.uuid, agent.addr, swtpm.tcti()));
            nodes.push(ClusterNode { swtpm, agent: Some(agent), ima, state, dropped });
        }
        let endpoints = Endpoints::local(format!("https://{verifier_addr}"), format!("https://{registrar_tls}"), tls_dir.clone());
        Ok(Cluster {
            database,
            registrar_http,
            registrar_tls,
            verifier_addr,
            tls_dir,
            revocation_public_key,
            endpoints,
            nodes,
            stop,
            tasks,
        })
    }

    /// The agents' ids, in order.
    pub fn uuids(&self) -> Vec<String> {
        self.nodes.iter().filter_map(|n| n.agent.as_ref().map(|a| a.uuid.clone())).collect()
    }

    /// Stops agents, verifier and registrar; unmounts payload tmpfs the agents made.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for n in &mut self.nodes {
            if let Some(a) = n.agent.take() {
                a.stop().await;
            }
            let secure = n.state.join("secure");
            if is_mount_point(&secure) {
                let _ = std::process::Command::new("umount").arg("-l").arg(&secure).status();
            }
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let target = dir.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(target.as_ref()))
}

/// Completes when `rx` turns true.
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The agent's revocation action: append the revoked node to this node's dropped-peers list.
fn write_action(path: &Path, list: &Path) -> anyhow::Result<()> {
    let script = format!("#!/bin/sh\n# Drop the revoked node from this node's peers.\necho \"$CAIRN_REVOKED_AGENT_ID\" >> '{}'\n", list.display());
    std::fs::write(path, script)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Appends IMA `lines` to the log and extends PCR 10 as the kernel does (sha1: the template hash;
/// sha256: H(template data)), through a short-lived TPM connection beside the running agent.
pub fn measure(tcti: &str, ima: &Path, lines: &[u8]) -> anyhow::Result<()> {
    let mut tpm = Tpm::open(tcti)?;
    let mut scratch = Vec::new();
    let pcr10 = PcrIndex::new(10).context("PCR 10")?;
    for e in cairn_core::ima::parse(lines)? {
        let data = e.template_data(&mut scratch).context("IMA template data")?.to_vec();
        let sha1 = Digest::from_bytes(HashAlg::Sha1, e.template_hash.as_bytes()).context("template hash")?;
        tpm.pcr_extend(pcr10, &[sha1, HashAlg::Sha256.hash(&data)])?;
    }
    drop(tpm);
    std::fs::OpenOptions::new().append(true).open(ima)?.write_all(lines)?;
    Ok(())
}
