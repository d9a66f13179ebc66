//! TLS for the admin port: the server configuration (client certificates required) and a local
//! CA for operators who have none.
//!
//! The TLS port answers only clients whose certificate chains to `client_ca`; the handshake
//! fails otherwise, before any HTTP is read. rustls runs on the aws-lc-rs provider. When an
//! operator configures no TLS files, [`ensure_local_ca`] creates — once — a CA, a server
//! certificate (for `localhost`, 127.0.0.1, ::1 and the bind address) and a client certificate
//! for the tenant/verifier, in one directory; private keys are written mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// TLS material could not be created or loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("creating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client CA list is unusable.
    #[error("client CA: {0}")]
    ClientCa(String),
}

/// The files the TLS port needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub server_cert: PathBuf,
    /// Server private key (PEM).
    pub server_key: PathBuf,
    /// CA certificate(s) client certificates must chain to (PEM).
    pub client_ca: PathBuf,
}

/// What [`ensure_local_ca`] leaves in its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCa {
    /// The CA certificate: trust it on clients, and it is the client CA here.
    pub ca_cert: PathBuf,
    /// The server's files.
    pub server: TlsFiles,
    /// Client certificate for tenants/verifiers.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// Whether this call created the files (false: they existed).
    pub created: bool,
}

/// Creates a local CA with server and client certificates in `dir` unless they exist.
/// `hosts` are extra names or addresses the server certificate is valid for.
pub fn ensure_local_ca(dir: &Path, hosts: &[String]) -> Result<LocalCa, TlsError> {
    let p = |name: &str| dir.join(name);
    let mut ca = LocalCa {
        ca_cert: p("ca-cert.pem"),
        server: TlsFiles { server_cert: p("server-cert.pem"), server_key: p("server-key.pem"), client_ca: p("ca-cert.pem") },
        client_cert: p("client-cert.pem"),
        client_key: p("client-key.pem"),
        created: false,
    };
    let all = [&ca.ca_cert, &ca.server.server_cert, &ca.server.server_key, &ca.client_cert, &ca.client_key];
    if all.iter().all(|f| f.exists()) {
        return Ok(ca);
    }
    fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.to_path_buf(), source })?;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "Cairn local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params);
    let ca_cert = params.self_signed(&ca_key)?;
    let issuer = Issuer::new(params, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(hosts.iter().filter(|h| !names.contains(h)).cloned().collect::<Vec<_>>());
    let (server_cert, server_key) = leaf(&issuer, "cairn-registrar", names, ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_cert, client_key) = leaf(&issuer, "cairn-client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)?;

    write(&ca.ca_cert, ca_cert.pem().as_bytes(), false)?;
    write(&ca.server.server_cert, server_cert.as_bytes(), false)?;
    write(&ca.server.server_key, server_key.as_bytes(), true)?;
    write(&ca.client_cert, client_cert.as_bytes(), false)?;
    write(&ca.client_key, client_key.as_bytes(), true)?;
    ca.created = true;
    Ok(ca)
}

fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
}

/// A certificate and key (both PEM) issued by `issuer`.
fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, names: Vec<String>, eku: ExtendedKeyUsagePurpose) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    validity(&mut params);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io { path: path.to_path_buf(), source };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    opts.open(path).and_then(|mut f| f.write_all(bytes)).map_err(io)
}

/// Certificates of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The rustls server configuration: server chain and key, client certificates required.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = load_certs(&files.server_cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key)
        .map_err(|e| TlsError::Pem { path: files.server_key.clone(), reason: e.to_string() })?;
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.client_ca)? {
        roots.add(ca).map_err(|e| TlsError::Pem { path: files.client_ca.clone(), reason: e.to_string() })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn local_ca_is_created_once_and_loads() {
        let d = tempfile::tempdir().unwrap();
        let ca = ensure_local_ca(d.path(), &["10.1.2.3".into()]).unwrap();
        assert!(ca.created);
        let before = fs::read(&ca.server.server_cert).unwrap();
        let again = ensure_local_ca(d.path(), &[]).unwrap();
        assert!(!again.created);
        assert_eq!(fs::read(&again.server.server_cert).unwrap(), before);
        server_config(&ca.server).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&ca.client_key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
