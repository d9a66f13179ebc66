//! Test scaffolding: a real swtpm (with EK certificates) per test, an agent configuration on a
//! free loopback port, and an HTTPS client that pins the agent's self-signed certificate.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cairn_agent::{AgentConfig, RawConfig};
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// One local CA per test binary.
pub fn ca() -> &'static SwtpmCa {
    static CA: OnceLock<SwtpmCa> = OnceLock::new();
    CA.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy().into_owned();
        SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("swtpm-ca-{name}"))).unwrap()
    })
}

/// A swtpm with EK certificates and a scratch directory.
pub struct Node {
    pub swtpm: Swtpm,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let opts = SwtpmOptions { with_ek_certs: Some(ca()), port: None };
        let swtpm = Swtpm::start(&dir.path().join("tpm"), opts).unwrap();
        Node { swtpm, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An agent configuration: this TPM, state in `state`, logs in the scratch dir, no registrar.
    pub fn config(&self) -> AgentConfig {
        RawConfig {
            tcti: Some(self.swtpm.tcti()),
            state_dir: Some(self.path("state")),
            listen: Some("127.0.0.1:0".into()),
            register: Some(false),
            ima_log: Some(self.path("ima.ascii")),
            uefi_log: Some(self.path("uefi.bin")),
            ..RawConfig::default()
        }
        .validate()
        .unwrap()
    }
}

/// An HTTPS client trusting exactly `cert_pem` (the agent's self-signed certificate), presenting
/// no client certificate.
pub fn client(cert_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
}

/// An HTTPS client trusting exactly `cert_pem` and presenting `client_cert_pem` with its key.
pub fn mtls_client(cert_pem: &str, client_cert_pem: &str, client_key_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(client_cert_pem.as_bytes()).map(|c| c.unwrap()).collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
}

/// A CA (`ca.crt`) and a client certificate it issued (`client.crt`, `client.key`) in `dir`, as a
/// verifier would present; returns (client certificate PEM, client key PEM).
pub fn client_ca(dir: &Path) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test verifier CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    std::fs::write(dir.join("ca.crt"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "test verifier");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, &issuer).unwrap().pem();
    std::fs::write(dir.join("client.crt"), &cert).unwrap();
    std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    (cert, key.serialize_pem())
}

/// GET and parse the envelope.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}
