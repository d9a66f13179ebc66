//! `cairn ima …`: replay and appraise IMA measurement lists (ASCII or binary, told apart by content).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_core::ima::{BankSet, ReplayConfig, ReplayState, Replayer};
use cairn_core::policy::runtime::{allowlist, appraise, AppraisalConfig, AppraisalState, PcrOutcome, RuntimePolicy};
use cairn_core::{Digest, HashAlg};
use clap::{Args, Subcommand};
use serde_json::json;

use super::read;

/// IMA commands.
#[derive(Subcommand)]
pub enum ImaCommand {
    /// Replay a measurement list to PCR 10 (sha1 from the logged template hashes; other banks where
    /// the template data can be rebuilt).
    Replay(ReplayArgs),
    /// Appraise a measurement list against a runtime policy (Keylime JSON, or the older flat
    /// allowlist format); with --pcr10 the replay must also reach that value.
    Check(CheckArgs),
}

/// Arguments of `cairn ima replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// ascii_runtime_measurements or binary_runtime_measurements.
    file: PathBuf,
    /// JSON output: {"entries": N, "templates": {…}, "pcr10": {"sha1": …, "sha256": …}}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cairn ima check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Runtime policy: Keylime JSON, or a flat allowlist (`<hex digest>  <path>` per line).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Exclude list for a flat allowlist (one regex per line).
    #[arg(long, value_name = "FILE")]
    exclude_list: Option<PathBuf>,
    /// The measurement list.
    file: PathBuf,
    /// The quoted PCR 10 value (hex); some prefix of the log must replay to it.
    #[arg(long, value_name = "HEX")]
    pcr10: Option<String>,
    /// The bank of --pcr10 (default: from its length: 20 bytes sha1, 32 sha256, 48 sha384, 64 sha512).
    #[arg(long, value_name = "ALG")]
    bank: Option<String>,
    /// Fail on violation (ToMToU / open-writers) entries.
    #[arg(long)]
    fail_on_violations: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl ImaCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ImaCommand::Replay(a) => replay(a),
            ImaCommand::Check(a) => check(a),
        }
    }
}

fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let bytes = read(&a.file)?;
    let entries = match cairn_core::ima::parse(&bytes) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{}: measurement list rejected: {e}", a.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let mut templates: BTreeMap<String, u64> = BTreeMap::new();
    for e in &entries {
        *templates.entry(String::from_utf8_lossy(e.template_name).into_owned()).or_default() += 1;
    }
    let mut state = ReplayState::new(BankSet::ALL);
    let summary = Replayer::new(ReplayConfig::default())
        .replay(&mut state, &bytes)
        .with_context(|| format!("{}: replay failed", a.file.display()))?;
    let mut pcr10 = serde_json::Map::new();
    for alg in HashAlg::ALL {
        if let Some(v) = state.value(alg) {
            pcr10.insert(alg.name().to_string(), json!(v.to_hex()));
        }
    }
    if a.json {
        let j = json!({
            "entries": summary.entries,
            "templates": templates,
            "violations": summary.violations,
            "template_hash_mismatches": summary.template_hash_mismatches,
            "pcr10": pcr10,
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("{} entries {:?}, {} violations", summary.entries, templates, summary.violations);
        for (alg, v) in &pcr10 {
            println!("pcr10 {alg}: {}", v.as_str().unwrap_or_default());
        }
        if !summary.template_hash_mismatches.is_empty() {
            println!("template hash does not match the fields at entries {:?}", summary.template_hash_mismatches);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a runtime policy: Keylime JSON, or the flat allowlist format (+ exclude list).
pub fn load_policy(path: &std::path::Path, exclude_list: Option<&std::path::Path>) -> anyhow::Result<RuntimePolicy> {
    let text = String::from_utf8(read(path)?).with_context(|| format!("{}: not text", path.display()))?;
    let excludes = match exclude_list {
        Some(p) => Some(String::from_utf8(read(p)?).with_context(|| format!("{}: not text", p.display()))?),
        None => None,
    };
    if text.trim_start().starts_with('{') {
        RuntimePolicy::from_json(&text).with_context(|| format!("{}: not a valid runtime policy", path.display()))
    } else {
        allowlist::from_flat(&text, excludes.as_deref()).with_context(|| format!("{}: not a valid allowlist", path.display()))
    }
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(&a.policy, a.exclude_list.as_deref())?;
    let bytes = read(&a.file)?;
    let quoted = match &a.pcr10 {
        Some(h) => {
            let raw = hex::decode(h.trim()).context("--pcr10 is not hex")?;
            let alg = match &a.bank {
                Some(b) => HashAlg::from_name(b).with_context(|| format!("--bank: unknown {b:?}"))?,
                None => match raw.len() {
                    20 => HashAlg::Sha1,
                    32 => HashAlg::Sha256,
                    48 => HashAlg::Sha384,
                    64 => HashAlg::Sha512,
                    n => anyhow::bail!("--pcr10 has {n} bytes: give --bank"),
                },
            };
            Some(Digest::from_bytes(alg, &raw)?)
        }
        None => None,
    };
    let config = AppraisalConfig { fail_on_violations: a.fail_on_violations, two_threads: true, ..AppraisalConfig::default() };
    let result = match appraise(Some(&policy), &AppraisalState::new(BankSet::ALL), &bytes, quoted.as_ref(), &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: measurement list rejected: {e}", a.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    let pcr = match &result.pcr {
        PcrOutcome::NotChecked => json!("not checked"),
        PcrOutcome::Matched { entries } => json!({ "matched_at_entry": entries }),
        other => json!(format!("{other:?}")),
    };
    if a.json {
        let failures: Vec<_> = result
            .failures
            .iter()
            .map(|f| json!({ "entry": f.entry, "template": f.template, "path": f.path, "reason": f.to_string() }))
            .collect();
        let j = json!({ "pass": result.passed(), "entries": result.entries, "pcr10": pcr, "failures": failures });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        for f in &result.failures {
            println!("FAIL {f}");
        }
        println!("{}: {} entries, pcr10 {pcr}", if result.passed() { "pass" } else { "fail" }, result.entries);
    }
    Ok(if result.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
