//! The verifier's one error type, and how each kind maps to an HTTP status.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_proto::Envelope;
use thiserror::Error;

/// Something the verifier could not do.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The request is malformed or names an invalid value.
    #[error("{0}")]
    BadRequest(String),
    /// No such node, policy or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// The id or name is taken, or the object is in use.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] cairn_store::StoreError),
    /// A configuration value is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An internal task failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl VerifierError {
    /// A closure mapping an I/O error on `path`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> VerifierError + '_ {
        move |source| VerifierError::Io { path: path.to_path_buf(), source }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            VerifierError::BadRequest(_) => StatusCode::BAD_REQUEST,
            VerifierError::NotFound(_) => StatusCode::NOT_FOUND,
            VerifierError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for VerifierError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(Envelope::error(status.as_u16(), self.to_string()))).into_response()
    }
}
