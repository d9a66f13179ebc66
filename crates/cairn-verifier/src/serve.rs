//! Running the verifier: open the store, load or create TLS material and the revocation key, bind
//! the tenant port, then attest the stored fleet and serve until told to stop.
//!
//! [`Verifier::bind`] does everything that can fail at start-up and reports the bound address;
//! [`Verifier::serve`] starts the store writer, the revocation sender and every node's task (a
//! node stored as attested, pending or unreachable gets its first round right away), serves the
//! API, and at shutdown stops the rounds and drains the status queue.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cairn_core::revocation::RevocationSigner;
use cairn_registrar::tls::{ensure_local_ca, server_config, LocalCa, TlsFiles};
use cairn_store::{SqliteStore, VerifierStore};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::agent_client::ClientIdentity;
use crate::api::{app, ApiState};
use crate::config::VerifierConfig;
use crate::error::VerifierError;
use crate::fleet::Fleet;

/// Status updates queued before rounds start waiting for the writer.
const WRITE_QUEUE: usize = 16_384;

/// A bound, not yet serving verifier.
pub struct Verifier {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    config: VerifierConfig,
    store: Arc<dyn VerifierStore>,
    identity: ClientIdentity,
    signer: Arc<RevocationSigner>,
    webhook_roots: Vec<Vec<u8>>,
    refdb: Option<Arc<crate::levels::RefCache>>,
    /// The tenant API's address.
    pub addr: SocketAddr,
    /// The local CA, when no TLS files were configured.
    pub local_ca: Option<LocalCa>,
    /// Where the revocation public key is (PEM), for agents' `revocation_cert`.
    pub revocation_public_key: std::path::PathBuf,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Verifier {
    /// Opens the store at the configured path and binds.
    pub async fn bind(config: &VerifierConfig) -> Result<Verifier, VerifierError> {
        std::fs::create_dir_all(&config.state_dir).map_err(VerifierError::io(&config.state_dir))?;
        let store = Arc::new(SqliteStore::open(&config.database_path())?);
        Verifier::bind_with_store(config, store).await
    }

    /// Binds over an already open store (the all-in-one mode shares the registrar's file).
    pub async fn bind_with_store(config: &VerifierConfig, store: Arc<dyn VerifierStore>) -> Result<Verifier, VerifierError> {
        config.validate().map_err(VerifierError::Config)?;
        std::fs::create_dir_all(&config.state_dir).map_err(VerifierError::io(&config.state_dir))?;
        let (files, local_ca) = tls_files(config)?;
        let acceptor = TlsAcceptor::from(server_config(&files).map_err(|e| VerifierError::Tls(e.to_string()))?);
        let identity = client_identity(config, local_ca.as_ref())?;
        let (signer, revocation_public_key) = revocation_key(&config.revocation_key_path())?;
        let webhook_roots = std::fs::read(&files.client_ca).map(|p| vec![p]).unwrap_or_default();
        let refdb = match &config.refdb {
            Some(path) => Some(Arc::new(crate::levels::RefCache::open(path).map_err(VerifierError::Config)?)),
            None => None,
        };
        let addr = SocketAddr::new(config.ip, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| VerifierError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| VerifierError::Bind { addr, source })?;
        Ok(Verifier {
            listener,
            acceptor,
            config: config.clone(),
            store,
            identity,
            signer: Arc::new(signer),
            webhook_roots,
            refdb,
            addr,
            local_ca,
            revocation_public_key,
        })
    }

    /// Attests and serves until `shutdown` completes; then stops gracefully.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), VerifierError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
        let (revoke_tx, revoke_rx) = mpsc::unbounded_channel();
        let (level_tx, level_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(crate::writer::run(self.store.clone(), write_rx, stop_rx.clone()));
        // The fleet reports where it is served (tenants address `delete` there): the bound port,
        // not a configured 0.
        let config = VerifierConfig { ip: self.addr.ip(), port: self.addr.port(), ..self.config.clone() };
        let outboxes = crate::fleet::Outboxes { writer: write_tx, revocations: revoke_tx, level_events: level_tx };
        let fleet = Arc::new(Fleet::new(self.store.clone(), config, self.identity, stop_rx.clone(), outboxes, self.refdb));
        let webhook = webhook_client(&self.webhook_roots, self.config.request_timeout())?;
        let public_pem: Arc<str> = Arc::from(self.signer.public_key_pem());
        tokio::spawn(crate::level_events::run(fleet.clone(), self.signer.clone(), webhook.clone(), level_rx));
        tokio::spawn(crate::revoke::run(fleet.clone(), self.signer, webhook, revoke_rx));
        let resumed = fleet.resume()?;
        tracing::info!(addr = %self.addr, nodes = resumed, interval_ms = self.config.quote_interval_ms, "verifier serving");
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let state = ApiState { fleet, revocation_public_pem: public_pem };
        let served = cairn_registrar::serve::serve_tls(self.listener, self.acceptor, app(state), stop_rx).await;
        let _ = writer.await;
        tracing::info!("verifier stopped");
        served.map_err(|e| VerifierError::Internal(format!("serving: {e}")))
    }
}

fn tls_files(config: &VerifierConfig) -> Result<(TlsFiles, Option<LocalCa>), VerifierError> {
    match (&config.server_cert, &config.server_key, &config.client_ca) {
        (Some(c), Some(k), Some(ca)) => {
            Ok((TlsFiles { server_cert: c.clone(), server_key: k.clone(), client_ca: ca.clone() }, None))
        }
        (None, None, None) => {
            let ca = ensure_local_ca(&config.tls_dir_path(), &[config.ip.to_string()])
                .map_err(|e| VerifierError::Tls(e.to_string()))?;
            Ok((ca.server.clone(), Some(ca)))
        }
        _ => Err(VerifierError::Config(
            "server_cert, server_key and client_ca must be given together (or none, for an auto-created local CA)".into(),
        )),
    }
}

fn client_identity(config: &VerifierConfig, ca: Option<&LocalCa>) -> Result<ClientIdentity, VerifierError> {
    let (cert, key) = match (&config.agent_client_cert, &config.agent_client_key, ca) {
        (Some(c), Some(k), _) => (c.clone(), k.clone()),
        (None, None, Some(ca)) => (ca.client_cert.clone(), ca.client_key.clone()),
        _ => {
            return Err(VerifierError::Config(
                "agent_client_cert and agent_client_key must be given together (they default to the local CA's client certificate)"
                    .into(),
            ))
        }
    };
    Ok(ClientIdentity {
        cert_pem: std::fs::read(&cert).map_err(VerifierError::io(&cert))?,
        key_pem: std::fs::read(&key).map_err(VerifierError::io(&key))?,
    })
}

/// Loads the revocation key, creating it (and its public key beside it) on first start.
fn revocation_key(path: &Path) -> Result<(RevocationSigner, std::path::PathBuf), VerifierError> {
    let public = path.with_file_name(format!(
        "{}.pub.pem",
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("revocation-key")
    ));
    let signer = if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(VerifierError::io(path))?;
        RevocationSigner::from_pem(&pem).map_err(|e| VerifierError::Config(format!("{}: {e}", path.display())))?
    } else {
        let signer = RevocationSigner::generate().map_err(|e| VerifierError::Internal(e.to_string()))?;
        let pem = signer.to_pkcs8_pem().map_err(|e| VerifierError::Internal(e.to_string()))?;
        write_private(path, pem.as_bytes())?;
        tracing::info!(key = %path.display(), "created the revocation signing key");
        signer
    };
    std::fs::write(&public, signer.public_key_pem()).map_err(VerifierError::io(&public))?;
    Ok((signer, public))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), VerifierError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(VerifierError::io(path))
}

fn webhook_client(roots_pem: &[Vec<u8>], timeout: std::time::Duration) -> Result<reqwest::Client, VerifierError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for c in CertificateDer::pem_slice_iter(pem).flatten() {
            let _ = roots.add(c);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| VerifierError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| VerifierError::Tls(e.to_string()))
}
