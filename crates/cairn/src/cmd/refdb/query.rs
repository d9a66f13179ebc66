//! `cairn refdb lookup` and `cairn refdb level`: reading a reference database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_core::levels::{compute_level, ima_files, BootVerdict, IntegrityLevel, MeasuredDigest, Reason};
use cairn_core::{Digest, HashAlg};
use cairn_store::RefDb;
use clap::Args;
use serde_json::json;

use super::DbArg;
use crate::cmd::read;

/// Arguments of `cairn refdb lookup`.
#[derive(Args)]
pub struct LookupArgs {
    /// A digest: `alg:hex` (as IMA logs it) or hex alone (sha1 by 40 digits; sha256, then sm3, by 64).
    digest: String,
    #[command(flatten)]
    db: DbArg,
    /// JSON output: an array of {alg, digest, package, version, path}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cairn refdb level`.
#[derive(Args)]
pub struct LevelArgs {
    #[command(flatten)]
    db: DbArg,
    /// An IMA measurement list (ascii_runtime_measurements or binary_runtime_measurements).
    #[arg(long, value_name = "FILE")]
    ima_log: PathBuf,
    /// Exit 1 when the level is below this one.
    #[arg(long, value_name = "LEVEL")]
    min: Option<IntegrityLevel>,
    /// JSON output: {level, files, digests, reasons}.
    #[arg(long)]
    json: bool,
}

/// The digests a lookup string may mean.
fn candidates(text: &str) -> anyhow::Result<Vec<Digest>> {
    let text = text.trim();
    if let Some((alg, hex)) = text.split_once(':') {
        let alg = HashAlg::from_name(alg).with_context(|| format!("unknown algorithm {alg:?}"))?;
        return Ok(vec![Digest::from_hex(alg, hex)?]);
    }
    let raw = hex::decode(text).context("the digest is not hex")?;
    let algs: &[HashAlg] = match raw.len() {
        20 => &[HashAlg::Sha1],
        32 => &[HashAlg::Sha256, HashAlg::Sm3_256],
        48 => &[HashAlg::Sha384],
        64 => &[HashAlg::Sha512],
        n => bail!("a {n}-byte digest matches no algorithm"),
    };
    algs.iter().map(|a| Ok(Digest::from_bytes(*a, &raw)?)).collect()
}

/// Runs a lookup.
pub fn lookup(a: LookupArgs) -> anyhow::Result<ExitCode> {
    let db = RefDb::open(&a.db.db)?;
    let mut hits = Vec::new();
    for d in candidates(&a.digest)? {
        for f in db.lookup(&d)? {
            hits.push((d, f));
        }
    }
    if a.json {
        let j: Vec<_> = hits
            .iter()
            .map(|(d, f)| json!({"alg": d.alg().name(), "digest": d.to_hex(), "package": f.package, "version": f.version, "path": f.path}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        for (_, f) in &hits {
            println!("{} {} {}", f.package, f.version, f.path);
        }
    }
    if hits.is_empty() {
        eprintln!("{}: not in {}", a.digest, a.db.db.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Computes a level.
pub fn level(a: LevelArgs) -> anyhow::Result<ExitCode> {
    let db = RefDb::open(&a.db.db)?;
    let bytes = read(&a.ima_log)?;
    let entries = cairn_core::ima::parse(&bytes).with_context(|| format!("{}: measurement list rejected", a.ima_log.display()))?;
    let files = ima_files(&entries, 0);
    // A log hashed with an algorithm the database lacks makes every file unknown: say why.
    let held = db.algorithms()?;
    if let Some(MeasuredDigest::Known(d)) = files.iter().map(|f| &f.digest).find(|d| match d {
        MeasuredDigest::Known(d) => !held.contains(&d.alg()),
        MeasuredDigest::Unsupported { .. } => false,
    }) {
        eprintln!(
            "note: the log has {} digests, the database holds {:?}: build it with the log's algorithm (e.g. --sm3)",
            d.alg(),
            held.iter().map(|a| a.name()).collect::<Vec<_>>()
        );
    }
    let report = compute_level(&BootVerdict::Trusted, &files, &db, &db)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("level: {} ({} files, {} distinct digests)", report.level, report.files, report.digests);
        for r in &report.reasons {
            println!("  {}", describe(r));
        }
    }
    Ok(match a.min {
        Some(min) if report.level < min => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn describe(r: &Reason) -> String {
    match r {
        Reason::BootUntrusted { reason } => format!("boot_untrusted: {reason}"),
        Reason::DigestNotFound { digest, path, .. } => format!("ima_digest_not_found: {path} {digest}"),
        Reason::SecurityUpdate { package, installed, fixed_in, newest, paths } => format!(
            "ima_pkg_security_updates: {package} {installed} (security fix in {fixed_in}, newest {newest}) {}",
            paths.join(" ")
        ),
        Reason::Update { package, installed, newest, paths } => {
            format!("ima_pkg_not_security_updates: {package} {installed} (newest {newest}) {}", paths.join(" "))
        }
    }
}
