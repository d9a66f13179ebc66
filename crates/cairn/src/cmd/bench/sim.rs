//! `cairn bench sim`: the simulated fleet of `cairn bench fleet` as a process of its own, so any
//! verifier — Keylime's included — can be pointed at it and measured from outside.
//!
//! It starts N simulated agents (`cairn-sim`: software TPM identities, genuine quotes, IMA logs
//! growing over a shared synthetic log), optionally enrols them at a registrar, writes what a
//! tenant needs to add them (uuid, address, AK, mTLS certificate, the runtime policy) to a JSON
//! file, and serves until SIGTERM or Ctrl-C. A loopback HTTP control endpoint takes injections
//! (`POST /inject/{i}`: agent i measures a file its policy does not know; the answer carries the
//! wall-clock moment, so another process can time detection) and reports quotes served
//! (`GET /quotes`). The agents accept clients whose certificate chains to one of `--client-ca`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_sim::{BenchCa, SignAlg, SimConfig, SimFleet};
use clap::Args;
use serde_json::json;

/// Options of `cairn bench sim`.
#[derive(Args, Clone, Debug)]
pub struct SimArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// IMA entries each agent's log grows by per second.
    #[arg(long, default_value_t = 0.0)]
    ima_growth: f64,
    /// IMA entries every log starts with.
    #[arg(long, default_value_t = 100)]
    initial_entries: usize,
    /// AK signing key of the simulated agents.
    #[arg(long, default_value = "ecc256", value_parser = |s: &str| s.parse::<SignAlg>())]
    sign: SignAlg,
    /// Seconds the logs can keep growing (sizes the shared log; the agents serve on after it).
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// PEM file of a CA whose client certificates the agents accept (repeatable: one per
    /// verifier or tenant that will talk to them).
    #[arg(long = "client-ca", value_name = "PEM", required_unless_present = "ca_only")]
    client_ca: Vec<PathBuf>,
    /// Enrol every agent at this registrar (its plain registration URL, e.g. http://127.0.0.1:8890);
    /// the registrar must trust the bench CA (see --bench-ca).
    #[arg(long, value_name = "URL")]
    registrar: Option<String>,
    /// Directory of the bench CA that issues the EK certificates (bench-ca.pem, bench-ca-key.pem):
    /// used when present, made and written there when not. Without it a fresh CA lives in memory.
    #[arg(long, value_name = "DIR")]
    bench_ca: Option<PathBuf>,
    /// Only make (or check) the bench CA in --bench-ca and exit, so a registrar can trust it first.
    #[arg(long, requires = "bench_ca")]
    ca_only: bool,
    /// Agents offer push-on-change (`/cairn/v1/ima/changes`) to a Cairn verifier.
    #[arg(long)]
    push: bool,
    /// Loopback network of the agents: agent i listens on 127.<net>.<i/250>.<i%250+1>.
    #[arg(long, default_value_t = 78)]
    loopback_net: u8,
    /// Address of the control endpoint (loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Where to write the agents (JSON); the runtime policy goes beside it (`<out>.policy.json`).
    #[arg(long, value_name = "FILE", required_unless_present = "ca_only")]
    out: Option<PathBuf>,
}

/// Shared with the control handlers.
struct Control {
    fleet: SimFleet,
    injected: std::sync::Mutex<u64>,
}

impl SimArgs {
    /// Runs the simulator until a signal.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.control.ip().is_unspecified() || !self.control.ip().is_loopback() {
            bail!("--control must be a loopback address (it takes injections without authentication)");
        }
        let ca = match &self.bench_ca {
            Some(dir) => load_or_make_ca(dir)?,
            None => BenchCa::generate()?,
        };
        if self.ca_only {
            return Ok(ExitCode::SUCCESS);
        }
        let Some(out) = self.out.clone() else { bail!("--out is required") };
        if self.agents == 0 {
            bail!("--agents must be positive");
        }
        let mut client_ca_pem = Vec::new();
        for f in &self.client_ca {
            client_ca_pem.extend_from_slice(&super::super::read(f)?);
            client_ca_pem.push(b'\n');
        }
        super::fleet::raise_fd_limit(self.agents);
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(self.serve(ca, client_ca_pem, &out))?;
        Ok(ExitCode::SUCCESS)
    }

    async fn serve(&self, ca: BenchCa, client_ca_pem: Vec<u8>, out: &Path) -> anyhow::Result<()> {
        let config = SimConfig {
            agents: self.agents,
            sign: self.sign,
            initial_entries: self.initial_entries,
            growth_per_second: self.ima_growth,
            duration: Duration::from_secs_f64(self.duration.max(1.0)),
            client_ca_pem,
            loopback_net: self.loopback_net,
            push_on_change: self.push,
        };
        let progress = |line: String| eprintln!("bench sim: {line}");
        let fleet = SimFleet::start(&config, ca, &progress).await?;
        if let Some(registrar) = &self.registrar {
            fleet.enrol_all(registrar, 32, &progress).await?;
            progress(format!("{} agents enrolled at {registrar}", self.agents));
        }
        let control = Arc::new(Control { fleet, injected: std::sync::Mutex::new(0) });
        let app = Router::new()
            .route("/inject/{index}", post(inject))
            .route("/quotes", get(quotes))
            .with_state(control.clone());
        let listener = tokio::net::TcpListener::bind(self.control).await.with_context(|| format!("binding {}", self.control))?;
        let control_url = format!("http://{}", listener.local_addr()?);
        write_agents(out, &control.fleet, &control_url, self)?;
        println!("cairn bench sim: {} agents listening; control {control_url}; agents in {}", self.agents, out.display());
        axum::serve(listener, app).with_graceful_shutdown(crate::cmd::registrar::shutdown_signal()).await?;
        eprintln!("bench sim: stopping");
        if let Ok(c) = Arc::try_unwrap(control) {
            c.fleet.stop().await;
        }
        Ok(())
    }
}

/// Loads the CA in `dir`, or makes one and writes it there.
fn load_or_make_ca(dir: &Path) -> anyhow::Result<BenchCa> {
    let (cert, key) = (dir.join("bench-ca.pem"), dir.join("bench-ca-key.pem"));
    if cert.exists() && key.exists() {
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
        return Ok(BenchCa::from_pem(&read(&cert)?, &read(&key)?)?);
    }
    let ca = BenchCa::generate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_private(&key, ca.key_pem().as_bytes())?;
    std::fs::write(&cert, ca.cert_pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    eprintln!("bench sim: made the bench CA {} (trust it in bench registrars only)", cert.display());
    Ok(ca)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Writes the agents' JSON (and the policy beside it), each through a temporary file and a
/// rename, so a reader polling for the file never sees half of it.
fn write_agents(out: &Path, fleet: &SimFleet, control_url: &str, args: &SimArgs) -> anyhow::Result<()> {
    let policy_path = PathBuf::from(format!("{}.policy.json", out.display()));
    atomic_write(&policy_path, fleet.policy_json().as_bytes())?;
    let agents: Vec<serde_json::Value> = fleet
        .agents
        .iter()
        .zip(&fleet.addrs)
        .enumerate()
        .map(|(i, (a, addr))| {
            json!({
                "index": i,
                "uuid": a.uuid,
                "ip": addr.ip().to_string(),
                "port": addr.port(),
                "ak_tpm": fleet.ak_b64(i),
                "mtls_cert": a.identity.mtls_cert_pem,
            })
        })
        .collect();
    let doc = json!({
        "pid": std::process::id(),
        "control": control_url,
        "sign": args.sign.name(),
        "ima_growth_per_agent_per_s": args.ima_growth,
        "initial_entries": args.initial_entries,
        "runtime_policy": policy_path,
        "bench_ca_pem": fleet.ca.cert_pem(),
        "agents": agents,
    });
    atomic_write(out, serde_json::to_string_pretty(&doc)?.as_bytes())
}

fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `POST /inject/{index}`: agent `index` measures an unknown file; the moment, in Unix
/// milliseconds (wall clock, so another process on the machine can compare).
async fn inject(State(c): State<Arc<Control>>, UrlPath(index): UrlPath<usize>) -> (StatusCode, Json<serde_json::Value>) {
    let serial = match c.injected.lock() {
        Ok(mut n) => {
            *n += 1;
            *n
        }
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "lock poisoned"}))),
    };
    let Some(agent) = c.fleet.agents.get(index) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no agent {index} (there are {})", c.fleet.agents.len())})));
    };
    let tag = format!("{serial}-{}", cairn_sim::unix_now());
    match c.fleet.inject_unknown(index, &tag) {
        Ok(_) => {
            let at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
            (StatusCode::OK, Json(json!({"index": index, "uuid": agent.uuid, "injected_unix_ms": at})))
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e.to_string()}))),
    }
}

/// `GET /quotes`: quotes served, in all and per agent.
async fn quotes(State(c): State<Arc<Control>>) -> Json<serde_json::Value> {
    Json(json!({"quotes_served": c.fleet.quotes_served(), "per_agent": c.fleet.per_agent_quotes()}))
}
