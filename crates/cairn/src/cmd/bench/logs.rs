//! `cairn bench ima` and `cairn bench eventlog`: log throughput.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_core::eventlog::{encode, EventLog};
use cairn_core::ima::BankSet;
use cairn_core::policy::runtime::{appraise, AppraisalConfig, AppraisalState, PcrOutcome, RuntimePolicy};
use cairn_core::HashAlg;
use clap::Args;
use serde_json::json;

/// Arguments of `cairn bench ima`.
#[derive(Args)]
pub struct ImaBenchArgs {
    /// Entries in the synthetic ima-ng log (with a policy listing every file's digest).
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Repetitions (the best is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Also write the synthetic log (ascii_runtime_measurements text) here, for other tools to time.
    #[arg(long, value_name = "FILE")]
    write_log: Option<PathBuf>,
    /// Also write its runtime policy (Keylime JSON) here.
    #[arg(long, value_name = "FILE")]
    write_policy: Option<PathBuf>,
}

/// Arguments of `cairn bench eventlog`.
#[derive(Args)]
pub struct EventlogBenchArgs {
    /// Real logs to measure (default: a synthetic 120-record sha1+sha256 log).
    files: Vec<PathBuf>,
    /// Seconds per log.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

impl ImaBenchArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        eprintln!("generating a {}-entry log and its policy …", self.entries);
        let synth = cairn_core::ima::synth::generate(self.entries);
        if let Some(f) = &self.write_log {
            std::fs::write(f, &synth.log).with_context(|| format!("cannot write {}", f.display()))?;
        }
        if let Some(f) = &self.write_policy {
            std::fs::write(f, &synth.policy_json).with_context(|| format!("cannot write {}", f.display()))?;
        }
        let t = Instant::now();
        let policy = RuntimePolicy::from_json(&synth.policy_json)?;
        let policy_parse = t.elapsed();
        let mut results = serde_json::Map::new();
        let mut pcr10 = serde_json::Map::new();
        let bank_sets = [
            ("sha1", BankSet::of(&[HashAlg::Sha1])),
            ("sha256", BankSet::of(&[HashAlg::Sha256])),
            ("sha1+sha256", BankSet::of(&[HashAlg::Sha1, HashAlg::Sha256])),
        ];
        for (name, banks) in bank_sets {
            // As a verifier does: the log is replayed against the quoted PCR 10 of one bank (the
            // SHA-256 one when replayed), here the value the whole log gives.
            let quote_bank = if banks.contains(HashAlg::Sha256) { HashAlg::Sha256 } else { HashAlg::Sha1 };
            let (end, _) = cairn_core::ima::replay::replay(&synth.log, banks)?;
            let quoted =
                end.value(quote_bank).ok_or_else(|| anyhow::anyhow!("the {quote_bank} bank did not replay"))?;
            pcr10.insert(quote_bank.name().into(), json!(quoted.to_hex()));
            // The figures are only meaningful for a log that passes: check once, untimed.
            let check = appraise(
                Some(&policy),
                &AppraisalState::new(banks),
                &synth.log,
                Some(&quoted),
                &AppraisalConfig::default(),
            )?;
            if !check.passed() || check.pcr != (PcrOutcome::Matched { entries: synth.entries as u64 }) {
                anyhow::bail!("the synthetic log does not pass its own policy ({} failures)", check.failures.len());
            }
            let replay = best_of(self.runs, || {
                black_box(cairn_core::ima::replay::replay(&synth.log, banks).ok());
            });
            let appraise_with = |policy: Option<&RuntimePolicy>, two_threads: bool| {
                let config = AppraisalConfig { two_threads, ..AppraisalConfig::default() };
                best_of(self.runs, || {
                    let start = AppraisalState::new(banks);
                    let r = appraise(policy, &start, &synth.log, Some(&quoted), &config);
                    black_box(r.map(|a| a.passed()).ok());
                })
            };
            let structural = appraise_with(None, false);
            let appraisal = appraise_with(Some(&policy), false);
            let appraisal_two = appraise_with(Some(&policy), true);
            let per_sec = |d: Duration| (synth.entries as f64 / d.as_secs_f64()).round();
            let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
            results.insert(
                name.into(),
                json!({
                    "quoted_bank": quote_bank.name(),
                    "replay_ms": ms(replay),
                    "replay_entries_per_sec": per_sec(replay),
                    "replay_and_structural_checks_ms": ms(structural),
                    "replay_and_policy_ms": ms(appraisal),
                    "replay_and_policy_entries_per_sec": per_sec(appraisal),
                    "replay_and_policy_two_threads_ms": ms(appraisal_two),
                    "replay_and_policy_two_threads_entries_per_sec": per_sec(appraisal_two),
                }),
            );
        }
        let out = json!({
            "benchmark": "ima",
            "entries": synth.entries,
            "log_bytes": synth.log.len(),
            "policy_bytes": synth.policy_json.len(),
            "policy_parse_ms": (policy_parse.as_secs_f64() * 1e5).round() / 100.0,
            "threads": 1,
            "pcr10": pcr10,
            "note": "replay_and_policy: replay of the bank(s) against the quoted PCR 10, template-hash check and appraisal of every entry against a policy listing every path with its digest (what a verifier does per round), on one thread; replay_and_policy_two_threads: the same with the PCR extend chain on a second thread (logs of 1 MiB or more: a whole log at first contact, `cairn ima check`); replay_and_structural_checks: one thread, no policy",
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(ExitCode::SUCCESS)
    }
}

impl EventlogBenchArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut logs: Vec<(String, Vec<u8>)> = Vec::new();
        for f in &self.files {
            logs.push((f.display().to_string(), super::super::read(f)?));
        }
        if logs.is_empty() {
            logs.push(("synthetic-120-records-sha1-sha256".into(), encode::synthetic(&[HashAlg::Sha1, HashAlg::Sha256], 120)));
        }
        let mut results = Vec::new();
        for (name, bytes) in &logs {
            let records = EventLog::parse(bytes).map(|l| l.events().len())?;
            let budget = Duration::from_secs_f64(self.seconds);
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < budget {
                for _ in 0..20 {
                    let log = EventLog::parse(black_box(bytes)).ok();
                    black_box(log.map(|l| l.replay()));
                }
                n += 20;
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            results.push(json!({
                "log": name,
                "bytes": bytes.len(),
                "records": records,
                "us_per_parse_and_replay": (us * 100.0).round() / 100.0,
                "records_per_sec": (records as f64 * 1e6 / us).round(),
            }));
        }
        println!("{}", serde_json::to_string_pretty(&json!({ "benchmark": "eventlog", "threads": 1, "results": results }))?);
        Ok(ExitCode::SUCCESS)
    }
}
