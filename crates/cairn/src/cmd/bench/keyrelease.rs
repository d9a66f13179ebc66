//! `cairn bench keyrelease`: time from `cairn node add --payload` to the agent holding the
//! bootstrap key K — identity quote checked, U sent with the payload, node added at the verifier,
//! its first round passing, V released and unwrapped, the auth tag checked, the payload decrypted
//! — on a local cluster (registrar, verifier, one agent on swtpm). JSON on stdout.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::super::demo::cluster::{Cluster, ClusterSpec};
use super::super::node::{add_timed, NodeOptions};

/// Options.
#[derive(Args)]
pub struct KeyReleaseArgs {
    /// Add/release/delete cycles measured.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
}

impl KeyReleaseArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(self.measure())
    }

    async fn measure(self) -> anyhow::Result<ExitCode> {
        let tmp = tempfile::Builder::new().prefix("cairn-bench-keyrelease-").tempdir()?;
        let spec = ClusterSpec { agents: 1, interval_ms: 1000, webhooks: Vec::new(), ima_log: None };
        let cluster = Cluster::start(tmp.path(), &spec, |line| eprintln!("{line}")).await?;
        let payload = tmp.path().join("payload.bin");
        std::fs::write(&payload, vec![0x5a; self.payload_bytes])?;
        let (endpoints, uuid, rounds) = (cluster.endpoints.clone(), cluster.uuids().remove(0), self.rounds);
        let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
            let http = endpoints.client()?;
            let mut out = Vec::with_capacity(rounds);
            for i in 0..rounds {
                let (code, took) = add_timed(&http, &endpoints, &uuid, &NodeOptions::with_payload_quiet(payload.clone()))?;
                if code != ExitCode::SUCCESS {
                    bail!("round {i}: the verifier refused the node");
                }
                out.push(took.context("no release time")?);
                if !endpoints.delete(&http, &uuid)? {
                    bail!("round {i}: the verifier did not delete the node");
                }
            }
            Ok(out)
        })
        .await??;
        cluster.stop().await;
        let mut ms: Vec<f64> = measured.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        let report = serde_json::json!({
            "bench": "keyrelease",
            "what": "cairn node add --payload → agent holds K (identity quote, U, verifier add, first passing round, V, auth tag, decrypt) on swtpm",
            "rounds": ms.len(),
            "payload_bytes": self.payload_bytes,
            "ms": { "min": pick(0.0), "p50": pick(0.5), "p90": pick(0.9), "max": pick(1.0),
                    "mean": ms.iter().sum::<f64>() / ms.len() as f64 },
            "keylime_paper_ms": 800,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    }
}
