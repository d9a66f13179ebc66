//! `cairn bench fleet`: the verifier under load from a simulated fleet, measured from outside.
//!
//! One process hosts N simulated agents (`cairn-sim`: software TPM identities under a per-run
//! bench CA, genuine quotes, growing IMA logs) and a real registrar that trusts that CA for this
//! run only. The verifier runs as its own process (`cairn verifier`), so the CPU seconds and RSS
//! read from /proc are its own. Agents enrol through the registrar, a tenant client adds them to
//! the verifier with one shared runtime policy, and once all are attested the window opens:
//! attestations per second, verifier CPU per attestation, round latency, memory and store size.
//! During the window some agents measure a file the policy does not know, at random times; the
//! time from that to the signed revocation at a webhook receiver is the detection latency.

mod metrics;
mod procstat;
mod report;
mod tenant;
mod verifier_proc;
mod webhook;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_registrar::{Registrar, RegistrarConfig};
use cairn_sim::{BenchCa, SignAlg, SimConfig, SimFleet};
use clap::Args;
use tokio::sync::watch;

use self::metrics::round_quantile_ms;
use self::report::{Detection, Report};
use self::verifier_proc::{VerifierProcess, VerifierSetup};

/// Options.
#[derive(Args, Clone, Debug)]
pub struct FleetArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Seconds between one agent's attestations (the verifier's quote interval).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Seconds measured (after every agent is attested and one interval of warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// IMA entries each agent's log grows by per second.
    #[arg(long, default_value_t = 0.0)]
    pub ima_growth: f64,
    /// IMA entries every log starts with.
    #[arg(long, default_value_t = 100)]
    pub initial_entries: usize,
    /// AK signing key of the simulated agents.
    #[arg(long, default_value = "ecc256", value_parser = |s: &str| s.parse::<SignAlg>())]
    pub sign: SignAlg,
    /// Unknown files measured during the window (each on another agent), for detection latency.
    #[arg(long, default_value_t = 5)]
    pub injections: usize,
    /// Simulated agents offer push-on-change: after the window (measured with pushes held back),
    /// as many injections again are made with pushes answered, for detection latency with push.
    #[arg(long)]
    pub push: bool,
    /// The verifier's bound on rounds in flight.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Seconds to wait for every agent to be attested before the window.
    #[arg(long, default_value_t = 600)]
    pub settle_timeout: u64,
    /// Keep the run's directory (databases, verifier log) here instead of a removed temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
    /// Print the JSON report (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl FleetArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let report = run_blocking(&self)?;
        if self.json {
            eprintln!("{}", report.table());
            println!("{}", serde_json::to_string_pretty(&report.json())?);
        } else {
            println!("{}", report.table());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs a whole bench on a fresh runtime; the report.
pub fn run_blocking(args: &FleetArgs) -> anyhow::Result<Report> {
    if args.agents == 0 || args.interval <= 0.0 || args.duration <= 0.0 {
        bail!("--agents, --interval and --duration must be positive");
    }
    raise_fd_limit(args.agents);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

fn progress(line: String) {
    eprintln!("bench fleet: {line}");
}

async fn run(args: &FleetArgs) -> anyhow::Result<Report> {
    let tmp = tempfile::Builder::new().prefix("cairn-bench-fleet-").tempdir()?;
    let dir = args.keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let interval = Duration::from_secs_f64(args.interval);
    let (stop, stop_rx) = watch::channel(false);

    // The bench CA, trusted by this run's registrar only.
    let ca = BenchCa::generate()?;
    let trust = dir.join("registrar/tpm_cert_store");
    std::fs::create_dir_all(&trust)?;
    std::fs::write(trust.join("cairn-bench-ca-NOT-FOR-PRODUCTION.pem"), ca.cert_pem())?;
    let rc = RegistrarConfig {
        port: 0,
        tls_port: 0,
        state_dir: dir.join("registrar"),
        database: Some(dir.join("registrar/registrar.sqlite")),
        trust_dir: Some(trust),
        ..RegistrarConfig::default()
    };
    let registrar = Registrar::bind(&rc).await.context("starting the registrar")?;
    let (reg_http, reg_tls) = (registrar.http_addr, registrar.tls_addr);
    let rx = stop_rx.clone();
    let registrar_task = tokio::spawn(async move {
        let _ = registrar.serve(async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        })
        .await;
    });
    let tls_dir = rc.auto_tls_dir();
    let (webhook_url, received) = webhook::start(stop_rx.clone()).await?;

    progress(format!("{} simulated agents ({} AKs), IMA logs of {} entries growing {}/s", args.agents, args.sign.name(), args.initial_entries, args.ima_growth));
    let sim_config = SimConfig {
        agents: args.agents,
        sign: args.sign,
        initial_entries: args.initial_entries,
        growth_per_second: args.ima_growth,
        duration: Duration::from_secs_f64(args.duration + args.interval * 4.0 + 600.0),
        client_ca_pem: std::fs::read(tls_dir.join("ca-cert.pem")).context("the registrar's local CA")?,
        loopback_net: 77,
        push_on_change: args.push,
    };
    let sim = SimFleet::start(&sim_config, ca, &progress).await?;
    let verifier = VerifierProcess::start(&VerifierSetup {
        dir: &dir.join("verifier"),
        tls_dir: &tls_dir,
        interval,
        max_in_flight: args.max_in_flight,
        webhook: &webhook_url,
    })?;
    progress(format!("verifier pid {} on {}", verifier.pid(), verifier.addr));
    let outcome = measure(args, &sim, &verifier, &tenant::Tenant::new(&tls_dir, verifier.addr, reg_tls)?, &received, &reg_http.to_string()).await;
    let store_bytes = verifier.store_bytes();
    tokio::task::spawn_blocking(move || verifier.stop()).await?;
    sim.stop().await;
    let _ = stop.send(true);
    let _ = registrar_task.await;
    let mut report = outcome?;
    report.store_bytes = store_bytes;
    Ok(report)
}

async fn measure(
    args: &FleetArgs,
    sim: &SimFleet,
    verifier: &VerifierProcess,
    tenant: &tenant::Tenant,
    received: &webhook::Received,
    reg_http: &str,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    sim.enrol_all(&format!("http://{reg_http}"), 32, &progress).await?;
    progress(format!("{} agents enrolled at the registrar in {:.1} s", args.agents, started.elapsed().as_secs_f64()));
    let added = Instant::now();
    tenant.add_policy("bench", sim.policy_json()).await?;
    tenant.add_all(sim, "bench", 32, &progress).await?;
    progress(format!("{} agents added to the verifier in {:.1} s", args.agents, added.elapsed().as_secs_f64()));

    // Every agent attested, then one interval of warm-up.
    let deadline = Instant::now() + Duration::from_secs(args.settle_timeout);
    loop {
        let m = tenant.metrics().await?;
        let attested = m.nodes("attested");
        if attested >= args.agents as f64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {attested} of {} agents attested after {} s (failed: {}, unreachable: {})", args.agents, args.settle_timeout, m.nodes("failed"), m.nodes("unreachable"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress(format!("all {} agents attested {:.1} s after the first add; measuring {} s", args.agents, added.elapsed().as_secs_f64(), args.duration));
    tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;

    let window = Duration::from_secs_f64(args.duration);
    let interval = Duration::from_secs_f64(args.interval);
    let injections = args.injections.min(args.agents);
    let push_injections = if args.push { injections.min(args.agents - injections) } else { 0 };
    let victims = pick_distinct(args.agents, injections + push_injections);
    // The window measures the interval-driven verifier: pushes are held back until after it.
    sim.set_push_active(false);
    let mut schedule: Vec<Duration> = (0..injections)
        .map(|k| window.mul_f64((k as f64 + 0.25 + 0.5 * unit_random()) / injections.max(1) as f64))
        .collect();
    schedule.sort();

    let m0 = tenant.metrics().await?;
    let p0 = procstat::sample(verifier.pid())?;
    let q0 = sim.quotes_served();
    let t0 = Instant::now();
    let mut coverage = Vec::new();
    let mut last_counts = sim.per_agent_quotes();
    let mut next_window = t0 + interval;
    let mut injected: Vec<(String, Instant)> = Vec::new();
    let mut next_injection = 0usize;
    while t0.elapsed() < window {
        let now = Instant::now();
        if let (Some(at), Some(&victim)) = (schedule.get(next_injection), victims.get(next_injection)) {
            if now >= t0 + *at {
                let when = sim.inject_unknown(victim, &format!("{}-{}", next_injection, cairn_sim::unix_now()))?;
                injected.push((cairn_sim::uuid_for(victim), when));
                next_injection += 1;
            }
        }
        if now >= next_window {
            let counts = sim.per_agent_quotes();
            let live = counts.iter().enumerate().filter(|(i, _)| !victims[..next_injection].contains(i));
            let (mut total, mut moved) = (0usize, 0usize);
            for (i, c) in live {
                total += 1;
                if *c > last_counts.get(i).copied().unwrap_or(0) {
                    moved += 1;
                }
            }
            coverage.push(if total == 0 { 1.0 } else { moved as f64 / total as f64 });
            last_counts = counts;
            next_window += interval;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let m1 = tenant.metrics().await?;
    let p1 = procstat::sample(verifier.pid())?;
    let q1 = sim.quotes_served();

    // Let the last injections be detected.
    let wait_until = Instant::now() + interval * 3 + Duration::from_secs(10);
    while injected.iter().any(|(id, _)| received.at(id).is_none()) && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = |list: &[(String, Instant)]| -> Vec<Detection> {
        list.iter()
            .map(|(id, at)| Detection { agent: id.clone(), ms: received.at(id).map(|r| r.saturating_duration_since(*at).as_secs_f64() * 1000.0) })
            .collect()
    };
    let detections = detected(&injected);

    // With push-on-change: the same again, pushes answered.
    let mut pushed = Vec::new();
    if push_injections > 0 {
        sim.set_push_active(true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (k, &victim) in victims.iter().skip(injections).enumerate() {
            let when = sim.inject_unknown(victim, &format!("push-{k}-{}", cairn_sim::unix_now()))?;
            let id = cairn_sim::uuid_for(victim);
            let until = Instant::now() + interval * 3 + Duration::from_secs(10);
            while received.at(&id).is_none() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            pushed.push((id, when));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        progress(format!("{} injections with push-on-change", pushed.len()));
    }
    let push_detections = args.push.then(|| detected(&pushed));
    let attestations = m1.judged_rounds() - m0.judged_rounds();
    Ok(Report {
        agents: args.agents,
        interval_s: args.interval,
        duration_s: elapsed,
        sign: args.sign.name().to_owned(),
        ima_growth: args.ima_growth,
        attestations,
        quotes_served: q1.saturating_sub(q0),
        verifier_cpu_seconds: p1.cpu_seconds - p0.cpu_seconds,
        verifier_rss_bytes: p1.rss_bytes,
        round_p50_ms: round_quantile_ms(&m0, &m1, 0.5),
        round_p99_ms: round_quantile_ms(&m0, &m1, 0.99),
        unreachable_rounds: m1.get("cairn_verifier_rounds_total{outcome=\"unreachable\"}") - m0.get("cairn_verifier_rounds_total{outcome=\"unreachable\"}"),
        window_coverage: coverage,
        detections,
        push_detections,
        store_bytes: 0,
    })
}

/// `k` distinct indices below `n`.
fn pick_distinct(n: usize, k: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(k);
    while out.len() < k.min(n) {
        // A random index; the cast stays below n.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = ((unit_random() * n as f64) as usize).min(n - 1);
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A uniform number in [0, 1).
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Per agent: its listener and, with push-on-change, two connections on each side (quote and long
/// poll) — in this process and in the verifier, which inherits the limit. Raised to what is needed
/// (the hard limit too when running as root), else as far as the hard limit allows.
pub(crate) fn raise_fd_limit(agents: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let want = u64::try_from(agents).unwrap_or(u64::MAX).saturating_mul(4).saturating_add(8192);
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|soft| soft >= want) {
        return;
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    if hard < want && setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: Some(want) }).is_ok() {
        return;
    }
    let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want.min(hard)), maximum: now.maximum });
    if hard < want {
        progress(format!("open files limited to {hard} (want {want}): raise it (ulimit -Hn) for {agents} agents"));
    }
}
