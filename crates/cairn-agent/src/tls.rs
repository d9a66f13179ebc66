//! The agent's TLS server configuration (rustls with the aws-lc-rs provider).
//!
//! The server certificate is the agent's self-signed mTLS certificate; the verifier pins it
//! (it learns it from the registrar). Client certificates, as Keylime's verifier and tenant
//! present them, are checked in one of two modes:
//! - **CA** (`client_ca` set): a client must present a certificate chaining to that CA (what
//!   Keylime's agent does with `trusted_client_ca`); no certificate, no connection.
//! - **trust-all-with-logging** (no `client_ca`): any client is served; a presented certificate's
//!   SHA-256 fingerprint is logged, and its handshake signature is still checked (the client
//!   proves it holds the key). Meant for first set-up and tests — the API it guards reveals
//!   only quotes and public keys, which the verifier checks anyway.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use crate::error::AgentError;
use crate::keys::MtlsIdentity;

/// The aws-lc-rs provider (never ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration for `identity`, checking clients against `client_ca` if given.
pub fn server_config(identity: &MtlsIdentity, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, AgentError> {
    let tls = |what: &str, e: &dyn std::fmt::Display| AgentError::Tls(format!("{what}: {e}"));
    let certs = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls("agent certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| tls("agent key", &e))?;
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let pem = std::fs::read(path).map_err(AgentError::io(path))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.map_err(|e| tls("client CA", &e))?).map_err(|e| tls("client CA", &e))?;
            }
            if roots.is_empty() {
                return Err(AgentError::Tls(format!("{} holds no certificate", path.display())));
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| tls("client verifier", &e))?
        }
        None => Arc::new(LogAnyClient { provider: provider.clone() }),
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("protocol versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls("agent certificate", &e))?;
    Ok(Arc::new(config))
}

/// Accepts any client (certificate or not), logging the certificate's fingerprint.
#[derive(Debug)]
struct LogAnyClient {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for LogAnyClient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        let fp = cairn_core::HashAlg::Sha256.hash(end_entity.as_ref()).to_hex();
        tracing::info!(client_cert_sha256 = %fp, "client certificate accepted without a CA (no client_ca configured)");
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
