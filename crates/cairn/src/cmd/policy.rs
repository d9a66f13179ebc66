//! `cairn policy create …`: turn a real machine's logs (or a root filesystem) into policies in
//! Keylime's formats, which Cairn and Keylime verifiers both accept.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cairn_core::eventlog::EventLog;
use cairn_core::ima::Template;
use cairn_core::policy::measured_boot;
use cairn_core::policy::runtime::RuntimePolicy;
use cairn_core::HashAlg;
use clap::{Args, Subcommand};
use serde_json::json;

use super::read;

/// Policy commands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create a policy.
    #[command(subcommand)]
    Create(CreateCommand),
}

/// What to create.
#[derive(Subcommand)]
pub enum CreateCommand {
    /// A Keylime-format runtime policy from an IMA log or a root filesystem.
    Runtime(RuntimeArgs),
    /// A Keylime-format measured-boot reference state from a UEFI event log.
    MeasuredBoot(MeasuredBootArgs),
}

/// Arguments of `cairn policy create runtime`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["ima_log", "rootfs"]))]
pub struct RuntimeArgs {
    /// Every file digest measured in this IMA log is allowed (ASCII or binary log).
    #[arg(long, value_name = "FILE")]
    ima_log: Option<PathBuf>,
    /// Every regular file under this directory is allowed, with its path relative to it as `/…`.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// File digest algorithm for --rootfs (IMA's ima_hash: sha1, sha256, sha384, sha512, sm3).
    #[arg(long, default_value = "sha256")]
    hash: String,
    /// Exclude paths matching this regular expression (Python re.match semantics); repeatable.
    #[arg(long, value_name = "RE")]
    exclude: Vec<String>,
    /// Write the policy here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Arguments of `cairn policy create measured-boot`.
#[derive(Args)]
pub struct MeasuredBootArgs {
    /// The UEFI event log of a machine in its known-good state.
    #[arg(long, value_name = "FILE")]
    eventlog: PathBuf,
    /// Write the reference state here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl PolicyCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Create(CreateCommand::Runtime(a)) => a.run(),
            PolicyCommand::Create(CreateCommand::MeasuredBoot(a)) => {
                let bytes = read(&a.eventlog)?;
                let log = EventLog::parse(&bytes).with_context(|| format!("{}: log rejected", a.eventlog.display()))?;
                let refstate = measured_boot::generate(&log)
                    .with_context(|| format!("{}: cannot derive a reference state", a.eventlog.display()))?;
                emit(a.out.as_deref(), &refstate.to_json())?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn emit(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => println!("{text}"),
    }
    Ok(())
}

impl RuntimeArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ima_buf: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let add = |map: &mut BTreeMap<String, Vec<String>>, path: String, hex: String| {
            let list = map.entry(path).or_default();
            if !list.contains(&hex) {
                list.push(hex);
            }
        };
        if let Some(log) = &self.ima_log {
            let bytes = read(log)?;
            let entries = cairn_core::ima::parse(&bytes).with_context(|| format!("{}: measurement list rejected", log.display()))?;
            for e in &entries {
                match &e.template {
                    Template::ImaBuf { digest, name, .. } => {
                        add(&mut ima_buf, String::from_utf8_lossy(name).into_owned(), digest.to_hex());
                    }
                    t => {
                        if let (Some(d), Some(p)) = (t.digest(), t.path()) {
                            add(&mut digests, String::from_utf8_lossy(p).into_owned(), d.to_hex());
                        }
                    }
                }
            }
            eprintln!("{} entries read, {} paths allowed", entries.len(), digests.len());
        }
        if let Some(root) = &self.rootfs {
            let alg = HashAlg::from_name(&self.hash).with_context(|| format!("--hash: unknown {:?}", self.hash))?;
            hash_tree(root, alg, &mut |p, h| add(&mut digests, p, h))?;
        }
        let policy = json!({
            "meta": { "version": 1, "generator": 0, "timestamp": timestamp() },
            "release": 0,
            "digests": digests,
            "excludes": self.exclude,
            "keyrings": {},
            "ima": { "ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null },
            "ima-buf": ima_buf,
            "verification-keys": "",
        });
        let text = serde_json::to_string_pretty(&policy)?;
        // What we write must be a policy we (and Keylime's schema) accept.
        RuntimePolicy::from_json(&text).context("the generated policy does not load (bad --exclude?)")?;
        emit(self.out.as_deref(), &text)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Hashes every regular file under `root`, reporting progress on stderr.
fn hash_tree(root: &Path, alg: HashAlg, add: &mut dyn FnMut(String, String)) -> anyhow::Result<()> {
    if !root.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let start = Instant::now();
    let (mut files, mut bytes_total) = (0u64, 0u64);
    let mut stack = vec![root.to_path_buf()];
    let mut buf = vec![0u8; 1 << 16];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                eprintln!("skipping {}: {e}", dir.display());
                continue;
            }
        };
        for entry in rd.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("skipping {}: {e}", path.display());
                    continue;
                }
            };
            let mut h = cairn_core::alg::Hasher::new(alg);
            loop {
                let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                h.update(buf.get(..n).unwrap_or(&[]));
                bytes_total += n as u64;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path);
            add(format!("/{}", rel.display()), h.finish().to_hex());
            files += 1;
            if files % 2000 == 0 {
                eprintln!("  {files} files, {} MiB hashed …", bytes_total >> 20);
            }
        }
    }
    eprintln!("{files} files ({} MiB) hashed in {:.1} s", bytes_total >> 20, start.elapsed().as_secs_f64());
    Ok(())
}

/// "YYYY-MM-DD HH:MM:SS" in UTC, as Keylime writes policy timestamps.
fn timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}
