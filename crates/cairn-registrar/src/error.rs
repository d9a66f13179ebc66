//! The registrar's one error type and its one mapping to HTTP.
//!
//! Refusals of client input carry a message naming the field and the reason, which is returned
//! to the client in Keylime's envelope (`status`). Internal failures (store, crypto library) are
//! logged with their detail and answered with a bare 500: their text never reaches a client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_core::credential::CredentialError;
use cairn_core::ekcert::EkCertError;
use cairn_core::error::ParseError;
use cairn_core::vtpmca::{CaCertifyFailure, VmChainError};
use cairn_proto::Envelope;
use cairn_store::StoreError;
use thiserror::Error;

/// Why a registrar request failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegistrarError {
    /// The path's `vX.Y` is not a version this registrar serves.
    #[error("API version {0:?} is not supported (supported: 2.0 to 2.5)")]
    Version(String),
    /// The agent id in the path is malformed.
    #[error("agent id {0:?} is not 1-255 characters of letters, digits, '-', '_' or '.'")]
    AgentId(String),
    /// The body is not the JSON expected.
    #[error("malformed JSON body: {0}")]
    Json(String),
    /// The body exceeds the configured limit.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body could not be read.
    #[error("cannot read the request body: {0}")]
    Body(String),
    /// A field is not valid base64.
    #[error("{field} is not valid base64: {reason}")]
    Base64 {
        /// The field.
        field: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// A field decoded but its TPM/X.509 structure is malformed.
    #[error("{field} is malformed: {source}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// The parse error (field, offset).
        #[source]
        source: ParseError,
    },
    /// A key is well-formed but not acceptable for its role.
    #[error("{field} refused: {reason}")]
    KeyRefused {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The registration has no EK certificate and this registrar requires one.
    #[error("ekcert is missing: this registrar requires an EK certificate (accept_without_ek_cert is off)")]
    EkCertMissing,
    /// The EK certificate does not chain to a trusted root, has expired, or does not certify the EK.
    #[error("EK certificate refused: {0}")]
    EkCert(#[source] EkCertError),
    /// A host's vTPM CA evidence failed a check (named first in the message).
    #[error("cairn_vtpm_ca refused: {0}")]
    VtpmCa(#[source] CaCertifyFailure),
    /// A VM registered without an EK certificate.
    #[error("ekcert is missing: a VM (cairn_kind vm) must present the EK certificate its host's vTPM CA issued")]
    VmEkCertMissing,
    /// A VM's EK certificate is not issued by the vTPM CA of any enrolled host.
    #[error("EK certificate of VM {agent} is not issued by the vTPM CA of any enrolled host: {reason}")]
    VmNotIssued {
        /// The VM's agent id.
        agent: String,
        /// Why.
        reason: VmChainError,
    },
    /// The id is registered with another EK, EK certificate or AK.
    #[error("agent {agent} is already registered with a different {which}; delete it first")]
    IdentityConflict {
        /// The agent.
        agent: String,
        /// What differs ("EK", "EK certificate", "AK").
        which: &'static str,
    },
    /// No registration for this id (or none awaiting activation).
    #[error("agent {0} is not registered")]
    NotFound(String),
    /// There is no pending activation for this id.
    #[error("agent {0} has no pending activation: register first")]
    NoPendingActivation(String),
    /// The activation proof is wrong; a never-activated registration was removed.
    #[error("auth_tag for agent {agent} does not match{}", if *removed { ": registration removed" } else { ": pending re-registration dropped" })]
    WrongAuthTag {
        /// The agent.
        agent: String,
        /// Whether the registration was removed (it was never activated).
        removed: bool,
    },
    /// The agent exists but has not activated yet.
    #[error("agent {0} is registered but not activated")]
    NotActive(String),
    /// Admin operation on the unauthenticated port.
    #[error("this endpoint is served only on the TLS port, to clients with a certificate")]
    AdminOnTls,
    /// MakeCredential failed on a key that passed the checks.
    #[error("cannot protect a credential to this EK: {0}")]
    Credential(#[source] CredentialError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl RegistrarError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        use RegistrarError as E;
        match self {
            E::Version(_) | E::AgentId(_) | E::Json(_) | E::Body(_) | E::Base64 { .. } | E::Malformed { .. } => StatusCode::BAD_REQUEST,
            E::KeyRefused { .. } | E::EkCertMissing | E::VtpmCa(_) | E::VmEkCertMissing => StatusCode::BAD_REQUEST,
            E::VmNotIssued { .. } => StatusCode::FORBIDDEN,
            E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::EkCert(_) | E::IdentityConflict { .. } | E::AdminOnTls => StatusCode::FORBIDDEN,
            E::WrongAuthTag { .. } => StatusCode::UNAUTHORIZED,
            E::NotFound(_) | E::NotActive(_) | E::NoPendingActivation(_) => StatusCode::NOT_FOUND,
            E::Credential(CredentialError::Malformed(_) | CredentialError::NotAStorageKey | CredentialError::UnsupportedEk { .. })
            | E::Credential(CredentialError::UnsupportedHash(_)) => StatusCode::BAD_REQUEST,
            E::Credential(_) | E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for RegistrarError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "internal error");
            "internal error (see the registrar's log)".to_owned()
        } else {
            tracing::info!(status = status.as_u16(), reason = %self, "request refused");
            self.to_string()
        };
        (status, Json(Envelope::error(status.as_u16(), message))).into_response()
    }
}
