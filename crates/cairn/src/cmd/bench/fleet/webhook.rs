//! A webhook receiver for the bench: records when each signed revocation arrives and for which
//! agent, so detection latency is measured where an operator's SOC would see it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Revocations received: agent id → first arrival.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<HashMap<String, Instant>>>);

impl Received {
    /// When a revocation naming `agent` first arrived.
    pub fn at(&self, agent: &str) -> Option<Instant> {
        self.0.lock().ok().and_then(|m| m.get(agent).copied())
    }
}

/// Binds a receiver on loopback; returns its URL.
pub async fn start(stop: watch::Receiver<bool>) -> anyhow::Result<(String, Received)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}/revocations", listener.local_addr()?);
    let received = Received::default();
    tokio::spawn(serve(listener, received.clone(), stop));
    Ok((url, received))
}

async fn serve(listener: TcpListener, received: Received, stop: watch::Receiver<bool>) {
    loop {
        let tcp = tokio::select! {
            () = crate::cmd::demo::cluster::stopped(stop.clone()) => return,
            a = listener.accept() => match a { Ok((t, _)) => t, Err(_) => continue },
        };
        let received = received.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let received = received.clone();
                async move {
                    let arrived = Instant::now();
                    if let Ok(body) = req.into_body().collect().await {
                        if let Some(agent) = agent_of(&body.to_bytes()) {
                            if let Ok(mut m) = received.0.lock() {
                                m.entry(agent).or_insert(arrived);
                            }
                        }
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// The agent a revocation names: Keylime's message carries `msg`, a JSON string with `agent_id`.
fn agent_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let msg = v.get("msg")?;
    let inner: serde_json::Value = match msg {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    inner.get("agent_id")?.as_str().map(str::to_owned)
}

