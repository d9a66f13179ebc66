//! The HTTP surface: two routers over one state, one per port.
//!
//! The registration port (plain HTTP, as in Keylime) serves `GET /version`, `POST
//! /vX/agents/{id}` and `PUT /vX/agents/{id}/activate`; its admin paths answer 403. The TLS port
//! (client certificate required by the TLS layer, see [`crate::tls`]) serves everything.
//! Handlers live in [`crate::handlers`]; this module only wires paths, limits and state.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_core::ekcert::TrustStore;
use cairn_proto::Envelope;
use cairn_store::RegistrarStore;

use crate::handlers;

/// Which listener a router serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Plain HTTP: registration and activation only.
    Registration,
    /// mTLS: registration, activation and admin.
    Tls,
}

/// Unix time in seconds; injectable so tests can pin certificate validity checks.
pub type Clock = fn() -> i64;

/// Shared state of both routers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn RegistrarStore>,
    pub(crate) trust: TrustStore,
    pub(crate) accept_without_ek_cert: bool,
    pub(crate) max_body: usize,
    pub(crate) clock: Clock,
}

impl AppState {
    /// State over `store`, judging EK certificates against `trust`.
    pub fn new(store: Arc<dyn RegistrarStore>, trust: TrustStore, accept_without_ek_cert: bool, max_body: usize) -> AppState {
        AppState { inner: Arc::new(Inner { store, trust, accept_without_ek_cert, max_body, clock: system_now }) }
    }

    /// The same state with another clock.
    pub fn with_clock(self, clock: Clock) -> AppState {
        let i = &self.inner;
        let inner = Inner { store: i.store.clone(), trust: i.trust.clone(), accept_without_ek_cert: i.accept_without_ek_cert, max_body: i.max_body, clock };
        AppState { inner: Arc::new(inner) }
    }
}

/// The system clock in unix seconds.
pub fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The router for `port`.
pub fn app(state: AppState, port: Port) -> Router {
    let limit = state.inner.max_body;
    let admin = match port {
        Port::Tls => Router::new()
            .route("/{version}/agents", get(handlers::list))
            .route("/{version}/agents/", get(handlers::list))
            .route("/{version}/agents/{id}", post(handlers::register).get(handlers::show).delete(handlers::delete)),
        Port::Registration => Router::new()
            .route("/{version}/agents", get(handlers::admin_on_tls))
            .route("/{version}/agents/", get(handlers::admin_on_tls))
            .route("/{version}/agents/{id}", post(handlers::register).get(handlers::admin_on_tls).delete(handlers::admin_on_tls)),
    };
    admin
        .route("/version", get(handlers::version))
        .route("/{version}/agents/{id}/activate", put(handlers::activate))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(Envelope::error(404, "no such endpoint")))
}
