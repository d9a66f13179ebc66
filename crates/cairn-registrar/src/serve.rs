//! Running the registrar: open the store, load trust and TLS, bind both ports, serve until told
//! to stop.
//!
//! [`Registrar::bind`] does everything that can fail at start-up and reports the bound addresses
//! (ports may be 0 = any free port); [`Registrar::serve`] then serves both ports until the
//! shutdown future completes, stops accepting, and gives open connections a grace period.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cairn_core::ekcert::TrustStore;
use cairn_store::SqliteStore;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::{app, AppState, Port};
use crate::config::RegistrarConfig;
use crate::tls::{ensure_local_ca, server_config, LocalCa, TlsError, TlsFiles};
use crate::trust::{load_trust_dir, TrustError};

/// How long open connections may finish after shutdown was requested.
const GRACE: Duration = Duration::from_secs(5);
/// Longest TLS handshake allowed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The registrar could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// The trust directory could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// TLS material is missing or unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Only some of server_cert, server_key, client_ca were given.
    #[error("server_cert, server_key and client_ca must be given together (or none, for an auto-created local CA)")]
    PartialTls,
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A registrar with its ports bound, ready to serve.
pub struct Registrar {
    http: TcpListener,
    tls: TcpListener,
    acceptor: TlsAcceptor,
    state: AppState,
    /// Where the registration (HTTP) port listens.
    pub http_addr: SocketAddr,
    /// Where the TLS port listens.
    pub tls_addr: SocketAddr,
    /// The local CA, when one is used (created now or earlier).
    pub local_ca: Option<LocalCa>,
    /// How many trusted EK CA certificates were loaded.
    pub trusted_certs: usize,
}

impl Registrar {
    /// Opens the store, loads the trust directory and TLS files (creating a local CA when none
    /// is configured) and binds both ports.
    pub async fn bind(config: &RegistrarConfig) -> Result<Registrar, StartError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir { path: config.state_dir.clone(), source })?;
        let store = SqliteStore::open(&config.database_path())?;
        let (trust, trusted_certs) = load_trust_dir(&config.trust_dir_path())?;
        let (files, local_ca) = tls_files(config)?;
        let acceptor = TlsAcceptor::from(server_config(&files)?);
        let state = AppState::new(Arc::new(store), trust_or_empty(trust), config.accept_without_ek_cert, config.max_body_bytes);
        let http = bind(SocketAddr::new(config.ip, config.port)).await?;
        let tls = bind(SocketAddr::new(config.ip, config.tls_port)).await?;
        let http_addr = http.local_addr().map_err(|source| StartError::Bind { addr: SocketAddr::new(config.ip, config.port), source })?;
        let tls_addr = tls.local_addr().map_err(|source| StartError::Bind { addr: SocketAddr::new(config.ip, config.tls_port), source })?;
        Ok(Registrar { http, tls, acceptor, state, http_addr, tls_addr, local_ca, trusted_certs })
    }

    /// Serves both ports until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let http_app = app(self.state.clone(), Port::Registration);
        let tls_app = app(self.state, Port::Tls);
        let http = serve_plain(self.http, http_app, stop_rx.clone());
        let tls = serve_tls(self.tls, self.acceptor, tls_app, stop_rx);
        tokio::try_join!(http, tls)?;
        tracing::info!("registrar stopped");
        Ok(())
    }
}

fn trust_or_empty(t: TrustStore) -> TrustStore {
    if t.anchors().is_empty() {
        tracing::warn!("the trust directory holds no certificates: every EK certificate will be refused");
    }
    t
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

fn tls_files(config: &RegistrarConfig) -> Result<(TlsFiles, Option<LocalCa>), StartError> {
    match (&config.server_cert, &config.server_key, &config.client_ca) {
        (Some(c), Some(k), Some(ca)) => Ok((TlsFiles { server_cert: c.clone(), server_key: k.clone(), client_ca: ca.clone() }, None)),
        (None, None, None) => {
            let ca = ensure_local_ca(&config.auto_tls_dir(), &[config.ip.to_string()])?;
            Ok((ca.server.clone(), Some(ca)))
        }
        _ => Err(StartError::PartialTls),
    }
}

/// Waits until the stop flag is raised.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn serve_plain(listener: TcpListener, app: Router, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped(stop.clone())).into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r,
        () = stopped(stop) => {}
    }
    // Shutdown requested: open connections get the grace period, then are dropped.
    tokio::time::timeout(GRACE, server).await.unwrap_or(Ok(()))
}

/// Serves `app` over TLS on `listener` until `stop` turns true (shared by the verifier): each
/// connection is handshaken with a timeout, then served; at shutdown open connections get a grace
/// period.
pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, app: Router, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(stop.clone()) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed on the TLS port");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { tracing::debug!(%peer, error = %e, "TLS connection ended") },
                () = stopped(stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(GRACE, conn).await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(GRACE, async { while connections.join_next().await.is_some() {} }).await;
    Ok(())
}
