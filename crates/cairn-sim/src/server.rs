//! The agents' HTTPS fronts: each agent has its own address (a verifier reaches an agent by address
//! and port, as in Keylime), all served by one listening socket; TLS with the agent's own certificate, client certificates checked against
//! the verifier's CA as a real agent does, HTTP/1.1 with keep-alive, all on one shared runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::agent::SimAgent;
use crate::stopped;
use crate::error::SimError;

/// The client-certificate check every agent shares: chains to `client_ca_pem`.
pub(crate) fn client_verifier(client_ca_pem: &[u8]) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, SimError> {
    let tls = |e: &dyn std::fmt::Display| SimError::Tls(format!("client CA: {e}"));
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().map_err(|e| tls(&e))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The TLS server configuration of one agent.
pub(crate) fn server_config(
    agent: &SimAgent,
    clients: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, SimError> {
    let tls = |e: &dyn std::fmt::Display| SimError::Tls(format!("agent {}: {e}", agent.uuid));
    let certs = CertificateDer::pem_slice_iter(agent.identity.mtls_cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(agent.identity.mtls_key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    Ok(Arc::new(config))
}

/// Binds the fleet's listener on `addr` (port 0: any free port).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr).await.map_err(|source| SimError::Io { what: format!("binding {addr}"), source })
}

/// Serves every agent on one listener until `stop` turns true: a connection goes to the agent whose
/// address (127.`net`.x.y) it was made to; one from anywhere but loopback, or to another address,
/// is closed before TLS.
pub(crate) async fn serve(listener: TcpListener, net: u8, fronts: Vec<(Arc<SimAgent>, Arc<ServerConfig>)>, mut stop: watch::Receiver<bool>) {
    let fronts: Arc<Vec<(Arc<SimAgent>, TlsAcceptor)>> = Arc::new(fronts.into_iter().map(|(a, tls)| (a, TlsAcceptor::from(tls))).collect());
    loop {
        let (tcp, peer) = tokio::select! {
            () = stopped(&mut stop) => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("simulated agents: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let local = tcp.local_addr().ok().map(|a| a.ip());
        let index = local.and_then(|ip| crate::agent_index(net, ip));
        let (Some(i), true) = (index, peer.ip().is_loopback()) else { continue };
        let Some((agent, acceptor)) = fronts.get(i).map(|(a, t)| (a.clone(), t.clone())) else { continue };
        let _ = tcp.set_nodelay(true);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let agent = agent.clone();
                async move {
                    // Signing is short (tens of µs for ECDSA): done inline on the runtime.
                    let (code, body) = if req.uri().path() == "/cairn/v1/ima/changes" {
                        agent.changes(req.uri().query()).await
                    } else {
                        agent.handle(req.uri().path(), req.uri().query())
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stopped(&mut stop) => {}
            }
        });
    }
}

