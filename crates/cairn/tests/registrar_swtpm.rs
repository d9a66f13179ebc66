//! `cairn registrar` as a real process, with real TPMs (swtpm) playing agents through cairn-tpm:
//! EK, EK certificate and AK are read from the TPM, the registrar's credential blob is activated
//! by the TPM (and once by tpm2-tools' `tpm2_activatecredential`), and the auth_tag is computed
//! from what the TPM recovered. Refusals (unknown CA, EK/certificate mismatch, wrong auth_tag,
//! AK swap, admin without a client certificate) and persistence across restarts are checked on
//! the same process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use cairn_core::credential::{keylime_auth_tag, MadeCredential};
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use cairn_tpm::{Ak, AkAlg, AkSpec, Ek, EkKind, Tpm};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A swtpm-localca CA under cargo's per-target temp dir (reused between runs).
fn ca(name: &str) -> SwtpmCa {
    SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("registrar-{name}"))).unwrap()
}

/// A TPM with EK certificates from `ca`, and what an agent reads from it.
struct Node {
    swtpm: Swtpm,
    _dir: tempfile::TempDir,
    ek: Ek,
    ek_cert: Vec<u8>,
    ak: Ak,
}

impl Node {
    fn start(ca: &SwtpmCa) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let swtpm = Swtpm::start(&dir.path().join("state"), SwtpmOptions { with_ek_certs: Some(ca), port: None }).unwrap();
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        let ek = tpm.ek(EkKind::Rsa2048).unwrap();
        let ek_cert = tpm.ek_certificate(EkKind::Rsa2048).unwrap().expect("swtpm_setup wrote an EK certificate");
        let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
        drop(tpm);
        Node { swtpm, _dir: dir, ek, ek_cert, ak }
    }

    fn body(&self) -> Value {
        json!({"ekcert": b64(&self.ek_cert), "ek_tpm": b64(&self.ek.public), "aik_tpm": b64(&self.ak.public),
               "mtls_cert": null, "ip": "127.0.0.1", "port": 9002})
    }

    /// TPM2_ActivateCredential through cairn-tpm.
    fn activate(&self, blob: &[u8]) -> Vec<u8> {
        let made = MadeCredential::from_tpm2_tools(blob).unwrap();
        let mut tpm = Tpm::open(&self.swtpm.tcti()).unwrap();
        tpm.activate_credential(&self.ak, &self.ek, &made.id_object, &made.encrypted_secret).unwrap()
    }

    /// TPM2_ActivateCredential through tpm2-tools, from the blob file as the registrar sent it.
    fn activate_with_tpm2_tools(&self, blob: &[u8], scratch: &Path) -> Vec<u8> {
        let (blob_file, session, out) = (scratch.join("cred.blob"), scratch.join("session.ctx"), scratch.join("secret"));
        std::fs::write(&blob_file, blob).unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        self.tool("tpm2_startauthsession", &["--policy-session", "-S", &s(&session)]);
        self.tool("tpm2_policysecret", &["-S", &s(&session), "-c", "e"]);
        let (ak, ek) = (format!("{:#x}", self.ak.handle), format!("{:#x}", self.ek.persistent.unwrap()));
        let auth = format!("session:{}", s(&session));
        self.tool("tpm2_activatecredential", &["-c", &ak, "-C", &ek, "-i", &s(&blob_file), "-o", &s(&out), "-P", &auth]);
        self.tool("tpm2_flushcontext", &[&s(&session)]);
        std::fs::read(out).unwrap()
    }

    fn tool(&self, program: &str, args: &[&str]) {
        let out = Command::new(program).args(args).env("TPM2TOOLS_TCTI", self.swtpm.tcti()).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A running `cairn registrar` and its addresses, read from its stdout.
struct Registrar {
    child: Child,
    http: String,
    tls: String,
}

impl Registrar {
    fn start(state: &Path, trust: &Path) -> Registrar {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(state.join("registrar.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["registrar", "--ip", "127.0.0.1", "--port", "0", "--tls-port", "0"])
            .arg("--state-dir")
            .arg(state)
            .arg("--trust-dir")
            .arg(trust)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut http, mut tls) = (None, None);
        while http.is_none() || tls.is_none() {
            let line = lines.next().unwrap_or_else(|| panic!("registrar exited: {}", log(state))).unwrap();
            if let Some(rest) = line.strip_prefix("cairn registrar: registration port ") {
                http = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("cairn registrar: TLS port ") {
                tls = Some(rest.split_whitespace().next().unwrap().to_owned());
            }
        }
        // Keep draining stdout so the registrar never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Registrar { child, http: http.unwrap(), tls: tls.unwrap() }
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "registrar did not stop on SIG{sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(state: &Path) -> String {
    std::fs::read_to_string(state.join("registrar.log")).unwrap_or_default()
}

fn plain_client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// An mTLS client: trusts the registrar's local CA, and presents its client certificate when
/// `with_cert`.
fn tls_client(state: &Path, with_cert: bool) -> Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = state.join("tls");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(tls.join("ca-cert.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_root_certificates(roots);
    let config = if with_cert {
        let chain: Vec<_> = CertificateDer::pem_file_iter(tls.join("client-cert.pem")).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(tls.join("client-key.pem")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Client::builder().use_preconfigured_tls(config).timeout(Duration::from_secs(30)).build().unwrap()
}

fn send(client: &Client, method: reqwest::Method, url: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    (status, resp.json().unwrap_or(Value::Null))
}

fn register(c: &Client, r: &Registrar, id: &str, body: &Value) -> (StatusCode, Value) {
    send(c, reqwest::Method::POST, &format!("{}/v2.5/agents/{id}", r.http), Some(body))
}

fn activate(c: &Client, r: &Registrar, id: &str, tag: &str) -> (StatusCode, Value) {
    send(c, reqwest::Method::PUT, &format!("{}/v2.5/agents/{id}/activate", r.http), Some(&json!({"auth_tag": tag})))
}

fn admin_get(c: &Client, r: &Registrar, path: &str) -> (StatusCode, Value) {
    send(c, reqwest::Method::GET, &format!("{}/v2.5/{path}", r.tls), None)
}

fn reason(v: &Value) -> &str {
    v["status"].as_str().unwrap_or_default()
}

#[test]
fn agents_on_swtpm_enrol_end_to_end_and_refusals_hold_across_restarts() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let trusted = ca("trusted-ca");
    let unknown = ca("unknown-ca");
    let work = tempfile::tempdir().unwrap();
    let (state, trust) = (work.path().join("state"), work.path().join("trust"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(trusted.root_pem(), trust.join("root.pem")).unwrap();
    std::fs::copy(trusted.issuer_pem(), trust.join("issuer.pem")).unwrap();

    // Three agents' TPMs and an outsider, one after the other: a process spawned while another
    // thread holds a TPM connection would inherit that socket (libtss2 does not set CLOEXEC).
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&trusted)).collect();
    let outsider = Node::start(&unknown);

    let mut reg = Registrar::start(&state, &trust);
    let http = plain_client();
    let admin = tls_client(&state, true);
    let ids: Vec<String> = (0..3).map(|i| format!("0000000{i}-aaaa-4bbb-8ccc-dddddddddddd")).collect();

    for (i, (node, id)) in nodes.iter().zip(&ids).enumerate() {
        let (st, v) = register(&http, &reg, id, &node.body());
        assert_eq!(st, StatusCode::OK, "{v} {}", log(&state));
        let blob = unb64(v["results"]["blob"].as_str().unwrap());
        let secret = if i == 2 { node.activate_with_tpm2_tools(&blob, work.path()) } else { node.activate(&blob) };
        let (st, v) = activate(&http, &reg, id, &keylime_auth_tag(&secret, id));
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = admin_get(&admin, &reg, "agents/");
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["results"]["uuids"], json!(ids));
    let (_, v) = admin_get(&admin, &reg, &format!("agents/{}", ids[0]));
    assert_eq!(v["results"]["aik_tpm"], b64(&nodes[0].ak.public));
    assert_eq!(v["results"]["ekcert"], b64(&nodes[0].ek_cert));
    assert_eq!(v["results"]["regcount"], 1);

    // An EK certificate from a CA the registrar does not trust.
    let (st, v) = register(&http, &reg, "outsider", &outsider.body());
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(reason(&v).contains("not chained to a trust anchor") && reason(&v).contains("swtpm-localca"), "{v}");

    // ek_tpm of one TPM with the EK certificate of another.
    let mut body = nodes[0].body();
    body["ek_tpm"] = json!(b64(&nodes[1].ek.public));
    let (st, v) = register(&http, &reg, "mismatch", &body);
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(reason(&v).contains("the TPM's EK is"), "{v}");

    // A wrong auth_tag removes the registration.
    let (st, _) = register(&http, &reg, "wrong-tag", &nodes[0].body());
    assert_eq!(st, StatusCode::OK);
    let (st, v) = activate(&http, &reg, "wrong-tag", &keylime_auth_tag(b"not the secret", "wrong-tag"));
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(admin_get(&admin, &reg, "agents/wrong-tag").0, StatusCode::NOT_FOUND);

    // Swapping the AK on re-registration is forbidden; the same identity may re-register.
    let other_ak = {
        let mut tpm = Tpm::open(&nodes[0].swtpm.tcti()).unwrap();
        tpm.load_or_create_ak(AkSpec::new(AkAlg::Rsa2048Rsassa)).unwrap()
    };
    let mut body = nodes[0].body();
    body["aik_tpm"] = json!(b64(&other_ak.public));
    let (st, v) = register(&http, &reg, &ids[0], &body);
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(reason(&v).contains("different AK"), "{v}");
    let (st, v) = register(&http, &reg, &ids[0], &nodes[0].body());
    assert_eq!(st, StatusCode::OK, "{v}");
    let secret = nodes[0].activate(&unb64(v["results"]["blob"].as_str().unwrap()));
    assert_eq!(activate(&http, &reg, &ids[0], &keylime_auth_tag(&secret, &ids[0])).0, StatusCode::OK);

    // Admin endpoints: no client certificate, no answer; the plain port refuses them.
    let anonymous = tls_client(&state, false);
    assert!(anonymous.get(format!("{}/v2.5/agents/", reg.tls)).send().is_err(), "TLS port answered a client without a certificate");
    let (st, _) = send(&http, reqwest::Method::GET, &format!("{}/v2.5/agents/", reg.http), None);
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Graceful stop, restart: enrolments are kept. Then a hard kill, and again.
    let st = reg.signal("TERM");
    assert!(st.success(), "exit status after SIGTERM: {st}");
    drop(reg);
    for sig in ["KILL", ""] {
        let mut again = Registrar::start(&state, &trust);
        let admin = tls_client(&state, true);
        for id in &ids {
            let (st, v) = admin_get(&admin, &again, &format!("agents/{id}"));
            assert_eq!(st, StatusCode::OK, "{id} after restart: {v}");
        }
        assert_eq!(admin_get(&admin, &again, &format!("agents/{}", ids[0])).1["results"]["regcount"], 2);
        if !sig.is_empty() {
            again.signal(sig);
        }
    }
    drop(outsider);
}

/// Our agent at our registrar, both as real processes on a real TPM: `cairn agent` registers,
/// activates the credential the registrar made, and the registrar's admin API then holds exactly
/// the AK, EK and mTLS certificate the agent keeps in its state directory.
#[test]
fn cairn_agent_enrols_at_cairn_registrar() {
    let trusted = ca("trusted-ca");
    let work = tempfile::tempdir().unwrap();
    let (state, trust, agent_state) = (work.path().join("state"), work.path().join("trust"), work.path().join("agent"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(trusted.root_pem(), trust.join("root.pem")).unwrap();
    std::fs::copy(trusted.issuer_pem(), trust.join("issuer.pem")).unwrap();
    let registrar = Registrar::start(&state, &trust);
    let tpm_dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(&tpm_dir.path().join("tpm"), SwtpmOptions { with_ek_certs: Some(&trusted), port: None }).unwrap();

    let mut agent = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["agent", "--tcti", &swtpm.tcti(), "--listen", "127.0.0.1:0", "--registrar", &registrar.http])
        .arg("--state-dir")
        .arg(&agent_state)
        .args(["--ima-log", "/nonexistent", "--uefi-log", "/nonexistent"])
        .env_remove("CAIRN_AGENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(agent.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let up = line.starts_with("cairn agent ");
    let uuid = line.split_whitespace().nth(2).unwrap_or_default().to_owned();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(up, "cairn agent did not enrol ({line:?}); registrar log:\n{}", log(&state));

    let (status, got) = admin_get(&tls_client(&state, true), &registrar, &format!("agents/{uuid}"));
    assert_eq!(status, StatusCode::OK, "{got}");
    let rec = &got["results"];
    assert_eq!(unb64(rec["aik_tpm"].as_str().unwrap()), std::fs::read(agent_state.join("ak.pub")).unwrap());
    assert_eq!(unb64(rec["ek_tpm"].as_str().unwrap()), std::fs::read(agent_state.join("ek.pub")).unwrap());
    assert_eq!(rec["mtls_cert"].as_str().unwrap().trim(), std::fs::read_to_string(agent_state.join("mtls.crt")).unwrap().trim());
}
