//! The VM EK chain on real parts: VM EK → host vTPM CA → host TPM.
//!
//! A host swtpm (EK certificate from a vendor CA the registrar trusts) runs `cairn agent` with
//! `--vtpm-ca-dir`: it registers with its vTPM CA, certified by its AK (TPM2_Certify), and is
//! activated. `cairn vtpm create` makes vTPMs whose EK certificates that CA (a host TPM key)
//! signed; a `cairn agent --kind vm` on one, served by `vtpm start --tcp`, enrols and its record
//! names the host, which `cairn node add` then uses as the VM's host at the verifier. Refused, with the reason: a VM whose EK certificate comes from the vTPM CA of
//! another host TPM (never enrolled), the same vTPM registering as a host (a vTPM CA is never a
//! host's anchor), and any new VM of the host once the host is deleted from the registrar.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_tpm::swtpm::{free_port_pair, Swtpm, SwtpmCa, SwtpmOptions};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn vtpm(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).arg("vtpm").args(args).output().unwrap();
    assert!(out.status.success(), "cairn vtpm {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed (and reaped) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `cairn registrar`: registration URL, TLS (admin) URL.
struct Registrar {
    _proc: Proc,
    http: String,
    tls: String,
}

fn start_registrar(state: &Path, trust: &Path) -> Registrar {
    let log = std::fs::File::create(state.join("registrar.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["registrar", "--ip", "127.0.0.1", "--port", "0", "--tls-port", "0"])
        .arg("--state-dir")
        .arg(state)
        .arg("--trust-dir")
        .arg(trust)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut tls) = (None, None);
    while http.is_none() || tls.is_none() {
        let line = lines.next().expect("registrar exited").unwrap();
        if let Some(rest) = line.strip_prefix("cairn registrar: registration port ") {
            http = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("cairn registrar: TLS port ") {
            tls = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Registrar { _proc: Proc(child), http: http.unwrap(), tls: tls.unwrap() }
}

/// The registrar's admin client (its local CA, its client certificate).
fn admin(state: &Path) -> Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = state.join("tls");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(tls.join("ca-cert.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(tls.join("client-cert.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(tls.join("client-key.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Client::builder().use_preconfigured_tls(config).timeout(Duration::from_secs(30)).build().unwrap()
}

fn agent_record(c: &Client, r: &Registrar, id: &str) -> (StatusCode, Value) {
    let resp = c.get(format!("{}/v2.5/agents/{id}", r.tls)).send().unwrap();
    (resp.status(), resp.json().unwrap_or(Value::Null))
}

/// A running `cairn verifier` on the registrar's TLS directory, and its tenant URL.
fn start_verifier(work: &Path, registrar_state: &Path) -> (Proc, String) {
    let port = free_port_pair().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["verifier", "--port", &port.to_string(), "--quote-interval-ms", "300", "--state-dir", s(&work.join("verifier"))])
        .args(["--tls-dir", s(&registrar_state.join("tls"))])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("verifier.log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("verifier exited").unwrap();
        if let Some(rest) = line.strip_prefix("cairn verifier: tenant API") {
            break rest.split_whitespace().find(|w| w.starts_with("http")).unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), url)
}

/// Runs `cairn agent` on `tcti` with `extra` flags: the running agent once it says it is up
/// (registered and activated), or its error output when it exits instead.
fn agent(tcti: &str, uuid: &str, state: &Path, r: &Registrar, extra: &[&str]) -> Result<Proc, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["agent", "--tcti", tcti, "--uuid", uuid, "--listen", "127.0.0.1:0", "--registrar", &r.http])
        .arg("--state-dir")
        .arg(state)
        .args(["--ima-log", "/nonexistent", "--uefi-log", "/nonexistent"])
        .args(extra)
        .env_remove("CAIRN_AGENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.starts_with("cairn agent ") {
        return Ok(Proc(child));
    }
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    Err(err)
}

/// Stops the vTPMs of a directory however the test ends.
struct StopVtpms(PathBuf);

impl Drop for StopVtpms {
    fn drop(&mut self) {
        for vm in ["vm1", "vm2"] {
            let _ = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["vtpm", "stop", vm, "--dir", s(&self.0)]).output();
        }
    }
}

#[test]
fn vm_enrols_through_its_hosts_vtpm_ca_and_only_while_the_host_is_enrolled() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let vendor = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-ekchain-vendor")).unwrap();
    let host = Swtpm::start(&work.join("host-tpm"), SwtpmOptions { with_ek_certs: Some(&vendor), port: None }).unwrap();
    let other_host = Swtpm::start(&work.join("other-host-tpm"), SwtpmOptions::default()).unwrap();
    let (state, trust) = (work.join("registrar"), work.join("trust"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(vendor.root_pem(), trust.join("root.pem")).unwrap();
    std::fs::copy(vendor.issuer_pem(), trust.join("issuer.pem")).unwrap();
    let reg = start_registrar(&state, &trust);
    let adm = admin(&state);

    // vm1's vTPM from the host's CA (created with it), vm2's from another host TPM's CA.
    let dir = work.join("vtpms");
    let _stop = StopVtpms(dir.clone());
    vtpm(&["create", "vm1", "--dir", s(&dir), "--host-tcti", &host.tcti()]);
    let other_ca = work.join("other-ca");
    vtpm(&["create", "vm2", "--dir", s(&dir), "--host-tcti", &other_host.tcti(), "--ca-dir", s(&other_ca)]);
    let ca_dir = dir.join(".vtpm-ca");

    // The host registers with its vTPM CA, certified by its AK, and is activated.
    let host_agent = agent(&host.tcti(), "host-1", &work.join("host-agent"), &reg, &["--vtpm-ca-dir", s(&ca_dir)])
        .unwrap_or_else(|e| panic!("host agent: {e}"));
    let (st, v) = agent_record(&adm, &reg, "host-1");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"]["cairn_kind"], "host");
    assert!(v["results"].get("host_agent_id").is_none(), "{v}");

    // The VM on vm1's vTPM enrols; its record names the host.
    let port = free_port_pair().unwrap();
    let tcti = vtpm(&["start", "vm1", "--dir", s(&dir), "--host-tcti", &host.tcti(), "--tcp", &port.to_string()]);
    let vm_agent = agent(tcti.trim(), "vm-1", &work.join("vm1-agent"), &reg, &["--kind", "vm"]).unwrap_or_else(|e| panic!("VM agent: {e}"));
    let (st, v) = agent_record(&adm, &reg, "vm-1");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"]["cairn_kind"], "vm");
    assert_eq!(v["results"]["host_agent_id"], "host-1");

    // `cairn node add` takes the VM's host from the registrar, and refuses another one.
    let verifier = start_verifier(work, &state);
    let node = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("node")
            .args(args)
            .args(["--verifier", &verifier.1, "--registrar", &reg.tls, "--tls-dir", s(&state.join("tls"))])
            .output()
            .unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, out) = node(&["add", "host-1"]);
    assert!(ok, "{out}");
    let (ok, out) = node(&["add", "vm-1", "--on-host", "vm-2"]);
    assert!(!ok && out.contains("--on-host vm-2, but the registrar enrolled vm-1 as a VM of host host-1"), "{out}");
    let (ok, out) = node(&["add", "vm-1"]);
    assert!(ok, "{out}");
    let (ok, out) = node(&["status", "vm-1", "--json"]);
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["host_agent_id"], "host-1", "{out}");
    // The verifier and the VM agent go before anything else uses that vTPM (one client at a time).
    drop(verifier);
    drop(vm_agent);

    // The same vTPM registering as a host: a vTPM CA is never a host's trust anchor.
    let e = agent(tcti.trim(), "vm-as-host", &work.join("vm1-as-host"), &reg, &[]).err().expect("a vTPM enrolled as a host");
    assert!(e.contains("HTTP 403") && e.contains("not chained to a trust anchor"), "{e}");

    // A VM whose EK certificate another host TPM's CA issued (that host never enrolled).
    let port2 = free_port_pair().unwrap();
    let tcti2 = vtpm(&["start", "vm2", "--dir", s(&dir), "--host-tcti", &other_host.tcti(), "--tcp", &port2.to_string()]);
    let e = agent(tcti2.trim(), "vm-2", &work.join("vm2-agent"), &reg, &["--kind", "vm"]).err().expect("a VM of an unknown host enrolled");
    assert!(e.contains("HTTP 403") && e.contains("EK certificate of VM vm-2 is not issued by the vTPM CA of any enrolled host"), "{e}");
    assert_eq!(agent_record(&adm, &reg, "vm-2").0, StatusCode::NOT_FOUND);

    // Once the host is deleted, no new VM of it enrols.
    drop(host_agent);
    let resp = adm.delete(format!("{}/v2.5/agents/host-1", reg.tls)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let e = agent(tcti.trim(), "vm-1b", &work.join("vm1b-agent"), &reg, &["--kind", "vm"]).err().expect("a VM of a deleted host enrolled");
    assert!(e.contains("EK certificate of VM vm-1b is not issued by the vTPM CA of any enrolled host"), "{e}");
    assert!(e.contains("no enrolled host publishes a vTPM CA"), "{e}");

    // The registrar judges the certify evidence itself: a tampered signature is a 400 naming the
    // check; the genuine evidence registers. (The host TPM is opened here only after the last
    // process was spawned: a child would inherit the TPM socket.)
    let (body, mut tampered) = {
        let mut tpm = cairn_tpm::Tpm::open(&host.tcti()).unwrap();
        let ek = tpm.ek(cairn_tpm::EkKind::Rsa2048).unwrap();
        let ek_cert = tpm.ek_certificate(cairn_tpm::EkKind::Rsa2048).unwrap().unwrap();
        let ak = tpm.load_or_create_ak(cairn_tpm::AkSpec::new(cairn_tpm::AkAlg::Rsa2048Rsassa)).unwrap();
        let (key, cert) = cairn_tpm::vtpm_ca::CaKey::read_dir(&ca_dir).unwrap().unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert);
        let certified = tpm.ca_certify(&key, &ak, digest.as_ref()).unwrap();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let mut bad_sig = certified.signature.clone();
        let last = bad_sig.len() - 1;
        bad_sig[last] ^= 1;
        let body = |sig: &[u8]| {
            serde_json::json!({"ekcert": b64(&ek_cert), "ek_tpm": b64(&ek.public), "aik_tpm": b64(&ak.public), "cairn_kind": "host",
                "cairn_vtpm_ca": {"ca_cert": b64(&cert), "ca_public": b64(&key.public), "certify_attest": b64(&certified.attest),
                                  "certify_signature": b64(sig)}})
        };
        (body(&certified.signature), body(&bad_sig))
    };
    let post = |id: &str, b: &Value| {
        let resp = Client::new().post(format!("{}/v2.5/agents/{id}", reg.http)).json(b).send().unwrap();
        (resp.status(), resp.json::<Value>().unwrap())
    };
    let (st, v) = post("host-2", &tampered);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["status"].as_str().unwrap().contains("cairn_vtpm_ca refused: certify_signature"), "{v}");
    tampered["cairn_kind"] = "vm".into();
    let (st, v) = post("host-2", &tampered);
    assert_eq!(st, StatusCode::FORBIDDEN, "a vendor-certified TPM is no VM: {v}");
    let (st, v) = post("host-2", &body);
    assert_eq!(st, StatusCode::OK, "{v}");
}
