//! `cairn bench vm-batch`: the cost of one attestation round for N VMs, two ways, on real swtpm.
//!
//! - **batched** — one host TPM: the host agent puts every VM's evidence leaf in a Merkle tree and
//!   makes ONE quote whose qualifying data is H(nonce ‖ root); the verifier verifies that quote
//!   once, then each VM's inclusion proof and leaf (`cairn_core::vmbatch`).
//! - **separate** — a vTPM per VM with its own AK: N quotes per round, each verified on its own
//!   (`cairn_core::quote::verify_quote`).
//!
//! Every swtpm is started and every AK created before the first round; one untimed warm-up round
//! of each side follows, then the timed rounds alternate between the sides so that noise on a
//! shared machine falls on both. Per side it reports the agent's wall and CPU time to produce the
//! evidence, the TPMs' CPU (the swtpm processes, read from /proc around the agent side), and the
//! verifier's wall and CPU — median and best of the rounds — and the separate / batched ratios.
//! Everything runs on one thread, one quote after another, so wall time is the one-core view.

mod batched;
mod cost;
mod cpu;
mod separate;
mod tpms;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail};
use cairn_core::vmbatch::MAX_BATCH;
use cairn_core::HashAlg;
use cairn_tpm::AkAlg;
use clap::Args;
use serde_json::json;

use batched::{Host, Verdict, HOST_PCRS};
use cost::{ratio, report, RoundCost};
use separate::{Vtpms, VM_PCRS};
use tpms::{start_many, Attester};

/// Arguments of `cairn bench vm-batch`.
#[derive(Args)]
pub struct VmBatchArgs {
    /// VMs on the host (and vTPMs started for the separate side).
    #[arg(long, default_value_t = 50)]
    vms: u32,
    /// Timed rounds per side (median and best are reported).
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// AK algorithm of every TPM: rsa2048-rsassa, rsa2048-rsapss, ecc-p256-ecdsa, …
    #[arg(long, default_value = "rsa2048-rsassa")]
    ak_alg: String,
    /// Threads starting the swtpm processes and creating their AKs (setup only, never timed).
    #[arg(long, default_value_t = 2)]
    setup_threads: usize,
    /// Print JSON (the default; accepted for symmetry with the other benches).
    #[arg(long)]
    json: bool,
}

/// The verifier's nonce for `round` and `vm` (20 bytes, as a Keylime verifier sends).
fn nonce(round: u32, vm: u32) -> Vec<u8> {
    let h = HashAlg::Sha256.hash_parts(&[b"cairn bench vm-batch", &round.to_be_bytes(), &vm.to_be_bytes()]);
    h.as_bytes().iter().take(20).copied().collect()
}

impl VmBatchArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let _ = self.json;
        let n = self.vms;
        if n == 0 || n as usize > MAX_BATCH {
            bail!("--vms must be between 1 and {MAX_BATCH}");
        }
        let alg = AkAlg::from_name(&self.ak_alg).ok_or_else(|| anyhow!("unknown --ak-alg {:?}", self.ak_alg))?;
        let rounds = self.rounds.max(1);
        let dir = tempfile::Builder::new().prefix("cairn-bench-vm-batch-").tempdir()?;

        let t = Instant::now();
        eprintln!("starting the host swtpm and {n} vTPM swtpm processes, creating {} AKs …", n + 1);
        let host = Attester::start(&dir.path().join("host"), alg)?;
        let vtpms = start_many(dir.path(), "vtpm", n as usize, alg, self.setup_threads)?;
        let setup_s = t.elapsed().as_secs_f64();
        eprintln!("setup done in {setup_s:.1} s");
        let mut host = Host::launch(host, n)?;
        let mut vtpms = Vtpms::new(vtpms)?;

        let nonces = |round: u32| (0..n).map(|i| nonce(round, i)).collect::<Vec<_>>();
        eprintln!("warm-up round …");
        host.round(&nonce(0, u32::MAX))?;
        vtpms.round(&nonces(0))?;

        let (mut bat, mut sep) = (Vec::<RoundCost>::new(), Vec::<RoundCost>::new());
        let mut verdict = Verdict::default();
        let mut separate_verified = u32::MAX;
        for r in 1..=rounds {
            let (b, v) = host.round(&nonce(r, u32::MAX))?;
            let (s, verified) = vtpms.round(&nonces(r))?;
            eprintln!(
                "round {r}/{rounds}: batched {:.2} ms wall, {:.2} ms CPU; separate {:.2} ms wall, {:.2} ms CPU",
                b.total_wall() as f64 / 1e6,
                b.total_cpu() as f64 / 1e6,
                s.total_wall() as f64 / 1e6,
                s.total_cpu() as f64 / 1e6
            );
            bat.push(b);
            sep.push(s);
            verdict = v;
            separate_verified = separate_verified.min(verified);
        }

        let mut batched = report(&bat);
        batched["tpms"] = json!(1);
        batched["quotes_per_round"] = json!(1);
        batched["pcrs"] = json!(HOST_PCRS);
        batched["verified"] = json!({
            "quotes": 1,
            "proved": verdict.proved,
            "judged_ok": verdict.judged_ok,
            "unclaimed": verdict.unclaimed,
        });
        batched["leaf_bytes"] = json!(verdict.leaf_bytes);
        batched["proof_bytes"] = json!(verdict.proof_bytes);
        let mut separate = report(&sep);
        separate["tpms"] = json!(vtpms.tpm_pids().len());
        separate["quotes_per_round"] = json!(n);
        separate["pcrs"] = json!(VM_PCRS);
        separate["verified"] = json!({ "quotes": separate_verified });
        let out = json!({
            "bench": "vm-batch",
            "vms": n,
            "rounds": rounds,
            "warmup_rounds": 1,
            "ak_alg": alg.name(),
            "setup_s": (setup_s * 10.0).round() / 10.0,
            "measured": {
                "agent": "this process (cairn, libtss2, TCTI): evidence assembly, tree and proofs (batched), \
                          TPM connection opened per quote, TPM2_PCR_Read + TPM2_Quote, PCR blob encoding; \
                          one thread, quotes one after another",
                "tpm": "CPU of the swtpm process(es) during the agent side (/proc/PID/task/*/schedstat)",
                "verifier": "this process: batched = verify_batch_quote + check_batch + judge_leaf for every VM; \
                             separate = verify_quote per VM (keys prepared once, clock history kept)",
                "round": "agent + verifier wall; agent + tpm + verifier CPU",
                "not_included": "setup (swtpm start, AK creation, leaf digests computed at launch), network",
            },
            "batched": batched,
            "separate": separate,
            "ratio": {
                "wall": ratio(&sep, &bat, RoundCost::total_wall),
                "cpu": ratio(&sep, &bat, RoundCost::total_cpu),
                "agent_wall": ratio(&sep, &bat, |r| r.agent_wall),
                "tpm_cpu": ratio(&sep, &bat, |r| r.tpm_cpu),
                "verifier_cpu": ratio(&sep, &bat, |r| r.verifier_cpu),
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        drop(vtpms);
        drop(host);
        Ok(ExitCode::SUCCESS)
    }
}
