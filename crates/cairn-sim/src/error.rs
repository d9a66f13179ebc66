//! The simulator's one error type.

use thiserror::Error;

/// Why the simulator could not start, enrol or serve.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// Making a key or certificate in software failed.
    #[error("software key or certificate: {0}")]
    Keys(String),
    /// A structure from cairn-core could not be built or parsed.
    #[error("{what}: {source}")]
    Parse {
        /// What was being built or read.
        what: &'static str,
        /// Why.
        #[source]
        source: cairn_core::ParseError,
    },
    /// The registrar refused or could not be reached.
    #[error("agent {uuid}: registrar {step}: {reason}")]
    Registrar {
        /// The simulated agent.
        uuid: String,
        /// Which request.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// The credential the registrar made could not be activated.
    #[error("agent {uuid}: credential activation: {reason}")]
    Activation {
        /// The simulated agent.
        uuid: String,
        /// Which check failed.
        reason: String,
    },
    /// TLS set-up.
    #[error("TLS: {0}")]
    Tls(String),
    /// A socket or file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl SimError {
    pub(crate) fn keys(e: impl std::fmt::Display) -> SimError {
        SimError::Keys(e.to_string())
    }
}
