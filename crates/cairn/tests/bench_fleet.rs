//! The fleet simulator and `cairn bench fleet`, for correctness only (the figures are the bench's
//! business): simulated agents enrol through the real registrar, are attested by a real verifier
//! process, and every unknown file one of them measures ends in a signed revocation naming that
//! agent at the webhook. And a registrar that does not trust the run's bench CA refuses them — a
//! simulated agent never passes for a TPM.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::Duration;

use cairn_registrar::{Registrar, RegistrarConfig};
use cairn_sim::{BenchCa, SignAlg, SimConfig, SimFleet};

#[test]
fn a_small_simulated_fleet_is_attested_and_every_injection_is_revoked() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "fleet", "--agents", "50", "--interval", "0.5", "--duration", "3", "--injections", "3", "--ima-growth", "2"])
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stderr}"));
    assert_eq!(r["agents"], 50);
    assert!(r["attestations"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["quotes_served"].as_f64().unwrap() >= r["attestations"].as_f64().unwrap() - 50.0, "{r}");
    assert!(r["verifier_cpu_us_per_attestation"].as_f64().is_some(), "{r}");
    assert!(r["verifier_rss_bytes"].as_u64().unwrap() > 0);
    assert!(r["round_latency_ms"]["p50"].as_f64().is_some() && r["round_latency_ms"]["p99"].as_f64().is_some());
    for key in ["interval_s", "attestations_per_second", "store_bytes", "min_window_coverage"] {
        assert!(!r[key].is_null(), "{key} missing: {r}");
    }
    // Every injected unknown file was detected, each on its own agent.
    let det = &r["detection_latency_ms"];
    assert_eq!(det["injected"], 3, "{r}");
    assert_eq!(det["detected"], 3, "{r}");
    let mut agents: Vec<&str> = r["detections"].as_array().unwrap().iter().map(|d| d["agent"].as_str().unwrap()).collect();
    agents.sort();
    agents.dedup();
    assert_eq!(agents.len(), 3);
    assert!(stderr.contains("attestations/s"), "the table goes to stderr with --json:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_without_the_bench_ca_refuses_simulated_agents() {
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    // The registrar trusts some other CA (another run's), not this run's.
    std::fs::write(trust.join("other.pem"), BenchCa::generate().unwrap().cert_pem()).unwrap();
    let rc = RegistrarConfig { port: 0, tls_port: 0, state_dir: dir.path().join("reg"), trust_dir: Some(trust), ..RegistrarConfig::default() };
    let registrar = Registrar::bind(&rc).await.unwrap();
    let http = registrar.http_addr;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(registrar.serve(async move {
        let mut rx = rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    let config = SimConfig {
        agents: 2,
        sign: SignAlg::Ecc256,
        initial_entries: 10,
        growth_per_second: 0.0,
        duration: Duration::from_secs(10),
        client_ca_pem: std::fs::read(rc.auto_tls_dir().join("ca-cert.pem")).unwrap(),
        loopback_net: 78,
        push_on_change: false,
    };
    let sim = SimFleet::start(&config, BenchCa::generate().unwrap(), &|_| {}).await.unwrap();
    let err = sim.enrol_all(&format!("http://{http}"), 2, &|_| {}).await.unwrap_err().to_string();
    eprintln!("refusal: {err}");
    assert!(err.contains("registration") && err.contains("EK certificate"), "{err}");
    sim.stop().await;
    let _ = stop.send(true);
    let _ = task.await;
}
