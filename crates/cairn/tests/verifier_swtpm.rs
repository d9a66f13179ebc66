//! The verifier on real parts: `cairn registrar`, `cairn verifier` and `cairn agent` as real
//! processes on real software TPMs, nodes added with `cairn node add`.
//!
//! - The demo's story (`cairn demo --once --json`): three agents attested; one measures an
//!   executable nobody allowed; it fails at its next round naming the entry; the webhook receives a
//!   revocation whose signature verifies and which names the node; the other agents ran their
//!   action; the other nodes stay attested.
//! - `kill -9` of the verifier, then restart: every node is still there and attested again.
//! - An agent stopped → `unreachable` (never PASS) → started again → attested again.
//! - An old quote replayed by an impostor holding the agent's TLS key fails `nonce_mismatch`; a quote
//!   signed by another TPM's AK fails `bad_signature`; both are INVALID_QUOTE.
//!
//! Everything is asserted by states and round counts with generous timeouts, never by wall time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn cairn() -> Command {
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
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        Proc { child: cmd.spawn().unwrap() }
    }

    /// Reads stdout until a line starting with each of `prefixes` was seen; returns the first
    /// URL (`http://…` or `https://…`) of each such line.
    fn wait_urls(&mut self, prefixes: &[&str]) -> Vec<String> {
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

    fn kill9(&mut self) {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn demo_story_detects_tampering_and_revokes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cairn()
        .args(["demo", "--once", "--json", "--interval-ms", "500", "--state-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let json_start = stdout.find("\n{").expect("a JSON report");
    let json_end = stdout.rfind('}').unwrap();
    let report: Value = serde_json::from_str(&stdout[json_start..=json_end]).unwrap();
    assert_eq!(report["ok"], true);
    let victim = report["failed_node"].as_str().unwrap();
    assert!(report["reason"].as_str().unwrap().starts_with("ima_entry: IMA entry 40"), "{}", report["reason"]);
    assert!(report["reason"].as_str().unwrap().contains("/tmp/.x/cryptominer"));
    assert_eq!(report["revocation"]["agent_id"], victim);
    assert_eq!(report["revocation"]["signature_verified"], true);
    assert_eq!(report["actions_ran"].as_array().unwrap().len(), 2, "both other agents acted");
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let failed = n["agent_id"] == victim;
        assert_eq!(n["cairn_state"], if failed { "failed" } else { "attested" }, "{n}");
        assert_eq!(n["attestation_status"], if failed { "FAIL" } else { "PASS" });
    }
    eprintln!("detection {} ms at a {} ms quote interval", report["detection_ms"], report["interval_ms"]);
    assert!(stdout.contains("stopped cleanly"));
}

struct Fleet {
    dir: PathBuf,
    _registrar: Proc,
    registrar_http: String,
    registrar_tls: String,
    verifier: Option<Proc>,
    verifier_url: String,
}

impl Fleet {
    fn start(dir: &Path, ca: &SwtpmCa) -> Fleet {
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

    fn tls_dir(&self) -> PathBuf {
        self.dir.join("registrar/tls")
    }

    fn start_verifier(&mut self, port: u16) {
        let mut v = Proc::spawn({
            let mut c = cairn();
            c.args(["verifier", "--port", &port.to_string(), "--quote-interval-ms", "300", "--state-dir"])
                .arg(self.dir.join("verifier"))
                .arg("--tls-dir")
                .arg(self.tls_dir());
            c
        });
        self.verifier_url = v.wait_urls(&["cairn verifier: tenant API"]).remove(0);
        self.verifier = Some(v);
    }

    fn node(&self, args: &[&str]) -> (bool, String) {
        let out = cairn()
            .arg("node")
            .args(args)
            .args(["--verifier", &self.verifier_url, "--registrar", &self.registrar_tls, "--tls-dir"])
            .arg(self.tls_dir())
            .output()
            .unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    fn status(&self, uuid: &str) -> Value {
        let (ok, out) = self.node(&["status", uuid, "--json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    /// Waits until `uuid`'s status satisfies `done`.
    fn wait(&self, uuid: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
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

struct AgentNode {
    _swtpm: Swtpm,
    tcti: String,
    state: PathBuf,
    ima: PathBuf,
    port: u16,
    proc: Option<Proc>,
    uuid: String,
}

impl AgentNode {
    fn start(dir: &Path, ca: &SwtpmCa, registrar_http: &str) -> AgentNode {
        std::fs::create_dir_all(dir).unwrap();
        let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(ca), port: None }).unwrap();
        let ima = dir.join("ima");
        std::fs::write(&ima, b"").unwrap();
        let mut n = AgentNode {
            tcti: swtpm.tcti(),
            _swtpm: swtpm,
            state: dir.join("state"),
            ima,
            port: free_port(),
            proc: None,
            uuid: String::new(),
        };
        n.run(registrar_http);
        n
    }

    fn run(&mut self, registrar_http: &str) {
        let mut p = Proc::spawn({
            let mut c = cairn();
            c.args(["agent", "--tcti", &self.tcti, "--listen", &format!("127.0.0.1:{}", self.port), "--registrar", registrar_http])
                .arg("--state-dir")
                .arg(&self.state)
                .arg("--ima-log")
                .arg(&self.ima)
                .args(["--uefi-log", "/nonexistent"]);
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

fn count(s: &Value) -> u64 {
    s["attestation_count"].as_u64().unwrap()
}

#[test]
fn verifier_survives_kill_9_marks_unreachable_agents_and_refuses_replayed_and_foreign_quotes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verifier-ca")).unwrap();
    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let mut a = AgentNode::start(&dir.join("a"), &ca, &http);
    let b = AgentNode::start(&dir.join("b"), &ca, &http);
    let verifier_port = free_port();
    fleet.start_verifier(verifier_port);
    for n in [&a, &b] {
        let (ok, out) = fleet.node(&["add", &n.uuid]);
        assert!(ok, "{out}");
    }
    let (ok, out) = fleet.node(&["add", &a.uuid]);
    assert!(!ok && out.contains("already added"), "a second add is refused: {out}");
    for n in [&a, &b] {
        fleet.wait(&n.uuid, "attested twice", |s| s["cairn_state"] == "attested" && count(s) >= 2);
    }

    // kill -9 the verifier mid-flight; restart it: the nodes are there and attested again at once.
    let before: Vec<u64> = [&a, &b].iter().map(|n| count(&fleet.status(&n.uuid))).collect();
    fleet.verifier.as_mut().unwrap().kill9();
    fleet.start_verifier(verifier_port);
    let (ok, out) = fleet.node(&["list", "--json"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "both nodes survived kill -9: {listed}");
    for (n, c) in [&a, &b].iter().zip(&before) {
        fleet.wait(&n.uuid, "attested after the restart", |s| s["cairn_state"] == "attested" && count(s) > *c);
    }

    // An agent that stops answering is unreachable, never PASS; back, it is attested again.
    a.proc.as_mut().unwrap().kill9();
    let s = fleet.wait(&a.uuid, "unreachable", |s| s["cairn_state"] == "unreachable");
    assert_eq!(s["attestation_status"], "FAIL");
    assert_eq!(s["failures"][0]["check"], "unreachable");
    let at_loss = count(&s);
    let s_b = fleet.status(&b.uuid);
    assert_eq!(s_b["cairn_state"], "attested", "the other node is not affected");
    a.run(&http);
    fleet.wait(&a.uuid, "attested again", |s| s["cairn_state"] == "attested" && count(s) > at_loss);

    // An old quote of A replayed by an impostor holding A's TLS key: refused, nonce_mismatch.
    let old = capture_quote(&a, "anoldnonce");
    let impostor_port = free_port();
    let _impostor = Impostor::start(&a.state, impostor_port, old);
    let registrar_a = registrar_record(&fleet, &a.uuid);
    let replay = serde_json::json!({
        "cloudagent_ip": "127.0.0.1", "cloudagent_port": impostor_port,
        "ak_tpm": registrar_a["aik_tpm"], "mtls_cert": registrar_a["mtls_cert"],
    });
    tenant_post(&fleet, &format!("{}/v2.5/agents/replayed-a", fleet.verifier_url), &replay);
    let s = fleet.wait("replayed-a", "failed", |s| s["cairn_state"] == "failed");
    assert_eq!(s["operational_state"], 9, "INVALID_QUOTE: {s}");
    assert_eq!(s["failures"][0]["check"], "nonce_mismatch", "{s}");
    fleet.wait(&a.uuid, "still attested", |s| s["cairn_state"] == "attested");

    // A node whose quotes are signed by another TPM's AK: refused, naming the check.
    let (ok, out) = fleet.node(&["delete", &b.uuid]);
    assert!(ok, "{out}");
    let registrar_b = registrar_record(&fleet, &b.uuid);
    let forged = serde_json::json!({
        "cloudagent_ip": "127.0.0.1", "cloudagent_port": b.port,
        "ak_tpm": registrar_a["aik_tpm"], "mtls_cert": registrar_b["mtls_cert"],
    });
    tenant_post(&fleet, &format!("{}/v2.5/agents/{}", fleet.verifier_url, b.uuid), &forged);
    let s = fleet.wait(&b.uuid, "failed", |s| s["cairn_state"] == "failed");
    assert_eq!(s["operational_state"], 9, "INVALID_QUOTE: {s}");
    assert_eq!(s["failures"][0]["check"], "bad_signature", "{s}");
}

/// The tenant's HTTPS client, with the local CA's client certificate.
fn tenant(fleet: &Fleet) -> reqwest::blocking::Client {
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

fn registrar_record(fleet: &Fleet, uuid: &str) -> Value {
    let v: Value = tenant(fleet).get(format!("{}/v2.5/agents/{uuid}", fleet.registrar_tls)).send().unwrap().json().unwrap();
    v["results"].clone()
}

fn tenant_post(fleet: &Fleet, url: &str, body: &Value) {
    let r = tenant(fleet).post(url).json(body).send().unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.text().unwrap());
}

/// A `quotes/integrity` reply of agent `a` for `nonce` (full IMA list, with the NK).
fn capture_quote(a: &AgentNode, nonce: &str) -> Value {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(a.state.join("mtls.crt")).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::blocking::Client::builder().use_preconfigured_tls(config).build().unwrap();
    let url = format!("https://127.0.0.1:{}/v2.5/quotes/integrity?nonce={nonce}&mask=0x400&partial=0&ima_ml_entry=0", a.port);
    let v: Value = http.get(url).send().unwrap().json().unwrap();
    assert_eq!(v["code"], 200, "{v}");
    v
}

/// An HTTPS server with agent A's certificate and key that answers every request with `reply`.
struct Impostor {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Impostor {
    fn start(state: &Path, port: u16, reply: Value) -> Impostor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = vec![CertificateDer::from_pem_file(state.join("mtls.crt")).unwrap()];
        let key = PrivateKeyDer::from_pem_file(state.join("mtls.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
            let app = axum::Router::new().fallback(move || {
                let reply = reply.clone();
                async move { axum::Json(reply) }
            });
            let (_tx, rx) = tokio::sync::watch::channel(false);
            let _ = cairn_registrar::serve::serve_tls(listener, acceptor, app, rx).await;
        });
        Impostor { runtime: Some(runtime) }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// Unmounts an agent's payload tmpfs (made when a payload arrived) before its directory goes.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).stderr(Stdio::null()).status();
    }
}

#[test]
fn a_payload_reaches_an_attested_node_and_never_a_failing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verifier-ca")).unwrap();
    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let good = AgentNode::start(&dir.join("good"), &ca, &http);
    let bad = AgentNode::start(&dir.join("bad"), &ca, &http);
    let _unmount = (Unmount(good.state.join("secure")), Unmount(bad.state.join("secure")));
    fleet.start_verifier(free_port());
    let secret: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let payload = dir.join("disk-key.bin");
    std::fs::write(&payload, &secret).unwrap();

    // The attested node: identity quote checked, U sent, V released after its first pass.
    let key = dir.join("good.key");
    let (ok, out) = fleet.node(&["add", &good.uuid, "--payload", payload.to_str().unwrap(), "--save-key", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("payload released"), "{out}");
    eprintln!("key release: {}", out.lines().find(|l| l.contains("payload released")).unwrap_or_default());
    let delivered = std::fs::read(good.state.join("secure/payload")).unwrap();
    assert_eq!(delivered, secret, "the payload arrives byte-identical");
    let (ok, out) = fleet.node(&["verify-key", &good.uuid, "--key-file", key.to_str().unwrap()]);
    assert!(ok && out.contains("holds the bootstrap key"), "{out}");
    let history = tenant(&fleet)
        .get(format!("{}/cairn/v1/nodes/{}/history", fleet.verifier_url, good.uuid))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert!(history["results"].as_array().unwrap().iter().any(|e| e["kind"] == "key_released"), "{history}");

    // A node whose first quote fails its PCR policy: U arrives (the identity quote is fine), V never does.
    let policy = format!("{{\"15\": [\"{}\"], \"mask\": \"0x8000\"}}", "ff".repeat(32));
    let bad_key = dir.join("bad.key");
    let (ok, out) = fleet.node(&[
        "add", &bad.uuid, "--payload", payload.to_str().unwrap(), "--save-key", bad_key.to_str().unwrap(), "--no-wait",
        "--tpm-policy", &policy,
    ]);
    assert!(ok, "{out}");
    let s = fleet.wait(&bad.uuid, "failed", |s| s["cairn_state"] == "failed");
    assert_eq!(s["failures"][0]["check"], "pcr_policy", "{s}");
    // A failed node is not polled again, so no pass can release V later; it has not been released.
    let history = tenant(&fleet)
        .get(format!("{}/cairn/v1/nodes/{}/history", fleet.verifier_url, bad.uuid))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert!(!history["results"].as_array().unwrap().iter().any(|e| e["kind"] == "key_released"), "{history}");
    assert!(!bad.state.join("secure/payload").exists(), "a failing node received the payload");
    let (ok, out) = fleet.node(&["verify-key", &bad.uuid, "--key-file", bad_key.to_str().unwrap()]);
    assert!(!ok && out.contains("does not hold"), "{out}");
}
