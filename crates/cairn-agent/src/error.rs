//! The agent's one error type, and its one mapping to HTTP.
//!
//! Requests that are wrong (a bad nonce, a bad mask, an unknown API version) become 400 with the
//! reason in the envelope's `status`, because the caller can fix them; a revocation notification
//! not signed by the configured key (or with no key configured) becomes 403, also with its reason. Everything else — the TPM,
//! the file system — is logged in full and answered with a bare 500: internals are not leaked.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_proto::Envelope;
use thiserror::Error;

/// Anything that can go wrong in the agent.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A request parameter is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The path names no endpoint or an unsupported API version.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is well formed but refused (a revocation not signed by the configured key,
    /// or no key configured).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The TPM failed.
    #[error("TPM: {0}")]
    Tpm(#[from] cairn_tpm::TpmError),
    /// The TPM worker thread is gone.
    #[error("the TPM worker stopped")]
    TpmWorkerGone,
    /// A file or socket operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path (or address).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Key or certificate handling failed.
    #[error("keys: {0}")]
    Keys(String),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Talking to the registrar failed.
    #[error("registrar: {0}")]
    Registrar(String),
    /// Bytes (from the registrar or the TPM) do not parse.
    #[error("malformed {what}: {source}")]
    Parse {
        /// What was parsed.
        what: &'static str,
        /// Why it failed.
        source: cairn_core::ParseError,
    },
}

impl AgentError {
    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> AgentError {
        let path = path.as_ref().to_owned();
        move |source| AgentError::Io { path, source }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AgentError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AgentError::NotFound(_) => StatusCode::NOT_FOUND,
            AgentError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = match &self {
            AgentError::BadRequest(why) | AgentError::NotFound(why) | AgentError::Forbidden(why) => {
                tracing::info!(status = status.as_u16(), "refused: {why}");
                why.clone()
            }
            other => {
                tracing::error!("request failed: {other}");
                "internal error".to_owned()
            }
        };
        (status, Json(Envelope::error(status.as_u16(), text))).into_response()
    }
}
