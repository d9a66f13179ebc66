//! The pieces of a Cairn deployment on real parts that several tests start: `cairn registrar`,
//! `cairn verifier` and `cairn agent` as real processes (each agent on its own swtpm), and the
//! tenant's `cairn node` calls. Include with `#[path = "common/fleet.rs"] mod fleet;`.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use serde_json::Value;

/// How long any wait in these tests may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// `cairn` with no `CAIRN_*` settings from the environment, logging warnings only.
pub fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CAIRN_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

/// A process in its own group; SIGKILLed with its group on drop unless already gone.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        Proc { child: cmd.spawn().unwrap() }
    }

    /// Reads stdout until a line starting with each of `prefixes` was seen; returns the first
    /// URL (`http://…` or `https://…`) of each such line.
    pub fn wait_urls(&mut self, prefixes: &[&str]) -> Vec<String> {
        let stdout = self.child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
        let mut seen = String::new();
        while found.iter().any(Option::is_none) {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("missing {prefixes:?}; stdout:\n{seen}\nstderr:\n{err}");
            }
            seen.push_str(&line);
            for (i, p) in prefixes.iter().enumerate() {
                if line.starts_with(p) {
                    found[i] = line.split_whitespace().find(|w| w.starts_with("http")).map(str::to_owned);
                }
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        found.into_iter().map(Option::unwrap_or_default).collect()
    }

    pub fn kill9(&mut self) {
        let pgid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// A TCP port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A registrar (with the swtpm CA in its trust store) and, once started, a verifier, sharing one
/// local CA directory.
pub struct Fleet {
    pub dir: PathBuf,
    _registrar: Proc,
    pub registrar_http: String,
    pub registrar_tls: String,
    pub verifier: Option<Proc>,
    pub verifier_url: String,
}

impl Fleet {
    pub fn start(dir: &Path, ca: &SwtpmCa) -> Fleet {
        let trust = dir.join("registrar/tpm_cert_store");
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(ca.root_pem(), trust.join("root.pem")).unwrap();
        std::fs::copy(ca.issuer_pem(), trust.join("issuer.pem")).unwrap();
        let mut registrar = Proc::spawn({
            let mut c = cairn();
            c.args(["registrar", "--port", "0", "--tls-port", "0", "--state-dir"]).arg(dir.join("registrar"));
            c
        });
        let urls = registrar.wait_urls(&["cairn registrar: registration port", "cairn registrar: TLS port"]);
        Fleet {
            dir: dir.to_path_buf(),
            _registrar: registrar,
            registrar_http: urls[0].clone(),
            registrar_tls: urls[1].clone(),
            verifier: None,
            verifier_url: String::new(),
        }
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("registrar/tls")
    }

    pub fn start_verifier(&mut self, port: u16) {
        self.start_verifier_every(port, 300);
    }

    /// A verifier attesting each node every `interval_ms`.
    pub fn start_verifier_every(&mut self, port: u16, interval_ms: u64) {
        self.start_verifier_with(port, interval_ms, &[]);
    }

    /// As [`Fleet::start_verifier_every`], with more `cairn verifier` arguments.
    pub fn start_verifier_with(&mut self, port: u16, interval_ms: u64, extra: &[String]) {
        let mut v = Proc::spawn({
            let mut c = cairn();
            c.args(["verifier", "--port", &port.to_string(), "--quote-interval-ms", &interval_ms.to_string(), "--state-dir"])
                .arg(self.dir.join("verifier"))
                .arg("--tls-dir")
                .arg(self.tls_dir())
                .args(extra);
            c
        });
        self.verifier_url = v.wait_urls(&["cairn verifier: tenant API"]).remove(0);
        self.verifier = Some(v);
    }

    pub fn node(&self, args: &[&str]) -> (bool, String) {
        let out = cairn()
            .arg("node")
            .args(args)
            .args(["--verifier", &self.verifier_url, "--registrar", &self.registrar_tls, "--tls-dir"])
            .arg(self.tls_dir())
            .output()
            .unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    pub fn status(&self, uuid: &str) -> Value {
        let (ok, out) = self.node(&["status", uuid, "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    /// Waits until `uuid`'s status satisfies `done`.
    pub fn wait(&self, uuid: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let s = self.status(uuid);
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {uuid} to be {what}: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A `cairn agent` on its own swtpm, enrolled at a registrar.
pub struct AgentNode {
    _swtpm: Swtpm,
    pub tcti: String,
    pub state: PathBuf,
    pub ima: PathBuf,
    pub port: u16,
    pub proc: Option<Proc>,
    pub uuid: String,
    /// More `cairn agent` arguments (e.g. host mode's).
    pub extra: Vec<String>,
}

impl AgentNode {
    pub fn start(dir: &Path, ca: &SwtpmCa, registrar_http: &str) -> AgentNode {
        AgentNode::start_with(dir, ca, registrar_http, &[])
    }

    /// As [`AgentNode::start`], with more `cairn agent` arguments.
    pub fn start_with(dir: &Path, ca: &SwtpmCa, registrar_http: &str, extra: &[String]) -> AgentNode {
        let mut n = AgentNode::tpm_only(dir, ca, extra);
        n.run(registrar_http);
        n
    }

    /// The node's swtpm (with EK certificates from `ca`) and files, without its agent: [`AgentNode::run`]
    /// starts it.
    pub fn tpm_only(dir: &Path, ca: &SwtpmCa, extra: &[String]) -> AgentNode {
        std::fs::create_dir_all(dir).unwrap();
        let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(ca), port: None }).unwrap();
        let ima = dir.join("ima");
        std::fs::write(&ima, b"").unwrap();
        AgentNode {
            tcti: swtpm.tcti(),
            _swtpm: swtpm,
            state: dir.join("state"),
            ima,
            port: free_port(),
            proc: None,
            uuid: String::new(),
            extra: extra.to_vec(),
        }
    }

    /// Appends ASCII IMA `lines` to the agent's log, then extends PCR 10 (SHA-1 and SHA-256 banks)
    /// as the kernel does, beside the running agent.
    pub fn measure(&self, lines: &[u8]) {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&self.ima).unwrap().write_all(lines).unwrap();
        let mut tpm = cairn_tpm::Tpm::open(&self.tcti).unwrap();
        let mut scratch = Vec::new();
        for e in cairn_core::ima::parse(lines).unwrap() {
            let data = e.template_data(&mut scratch).unwrap().to_vec();
            let sha1 = cairn_core::Digest::from_bytes(cairn_core::HashAlg::Sha1, e.template_hash.as_bytes()).unwrap();
            let pcr = cairn_core::pcr::PcrIndex::new(10).unwrap();
            tpm.pcr_extend(pcr, &[sha1, cairn_core::HashAlg::Sha256.hash(&data)]).unwrap();
        }
    }

    pub fn run(&mut self, registrar_http: &str) {
        let mut p = Proc::spawn({
            let mut c = cairn();
            c.args(["agent", "--tcti", &self.tcti, "--listen", &format!("127.0.0.1:{}", self.port), "--registrar", registrar_http])
                .arg("--state-dir")
                .arg(&self.state)
                .arg("--ima-log")
                .arg(&self.ima)
                .args(["--uefi-log", "/nonexistent"])
                .args(&self.extra);
            c
        });
        let stdout = p.child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if !line.starts_with("cairn agent ") {
            let mut err = String::new();
            let _ = p.child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("agent did not start: {line}{err}");
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        self.uuid = line.split_whitespace().nth(2).unwrap().to_owned();
        self.proc = Some(p);
    }
}

/// A node status's round count.
pub fn count(s: &Value) -> u64 {
    s["attestation_count"].as_u64().unwrap()
}

/// The tenant's HTTPS client, with the local CA's client certificate.
pub fn tenant(fleet: &Fleet) -> reqwest::blocking::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = fleet.tls_dir();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(tls.join("ca-cert.pem")).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_file(tls.join("client-cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(tls.join("client-key.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    reqwest::blocking::Client::builder().use_preconfigured_tls(config).build().unwrap()
}

/// Unmounts an agent's payload tmpfs (made when a payload arrived) before its directory goes.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).stderr(Stdio::null()).status();
    }
}
