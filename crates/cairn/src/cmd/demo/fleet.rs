//! The all-in-one story on real parts, in one process: a local EK CA; a registrar and a verifier
//! sharing one SQLite file and one local TLS CA; N agents, each on its own swtpm with an IMA log
//! the demo writes while extending the same digests into PCR 10 (as a kernel would), each with a
//! revocation action that drops a failed peer from its peer list; a webhook receiver.
//!
//! Story: every node enrols (EK certificate chain, credential activation) and is added through the
//! tenant CLI's code with one runtime policy; all are attested; node 1 then measures an executable
//! nobody allowed (IMA log + PCR 10); its next round fails naming the entry; the signed revocation
//! reaches the webhook (its signature is checked here with the verifier's public key) and the
//! other agents, whose actions run; the other nodes stay attested. With `--once` the demo exits 0
//! only when every one of those steps held.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::routing::post;
use cairn_core::ima::{FileDigest, Template};
use cairn_core::revocation::{verify, RevocationMessage, RevocationVerifier, SignedRevocation};
use cairn_core::HashAlg;
use cairn_proto::verifier::AgentView;
use tokio::sync::{mpsc, watch};

use super::super::node::{self, print_table, Endpoints, NodeOptions};
use super::cluster::{measure, stopped, Cluster, ClusterSpec};

/// IMA entries each agent starts with (boot_aggregate first).
const IMA_ENTRIES: usize = 40;
/// What the tampered node runs.
const ROGUE: &str = "/tmp/.x/cryptominer";
/// Longest wait for any step.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// Demo settings.
pub struct Options {
    /// Exit after the story.
    pub once: bool,
    /// Number of agents.
    pub agents: usize,
    /// Quote interval.
    pub interval_ms: u64,
    /// Where to keep state (default: a temporary directory).
    pub state_dir: Option<PathBuf>,
    /// Print a JSON report at the end.
    pub json: bool,
}

/// Runs the demo.
pub fn run(o: Options) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(story(o))
}

async fn story(o: Options) -> anyhow::Result<ExitCode> {
    let tmp;
    let dir = match &o.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("cairn-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let t = Instant::now();
    println!("Cairn all-in-one demo: registrar + verifier on one SQLite file, {} agents on software TPMs.", o.agents);
    println!("state: {}\n", dir.display());

    // 1–2. Registrar and verifier on one database and TLS CA; agents on fresh software TPMs, with
    // IMA logs measured into PCR 10.
    let (hook_stop_tx, hook_stop_rx) = watch::channel(false);
    let (hook_addr, mut hook_rx) = webhook_receiver(hook_stop_rx).await?;
    let synth = cairn_core::ima::synth::generate(IMA_ENTRIES);
    let policy = dir.join("runtime-policy.json");
    std::fs::write(&policy, &synth.policy_json)?;
    let spec = ClusterSpec {
        agents: o.agents,
        interval_ms: o.interval_ms,
        webhooks: vec![format!("http://{hook_addr}/revocation")],
        ima_log: Some(synth.log.clone()),
    };
    let cluster = Cluster::start(&dir, &spec, |line| println!("{line}")).await?;
    let database = cluster.database.clone();
    let (reg_http, reg_tls, verifier_addr) = (cluster.registrar_http, cluster.registrar_tls, cluster.verifier_addr);
    let revocation_pub = cluster.revocation_public_key.clone();
    let registrar_tls = cluster.tls_dir.clone();
    println!("[1/6] registrar http://{reg_http} + https://{reg_tls}, verifier https://{verifier_addr}, one database {}", database.display());
    println!("[2/6] {} agents enrolled: EK certificate chains checked, AKs bound by credential activation  ({} ms)", cluster.nodes.len(), t.elapsed().as_millis());
    let nodes = &cluster.nodes;

    // 3. The tenant adds every node with one runtime policy.
    let endpoints = cluster.endpoints.clone();
    let uuids = cluster.uuids();
    let (e2, u2, p2) = (endpoints.clone(), uuids.clone(), policy.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let http = e2.client()?;
        for u in &u2 {
            if node::add(&http, &e2, u, &NodeOptions::with_runtime_policy(p2.clone(), "demo"))? != ExitCode::SUCCESS {
                bail!("the verifier refused node {u}");
            }
        }
        Ok(())
    })
    .await??;
    let fleet = wait_fleet(&endpoints, |v| v.iter().all(|n| n.cairn_state == "attested")).await?;
    println!("[3/6] every node attested (quote, PCR 16 NK binding, IMA replay against the policy)  ({} ms)\n", t.elapsed().as_millis());
    print_table(&fleet);
    println!();

    // 4. Node 1 runs an executable nobody allowed.
    let victim = uuids[0].clone();
    let before: Vec<(String, u64)> = fleet.iter().map(|v| (v.agent_id.clone(), v.attestation_count)).collect();
    let tampered_at = Instant::now();
    measure(&nodes[0].swtpm.tcti(), &nodes[0].ima, &rogue_line(ROGUE))?;
    println!("[4/6] node {victim}: {ROGUE} measured into its IMA log and PCR 10");

    // 5. Detection and the signed revocation at the webhook.
    let received = tokio::time::timeout(STEP_TIMEOUT, hook_rx.recv()).await.ok().flatten().context("no revocation reached the webhook")?;
    let detection = received.0.duration_since(tampered_at);
    let pem = std::fs::read_to_string(&revocation_pub)?;
    let message: RevocationMessage = verify(&RevocationVerifier::from_pem(&pem)?, &received.1).context("the revocation's signature does not verify")?;
    let v2 = victim.clone();
    let failed = wait_fleet(&endpoints, move |v| v.iter().any(|n| n.agent_id == v2 && n.cairn_state == "failed")).await?;
    let victim_view = failed.iter().find(|n| n.agent_id == victim).context("victim vanished")?;
    let reason = victim_view.failures.first().map(|f| format!("{}: {}", f.check, f.message)).unwrap_or_default();
    println!("[5/6] detected in {} ms (quote interval {} ms): {reason}", detection.as_millis(), o.interval_ms);
    println!("      signed revocation at the webhook: agent_id {}, event {}, signature verified with {}", message.agent_id, message.event_id.clone().unwrap_or_default(), revocation_pub.display());

    // 6. The other agents acted; the other nodes stay attested.
    let others: Vec<_> = nodes.iter().skip(1).collect();
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut acted = Vec::new();
    for n in &others {
        loop {
            let text = std::fs::read_to_string(&n.dropped).unwrap_or_default();
            if text.lines().any(|l| l.trim() == victim) {
                acted.push(n.agent.as_ref().map(|a| a.uuid.clone()).unwrap_or_default());
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let v3 = victim.clone();
    let fleet = wait_fleet(&endpoints, move |v| {
        v.iter().filter(|n| n.agent_id != v3).all(|n| {
            n.cairn_state == "attested" && before.iter().any(|(id, c)| *id == n.agent_id && n.attestation_count > *c)
        })
    })
    .await?;
    println!("[6/6] {} of {} other agents ran their revocation action (dropped {victim} from their peer list); the others stay attested\n", acted.len(), others.len());
    print_table(&fleet);

    let ok = message.agent_id == victim
        && reason.contains(ROGUE)
        && acted.len() == others.len()
        && fleet.iter().filter(|n| n.agent_id != victim).all(|n| n.cairn_state == "attested");
    if o.json {
        let report = serde_json::json!({
            "ok": ok,
            "interval_ms": o.interval_ms,
            "failed_node": victim,
            "detection_ms": detection.as_millis(),
            "reason": reason,
            "revocation": {"agent_id": message.agent_id, "event_id": message.event_id, "signature_verified": true},
            "actions_ran": acted,
            "nodes": fleet,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if !o.once {
        println!("\nThe fleet keeps being attested. `cairn node list --verifier https://{verifier_addr} --tls-dir {}`; Ctrl-C stops everything.", registrar_tls.display());
        let _ = std::io::stdout().flush();
        super::super::registrar::shutdown_signal().await;
    }
    let _ = hook_stop_tx.send(true);
    cluster.stop().await;
    println!("stopped cleanly");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}


/// Polls the verifier until `done` holds for the fleet.
async fn wait_fleet(e: &Endpoints, done: impl Fn(&[AgentView]) -> bool + Send + 'static) -> anyhow::Result<Vec<AgentView>> {
    let e = e.clone();
    tokio::task::spawn_blocking(move || {
        let http = e.client()?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let v = e.nodes(&http)?;
            if done(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                print_table(&v);
                bail!("timed out waiting for the fleet");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await?
}

/// A webhook receiver: every POST body, with when it arrived.
async fn webhook_receiver(stop: watch::Receiver<bool>) -> anyhow::Result<(SocketAddr, mpsc::UnboundedReceiver<(Instant, SignedRevocation)>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/revocation",
        post(move |body: axum::Json<SignedRevocation>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((Instant::now(), body.0));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(stopped(stop)).await;
    });
    Ok((addr, rx))
}



/// An ima-ng line for `path` with a digest no policy lists.
fn rogue_line(path: &str) -> Vec<u8> {
    let file_digest = HashAlg::Sha256.hash(path.as_bytes());
    let mut data = Vec::new();
    let ok = FileDigest::new(b"sha256", file_digest.as_bytes(), "d-ng")
        .map(|digest| Template::ImaNg { digest, path: path.as_bytes() }.encode(&mut data))
        .unwrap_or(false);
    if !ok {
        return Vec::new();
    }
    let thash = HashAlg::Sha1.hash(&data);
    format!("10 {} ima-ng sha256:{} {path}\n", thash.to_hex(), file_digest.to_hex()).into_bytes()
}
