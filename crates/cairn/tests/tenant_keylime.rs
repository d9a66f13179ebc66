//! Interop with Keylime's tenant: Keylime 7.14.3's own `keylime_tenant` (Python, from PyPI, in a
//! venv built by `scripts/keylime-venv.sh`), unchanged, drives Cairn's three Keylime-facing APIs.
//!
//! `cairn registrar`, `cairn verifier` and `cairn agent` (mutual TLS to its clients, on a real
//! swtpm with an EK certificate) run as real processes. `keylime_tenant -c add -f FILE --verify`
//! reads the agent's record from Cairn's registrar (TLS, the local CA's client certificate),
//! checks the EK certificate against its own `tpm_cert_store` and the agent's identity quote
//! itself, sends U and the encrypted payload to the agent, adds the node with V to Cairn's
//! verifier, and polls `keys/verify` until the agent holds K. The verifier releases V only after a
//! passing round, so the payload file in the agent's `<state_dir>/secure/payload` (byte-identical)
//! proves the attestation too. `-c status` reports the node attested. `-c reactivate` makes the
//! verifier send the same V again; `-c update` then delivers a second payload. `-c delete`
//! removes the node from Cairn's verifier.
//!
//! Run alone with `make test-keylime-interop`. Outside CI the test skips (saying so) when the
//! venv cannot be built; under `CI=true` that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CAIRN_") {
            c.env_remove(k);
        }
    }
    c
}

/// A Cairn process in its own process group, logging to a file; killed (group and all, by id)
/// on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(file).process_group(0);
        Proc { child: cmd.spawn().unwrap(), log }
    }

    /// Reads stdout until a line starting with each of `prefixes` was seen and returns those
    /// lines; then keeps draining stdout in the background.
    fn wait_lines(&mut self, prefixes: &[&str]) -> Vec<String> {
        let mut reader = BufReader::new(self.child.stdout.take().unwrap());
        let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
        let mut seen = String::new();
        while found.iter().any(Option::is_none) {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("missing {prefixes:?}; stdout:\n{seen}\nlog:\n{}", tail(&self.log));
            }
            seen.push_str(&line);
            for (i, p) in prefixes.iter().enumerate() {
                if line.starts_with(p) {
                    found[i] = Some(line.trim_end().to_owned());
                }
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        found.into_iter().map(Option::unwrap_or_default).collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pgid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
            let _ = self.child.wait();
        }
    }
}

/// The last 40 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(40).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The port of the first `http(s)://host:port` URL in `line`.
fn url_port(line: &str) -> u16 {
    let url = line.split_whitespace().find(|w| w.starts_with("http")).unwrap();
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Unmounts the agent's payload tmpfs (made when the payload arrived) before its directory goes.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).stderr(Stdio::null()).status();
    }
}

/// Keylime's tenant configuration for Cairn's registrar (TLS port) and verifier: both trust the
/// registrar's local CA and accept its client certificate, which the tenant also presents to the
/// agent (whose own certificate it pins from the registrar's `mtls_cert`).
fn write_tenant_config(dir: &Path, tls: &Path, cert_store: &Path, registrar_tls_port: u16, verifier_port: u16) {
    let tenant = format!(
        "[tenant]\nversion = 2.4\nverifier_ip = 127.0.0.1\nverifier_port = {verifier_port}\n\
         registrar_ip = 127.0.0.1\nregistrar_port = {registrar_tls_port}\ntls_dir = {tls}\n\
         enable_agent_mtls = True\nclient_cert = client-cert.pem\nclient_key = client-key.pem\n\
         client_key_password =\ntrusted_server_ca = [\"ca-cert.pem\"]\ntpm_cert_store = {store}\n\
         require_ek_cert = True\nek_check_script =\nmb_refstate =\nmax_payload_size = 1048576\n\
         accept_tpm_hash_algs = [\"sha512\", \"sha384\", \"sha256\"]\n\
         accept_tpm_encryption_algs = [\"ecc\", \"rsa\"]\naccept_tpm_signing_algs = [\"ecschnorr\", \"rsassa\"]\n\
         exponential_backoff = False\nretry_interval = 0.5\nmax_retries = 120\nrequest_timeout = 60\n",
        tls = tls.display(),
        store = cert_store.display()
    );
    std::fs::write(dir.join("tenant.conf"), tenant).unwrap();
    let logging = "[loggers]\nkeys = root,keylime\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = f\n\n\
                   [formatter_f]\nformat = %(asctime)s %(name)s %(levelname)s %(message)s\n\n\
                   [logger_root]\nlevel = INFO\nhandlers = console\n\n\
                   [handler_console]\nclass = StreamHandler\nlevel = INFO\nformatter = f\nargs = (sys.stderr,)\n\n\
                   [logger_keylime]\nlevel = INFO\nqualname = keylime\nhandlers =\n";
    std::fs::write(dir.join("logging.conf"), logging).unwrap();
}

/// Runs `keylime_tenant ARGS`; returns whether it succeeded and everything it printed.
fn keylime_tenant(venv: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out: Output = Command::new(venv.join("bin/keylime_tenant"))
        .args(args)
        .current_dir(dir)
        .env("KEYLIME_DIR", &work)
        .env("KEYLIME_TENANT_CONFIG", dir.join("tenant.conf"))
        .env("KEYLIME_LOGGING_CONFIG", dir.join("logging.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `GET PATH` on Cairn's verifier with the local CA's client certificate: status and body.
fn verifier_get(tls: &Path, verifier_port: u16, path: &str) -> (u16, serde_json::Value) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(tls.join("ca-cert.pem")).unwrap()).unwrap();
    let chain = vec![CertificateDer::from_pem_file(tls.join("client-cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(tls.join("client-key.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let http = reqwest::blocking::Client::builder().use_preconfigured_tls(config).build().unwrap();
    let resp = http.get(format!("https://127.0.0.1:{verifier_port}{path}")).send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

/// How many times Cairn's verifier released V to `uuid` (its history's `key_released` events).
fn releases(tls: &Path, verifier_port: u16, uuid: &str) -> usize {
    let (status, history) = verifier_get(tls, verifier_port, &format!("/cairn/v1/nodes/{uuid}/history"));
    assert_eq!(status, 200, "{history}");
    history["results"].as_array().unwrap().iter().filter(|e| e["kind"] == "key_released").count()
}

#[test]
fn keylime_tenant_adds_a_cairn_agent_through_cairn_and_its_payload_arrives() {
    let Some(venv) = keylime_venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tenant-keylime-ca")).unwrap();
    // One EK trust store for Cairn's registrar and Keylime's tenant: the swtpm CA.
    let store = dir.join("registrar/tpm_cert_store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::copy(ca.root_pem(), store.join("swtpm-root.pem")).unwrap();
    std::fs::copy(ca.issuer_pem(), store.join("swtpm-issuer.pem")).unwrap();

    let mut registrar = Proc::spawn(
        {
            let mut c = cairn();
            c.args(["registrar", "--port", "0", "--tls-port", "0", "--state-dir"]).arg(dir.join("registrar"));
            c
        },
        dir.join("registrar.log"),
    );
    let lines = registrar.wait_lines(&["cairn registrar: registration port", "cairn registrar: TLS port"]);
    let (registrar_port, registrar_tls_port) = (url_port(&lines[0]), url_port(&lines[1]));
    let tls = dir.join("registrar/tls");

    let verifier_port = free_port();
    let mut verifier = Proc::spawn(
        {
            let mut c = cairn();
            c.args(["verifier", "--port", &verifier_port.to_string(), "--quote-interval-ms", "300", "--state-dir"])
                .arg(dir.join("verifier"))
                .arg("--tls-dir")
                .arg(&tls);
            c
        },
        dir.join("verifier.log"),
    );
    verifier.wait_lines(&["cairn verifier: tenant API"]);

    let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None }).unwrap();
    let state = dir.join("agent-state");
    let _unmount = Unmount(state.join("secure"));
    let ima = dir.join("ima");
    std::fs::write(&ima, b"").unwrap();
    let mut agent = Proc::spawn(
        {
            let mut c = cairn();
            c.args(["agent", "--tcti", &swtpm.tcti(), "--listen", "127.0.0.1:0"])
                .arg("--registrar")
                .arg(format!("http://127.0.0.1:{registrar_port}"))
                .arg("--state-dir")
                .arg(&state)
                .arg("--ima-log")
                .arg(&ima)
                .args(["--uefi-log", "/nonexistent"])
                .arg("--client-ca")
                .arg(tls.join("ca-cert.pem"));
            c
        },
        dir.join("agent.log"),
    );
    let line = agent.wait_lines(&["cairn agent "]).remove(0);
    let uuid = line.split_whitespace().nth(2).unwrap().to_owned();

    let kl = dir.join("keylime");
    std::fs::create_dir_all(&kl).unwrap();
    write_tenant_config(&kl, &tls, &store, registrar_tls_port, verifier_port);
    let secret: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, &secret).unwrap();
    let file = payload.to_str().unwrap();
    let logs = || format!("agent:\n{}\nverifier:\n{}\nregistrar:\n{}", tail(&agent.log), tail(&verifier.log), tail(&registrar.log));

    // add: registrar record, EK certificate and identity quote checked by Keylime's tenant, U and
    // the payload to the agent, V to the verifier, then `keys/verify` until the agent holds K.
    let started = Instant::now();
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "add", "-t", "127.0.0.1", "-u", &uuid, "-f", file, "--verify"]);
    let took = started.elapsed();
    assert!(ok, "keylime_tenant -c add failed:\n{out}\n{}", logs());
    assert!(out.contains(&format!("Quote from Agent {uuid}")) && out.contains("validated"), "{out}");
    assert!(out.contains("Successful key derivation"), "{out}");
    eprintln!("{{\"keylime_tenant_add_to_key_derived_ms\": {}}}", took.as_millis());
    let delivered = std::fs::read(state.join("secure/payload")).unwrap_or_else(|e| panic!("no payload: {e}\n{}", logs()));
    assert_eq!(delivered, secret, "the payload arrives byte-identical");

    // status: the registrar's record and the verifier's, the node attested.
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "status", "-u", &uuid]);
    assert!(ok, "keylime_tenant -c status failed:\n{out}\n{}", logs());
    assert!(out.contains(&format!("Agent {uuid} exists on registrar")), "{out}");
    assert!(out.contains("\"operational_state\": \"Get Quote\""), "{out}");
    assert!(out.contains("\"attestation_status\": \"PASS\""), "{out}");
    assert!(out.contains(&format!("\"verifier_port\": {verifier_port}")), "{out}");
    assert_eq!(releases(&tls, verifier_port, &uuid), 1);
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "bulkinfo"]);
    let entry = format!("\"{uuid}\": {{\"operational_state\": \"Get Quote\"");
    assert!(ok && out.contains("Bulk Agent Info") && out.contains(&entry), "{out}");

    // reactivate: the verifier attests anew and sends the agent the same V again; the agent takes
    // it for what it is, so `update` (delete, new U with a new payload, add with the new V) works.
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "reactivate", "-u", &uuid]);
    assert!(ok && out.contains(&format!("Agent {uuid} re-activated")), "{out}\n{}", logs());
    let deadline = Instant::now() + Duration::from_secs(120);
    while releases(&tls, verifier_port, &uuid) < 2 {
        assert!(Instant::now() < deadline, "V was not released again after the reactivation\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let second: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&payload, &second).unwrap();
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "update", "-t", "127.0.0.1", "-u", &uuid, "-f", file, "--verify"]);
    assert!(ok, "keylime_tenant -c update failed:\n{out}\n{}", logs());
    assert!(out.contains("Successful key derivation"), "{out}");
    assert_eq!(std::fs::read(state.join("secure/payload")).unwrap(), second, "the new payload replaces the first");

    // delete: gone from Cairn's verifier.
    let node = format!("/v2.5/agents/{uuid}");
    assert_eq!(verifier_get(&tls, verifier_port, &node).0, 200);
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "delete", "-u", &uuid]);
    assert!(ok, "keylime_tenant -c delete failed:\n{out}\n{}", logs());
    assert!(out.contains(&format!("Agent {uuid} deleted from the CV")), "{out}");
    assert_eq!(verifier_get(&tls, verifier_port, &node).0, 404, "the node is gone from Cairn's verifier");
    let (ok, out) = keylime_tenant(&venv, &kl, &["-c", "cvstatus", "-u", &uuid]);
    assert!(!ok && out.contains("does not exist on Verifier"), "{out}");
}
