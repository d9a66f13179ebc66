//! # cairn-agent
//!
//! The Cairn agent: a thin service that moves bytes between a TPM, the network and the file
//! system, speaking Keylime's agent protocol (pull mode, REST 2.x) so Keylime registrars and
//! verifiers can enrol and attest it.
//!
//! At start ([`Agent::start`]) it
//! 1. loads or creates its keys: the TPM's EK (and EK certificate from NV), an AK persisted in
//!    the TPM, the node key NK (RSA-2048, aws-lc-rs) and a self-signed mTLS certificate (rcgen),
//!    the software ones in its state directory ([`keys`], [`identity`]);
//! 2. settles its uuid (configured, hash of the EK, or generated once and kept);
//! 3. serves the agent API over HTTPS ([`api`], [`server`], [`tls`]);
//! 4. registers at the registrar and activates the AK credential ([`register`]);
//! 5. acts on revocation notifications signed by the verifier's revocation key, running the
//!    operator's local actions ([`revocation`], [`actions`]);
//! 6. takes Keylime's bootstrap key halves — U from the tenant (`POST /keys/ukey`, with the
//!    payload), V from the verifier once the node has attested (`POST /keys/vkey`) — derives K,
//!    checks the auth tag, decrypts the payload into memory-backed storage and runs its
//!    `autorun.sh`; `GET /keys/verify` proves it holds K ([`bootstrap`], [`payload`]).
//!
//! The state directory holds `nk.der`, `mtls.key`, `mtls.crt`, the uuid and AK files
//! ([`keys`], [`identity`]), `revocation_actions/` (default), and `secure/` — a tmpfs when the
//! agent can mount one — with the delivered `secure/payload` and a zip payload's files in
//! `secure/unzipped/` ([`payload::PayloadLayout`], also [`Agent::payload`]).
//!
//! In host mode (`hvm = true`) it also measures the hypervisor's processes — code in memory
//! against the files it was mapped from — into a measurement list extended into a PCR and served
//! at `GET /cairn/v1/hvm` ([`hvm`]).
//!
//! All TPM work goes through one worker ([`tpm_owner`]) that opens the TPM per job and closes it
//! after, so an operator can extend PCRs with another client between agent operations.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_agent::AgentError> {
//! let config = cairn_agent::RawConfig::from_file("agent.toml".as_ref())?.validate()?;
//! let agent = cairn_agent::Agent::start(config).await?;
//! println!("agent {} on {}", agent.uuid, agent.addr);
//! agent.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

pub mod actions;
pub mod api;
pub mod bootstrap;
pub mod changes;
pub mod config;
mod error;
pub mod hvm;
pub mod identity;
pub mod keys;
pub mod logs;
pub mod payload;
pub mod quote;
pub mod register;
pub mod revocation;
pub mod server;
pub mod tls;
pub mod tpm_owner;
pub mod vms;

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

pub use config::{AgentConfig, NodeKind, RawConfig};
pub use error::AgentError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use cairn_proto::ApiVersion;
use identity::TpmIdentity;
use keys::{MtlsIdentity, NodeKey};
use payload::{MountPolicy, PayloadLayout, PayloadStore};
use tpm_owner::TpmOwner;

/// A started agent: serving, and registered if configured to.
#[derive(Debug)]
pub struct Agent {
    /// Its uuid.
    pub uuid: String,
    /// The address it serves on.
    pub addr: SocketAddr,
    /// The TPM keys it presents.
    pub identity: TpmIdentity,
    /// Its TLS certificate, PEM.
    pub mtls_cert: String,
    /// The NK public key, PEM.
    pub nk_pem: String,
    /// The registrar API version used, if it registered.
    pub registered: Option<ApiVersion>,
    /// Where a bootstrap payload is delivered.
    pub payload: PayloadLayout,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    hvm_task: Option<JoinHandle<()>>,
}

impl Agent {
    /// Loads keys, starts serving, registers. See the crate docs.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        // The process-wide rustls provider (for the registrar client) is aws-lc-rs; if the
        // embedding program installed one already, that one stays.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.state_dir)
            .map_err(AgentError::io(&config.state_dir))?;
        // A bad revocation key is a configuration error: refused before any TPM work.
        let revocations = revocation::Revocations::load(config.revocation_cert.as_deref(), config.revocation_actions_dir.clone())?;
        let tpm = TpmOwner::start(config.tcti.clone())?;
        let identity = TpmIdentity::load(&tpm, config.ak, &config.state_dir).await?;
        let uuid = identity.uuid(&config.uuid, &config.state_dir)?;
        let nk = Arc::new(NodeKey::load_or_create(&config.state_dir)?);
        let mtls = MtlsIdentity::load_or_create(&config.state_dir, &uuid, config.contact_ip)?;
        let tls = tls::server_config(&mtls, config.client_ca.as_deref())?;
        match &config.client_ca {
            Some(ca) => tracing::info!("verifier client certificates must chain to {}", ca.display()),
            None => tracing::warn!("no client_ca: any client is served (client certificates are logged, not checked)"),
        }
        let payload = PayloadLayout::under(&config.state_dir);
        let hvm_store = match &config.hvm {
            Some(h) => Some(Arc::new(hvm::HvmStore::open(&config.state_dir, h.pcr, hvm::banks(config.ak.hash), &tpm).await?)),
            None => None,
        };
        let listener = server::bind(config.listen).await?;
        let addr = listener.local_addr().map_err(AgentError::io(config.listen.to_string()))?;
        let state = api::AgentState::new(tpm.clone(), uuid.clone(), &identity, nk.clone(), config.ima_log.clone(), config.uefi_log.clone())
            .with_revocation(revocations)
            .with_push_on_change(config.push_on_change)
            .with_bootstrap(bootstrap::Bootstrap::new(PayloadStore::new(payload.clone(), MountPolicy::Try)))
            .with_hvm(hvm_store.clone())
            .with_vms(match &config.hvm {
                Some(h) => Some(Arc::new(vms::VmEvidence::new(&h.proc_root).map_err(AgentError::Config)?)),
                None => None,
            });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, tls, api::app(Arc::new(state)), async {
            let _ = stopped.await;
        }));
        tracing::info!(%uuid, %addr, "serving the agent API over HTTPS");
        let hvm_task = match (&config.hvm, hvm_store) {
            (Some(h), Some(store)) => {
                tracing::info!(pcr = h.pcr.get(), interval_ms = h.interval.as_millis() as u64, "host mode: measuring hypervisor processes");
                Some(hvm::spawn(h.clone(), store, tpm.clone()))
            }
            _ => None,
        };
        let mut agent = Agent {
            uuid,
            addr,
            identity,
            mtls_cert: mtls.cert_pem.clone(),
            nk_pem: nk.public_pem().to_owned(),
            registered: None,
            payload,
            stop,
            task,
            hvm_task,
        };
        if config.register {
            let enrolment = register::Enrolment {
                uuid: &agent.uuid,
                identity: &agent.identity,
                mtls_cert: &agent.mtls_cert,
                ip: config.contact_ip,
                port: config.contact_port.unwrap_or(addr.port()),
                kind: config.kind,
                vtpm_ca_dir: config.vtpm_ca_dir.as_deref(),
            };
            match register::enrol(&config.registrar, &tpm, enrolment).await {
                Ok(v) => agent.registered = Some(v),
                Err(e) => {
                    agent.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(agent)
    }

    /// Serves until `signal` completes, then stops.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Stops serving (open connections finish on their own).
    pub async fn stop(self) {
        if let Some(t) = &self.hvm_task {
            t.abort();
        }
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
