//! `cairn bench sim`, the simulated fleet as a process of its own (what `bench/compare-keylime`
//! points Keylime's verifier at), for correctness only: a bench CA made once with `--ca-only` is
//! reused, so a registrar that trusts it enrols the agents; the agents file lists every agent
//! with its address, AK and mTLS certificate and the runtime policy; the control endpoint takes
//! injections (and refuses an agent that does not exist) and counts quotes; SIGTERM stops it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_registrar::{Registrar, RegistrarConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_simulator_enrols_lists_its_agents_and_takes_injections() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("bench-ca");
    let made = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["bench", "sim", "--ca-only", "--bench-ca"]).arg(&ca_dir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let ca_pem = std::fs::read_to_string(ca_dir.join("bench-ca.pem")).unwrap();

    // A registrar that trusts that CA only, started before the simulator exists.
    let trust = dir.path().join("trust");
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::write(trust.join("bench-ca.pem"), &ca_pem).unwrap();
    let rc = RegistrarConfig { port: 0, tls_port: 0, state_dir: dir.path().join("reg"), trust_dir: Some(trust), ..RegistrarConfig::default() };
    let registrar = Registrar::bind(&rc).await.unwrap();
    let http = registrar.http_addr;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(registrar.serve(async move {
        let mut rx = rx;
        let _ = rx.wait_for(|s| *s).await;
    }));

    let out = dir.path().join("agents.json");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "sim", "--agents", "3", "--ima-growth", "5", "--loopback-net", "79", "--bench-ca"])
        .arg(&ca_dir)
        .arg("--client-ca")
        .arg(rc.auto_tls_dir().join("ca-cert.pem"))
        .args(["--registrar", &format!("http://{http}"), "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.exists() {
        if let Some(status) = sim.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(sim.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("cairn bench sim exited ({status}):\n{err}");
        }
        assert!(Instant::now() < deadline, "no agents file within 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["bench_ca_pem"].as_str(), Some(ca_pem.as_str()), "the saved CA was reused");
    let agents = doc["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    for (i, a) in agents.iter().enumerate() {
        assert_eq!(a["index"], i);
        assert_eq!(a["uuid"].as_str(), Some(cairn_sim::uuid_for(i).as_str()));
        assert!(a["ip"].as_str().unwrap().starts_with("127.79."), "{a}");
        assert!(a["port"].as_u64().unwrap() > 0);
        let ak = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, a["ak_tpm"].as_str().unwrap()).unwrap();
        cairn_core::tpm::Public::parse_tpm2b(&ak).unwrap();
        assert!(a["mtls_cert"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    }
    let policy = std::fs::read_to_string(doc["runtime_policy"].as_str().unwrap()).unwrap();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert!(policy["digests"]["boot_aggregate"].is_array(), "a Keylime runtime policy");

    let control = doc["control"].as_str().unwrap().to_owned();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::new();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
    let r = client.post(format!("{control}/inject/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = r.json().await.unwrap();
    assert_eq!(r["uuid"].as_str(), Some(cairn_sim::uuid_for(1).as_str()));
    assert!(r["injected_unix_ms"].as_f64().unwrap() >= before - 1.0, "{r}");
    assert_eq!(client.post(format!("{control}/inject/3")).send().await.unwrap().status(), 404);
    let q: serde_json::Value = client.get(format!("{control}/quotes")).send().await.unwrap().json().await.unwrap();
    assert_eq!(q["per_agent"].as_array().unwrap().len(), 3);
    assert_eq!(q["quotes_served"], 0, "nobody asked for a quote");

    rustix::process::kill_process(rustix::process::Pid::from_raw(sim.id() as i32).unwrap(), rustix::process::Signal::TERM).unwrap();
    let status = sim.wait().unwrap();
    assert!(status.success(), "SIGTERM stops the simulator cleanly: {status}");
    let _ = stop.send(true);
    let _ = task.await;
}
