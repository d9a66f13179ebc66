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

#[path = "common/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};

use cairn_tpm::swtpm::SwtpmCa;
use fleet::{cairn, count, free_port, tenant, AgentNode, Fleet, Unmount};
use serde_json::Value;

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
