//! Keylime interop: Keylime 7.14.3's own registrar (Python, from PyPI, in a venv built by
//! `scripts/keylime-venv.sh`) enrols `cairn agent` — a real process on a real swtpm with an EK
//! certificate — end to end, credential activation included; its admin API (TLS, with an admin
//! client certificate) then lists the agent with the EK and AK the agent wrote to its state
//! directory. A restarted agent re-registers the same identity and Keylime accepts it.
//!
//! Run alone with `make test-keylime-interop`. Outside CI the test skips (saying so) when the
//! venv cannot be built; under `CI=true` that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};

const KEYLIME_VERSION: &str = "7.14.3";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The venv's directory, or `None` (skip) outside CI when it cannot be built.
fn keylime_venv() -> Option<PathBuf> {
    let venv = repo_root().join("target/keylime-venv");
    let out = Command::new(repo_root().join("scripts/keylime-venv.sh")).arg(&venv).output().unwrap();
    if out.status.success() {
        return Some(venv);
    }
    let why = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!under_ci(), "CI=true and the Keylime {KEYLIME_VERSION} venv cannot be built: {why}");
    eprintln!("skipped: the Keylime {KEYLIME_VERSION} venv cannot be built (outside CI): {why}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process started in its own process group, killed (group and all, by id) on drop.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &'static str) -> Proc {
        cmd.process_group(0);
        Proc { child: cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}")), what }
    }

    fn stop(&mut self) {
        let pgid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.wait();
        eprintln!("{} had to be killed", self.what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Admin TLS material for the registrar: a CA, the registrar's server certificate and an admin
/// client certificate (both issued by the CA), written to `dir`.
fn write_tls(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "Cairn interop test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    for (name, eku) in [("server", ExtendedKeyUsagePurpose::ServerAuth), ("client", ExtendedKeyUsagePurpose::ClientAuth)] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![eku];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// Keylime's registrar, tenant (for `tpm_cert_store`) and logging configuration files.
fn write_keylime_config(dir: &Path, port: u16, tls_port: u16, cert_store: &Path) {
    let tls = dir.join("tls");
    let registrar = format!(
        "[registrar]\nversion = 2.4\nip = 127.0.0.1\nport = {port}\ntls_port = {tls_port}\ntls_dir = {tls}\n\
         server_key = server.key\nserver_key_password =\nserver_cert = server.crt\ntrusted_client_ca = [\"ca.crt\"]\n\
         database_url = sqlite\ndatabase_pool_sz_ovfl = 5,10\nauto_migrate_db = True\ndurable_attestation_import =\n\
         persistent_store_url =\ntransparency_log_url =\ntime_stamp_authority_url =\ntime_stamp_authority_certs_path =\n\
         persistent_store_format = json\npersistent_store_encoding =\ntransparency_log_sign_algo = sha256\n\
         signed_attributes =\ntpm_identity = default\nmalformed_cert_action = warn\nmax_upload_size = 104857600\n",
        tls = tls.display()
    );
    std::fs::write(dir.join("registrar.conf"), registrar).unwrap();
    let tenant = format!("[tenant]\nversion = 2.4\ntpm_cert_store = {}\nrequire_ek_cert = True\n", cert_store.display());
    std::fs::write(dir.join("tenant.conf"), tenant).unwrap();
    let logging = "[loggers]\nkeys = root,keylime\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = f\n\n\
                   [formatter_f]\nformat = %(asctime)s %(name)s %(levelname)s %(message)s\n\n\
                   [logger_root]\nlevel = INFO\nhandlers = console\n\n\
                   [handler_console]\nclass = StreamHandler\nlevel = INFO\nformatter = f\nargs = (sys.stderr,)\n\n\
                   [logger_keylime]\nlevel = INFO\nqualname = keylime\nhandlers =\n";
    std::fs::write(dir.join("logging.conf"), logging).unwrap();
}

fn start_registrar(venv: &Path, dir: &Path, port: u16) -> Proc {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let log = std::fs::File::create(dir.join("registrar.log")).unwrap();
    let mut cmd = Command::new(venv.join("bin/keylime_registrar"));
    cmd.current_dir(dir)
        .env("KEYLIME_DIR", &work)
        .env("KEYLIME_REGISTRAR_CONFIG", dir.join("registrar.conf"))
        .env("KEYLIME_TENANT_CONFIG", dir.join("tenant.conf"))
        .env("KEYLIME_LOGGING_CONFIG", dir.join("logging.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut proc = Proc::spawn(cmd, "keylime_registrar");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("keylime_registrar exited ({status}): {}", registrar_log(dir));
        }
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if up {
            return proc;
        }
        assert!(Instant::now() < deadline, "keylime_registrar did not listen within 60 s: {}", registrar_log(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn registrar_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("registrar.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(40).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Starts `cairn agent` and waits for its "listening" line (printed once registered).
fn start_agent(tcti: &str, state: &Path, registrar_port: u16, dir: &Path) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["agent", "--tcti", tcti, "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .arg("--registrar")
        .arg(format!("http://127.0.0.1:{registrar_port}"))
        .args(["--ima-log", "/nonexistent", "--uefi-log", "/nonexistent"])
        .env_remove("CAIRN_AGENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(cmd, "cairn agent");
    let stdout = proc.child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    if !line.starts_with("cairn agent ") {
        let mut err = String::new();
        let _ = proc.child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("cairn agent did not come up: {err}\nregistrar log:\n{}", registrar_log(dir));
    }
    let uuid = line.split_whitespace().nth(2).unwrap().to_owned();
    (proc, uuid)
}

/// The registrar's admin API, with the admin client certificate.
fn admin_client(tls: &Path) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(tls.join("ca.crt")).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_file(tls.join("client.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(tls.join("client.key")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    reqwest::Client::builder().use_preconfigured_tls(config).build().unwrap()
}

async fn admin_get(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status} {body}");
    body
}

#[test]
fn keylime_registrar_enrols_cairn_agent() {
    let Some(venv) = keylime_venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-keylime-ca")).unwrap();
    // Keylime's tpm_cert_store: the swtpm CA's root and intermediate.
    let store = dir.join("tpm_cert_store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(ca.root_pem(), store.join("swtpm-root.pem")).unwrap();
    std::fs::copy(ca.issuer_pem(), store.join("swtpm-issuer.pem")).unwrap();
    write_tls(&dir.join("tls"));
    let (port, tls_port) = (free_port(), free_port());
    write_keylime_config(dir, port, tls_port, &store);
    let _registrar = start_registrar(&venv, dir, port);

    let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None }).unwrap();
    let state = dir.join("agent-state");
    let (mut agent, uuid) = start_agent(&swtpm.tcti(), &state, port, dir);
    let ak_pub = B64.encode(std::fs::read(state.join("ak.pub")).unwrap());
    let ek_pub = B64.encode(std::fs::read(state.join("ek.pub")).unwrap());
    let ek_cert = {
        let mut tpm = cairn_tpm::Tpm::open(&swtpm.tcti()).unwrap();
        tpm.ek_certificate(cairn_tpm::EkKind::Rsa2048).unwrap().expect("swtpm_setup wrote an EK certificate")
    };

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = admin_client(&dir.join("tls"));
    let base = format!("https://127.0.0.1:{tls_port}/v2.4/agents");
    rt.block_on(async {
        let list = admin_get(&admin, &format!("{base}/")).await;
        let uuids = list["results"]["uuids"].as_array().unwrap();
        assert!(uuids.iter().any(|u| u == uuid.as_str()), "{list}");
        // Only an activated agent is shown: the credential activation succeeded.
        let got = admin_get(&admin, &format!("{base}/{uuid}")).await;
        let r = &got["results"];
        assert_eq!(r["aik_tpm"].as_str(), Some(ak_pub.as_str()), "the AK our agent reports");
        assert_eq!(r["ek_tpm"].as_str(), Some(ek_pub.as_str()), "the EK our agent reports");
        let registered_cert = B64.decode(r["ekcert"].as_str().unwrap()).unwrap();
        let parsed = cairn_core::ekcert::Certificate::from_der(&ek_cert).unwrap();
        assert_eq!(registered_cert, parsed.der(), "the EK certificate from NV");
        assert_eq!(r["ip"], "127.0.0.1");
        assert!(r["mtls_cert"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    });

    // A restarted agent presents the same identity; Keylime accepts the re-registration.
    agent.stop();
    let (mut again, uuid2) = start_agent(&swtpm.tcti(), &state, port, dir);
    assert_eq!(uuid2, uuid);
    rt.block_on(async {
        let got = admin_get(&admin, &format!("{base}/{uuid}")).await;
        assert_eq!(got["results"]["aik_tpm"].as_str(), Some(ak_pub.as_str()));
        assert!(got["results"]["regcount"].as_u64().unwrap() >= 1);
    });
    again.stop();
}
