//! `cairn refdb feed import`: merge a JSON feed or a Debian `Packages` index into a database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cairn_core::levels::{parse_json_feed, parse_packages_index, Feed, Suite};
use cairn_store::RefDb;
use clap::Args;

use super::decompress::Compression;
use super::DbArg;
use crate::cmd::read;

/// Arguments of `cairn refdb feed import`.
#[derive(Args)]
pub struct ImportArgs {
    /// JSON feeds or Packages indexes (plain, .gz, .xz or .zst), imported in one transaction each.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    db: DbArg,
    /// Which suite the Packages indexes come from (default: from the file name, e.g.
    /// `…bookworm-security…` or `…noble-updates…`).
    #[arg(long)]
    suite: Option<Suite>,
    /// Forget the stored feed first (the file replaces it instead of adding to it).
    #[arg(long)]
    replace: bool,
}

/// Runs the import: every file is read and checked before the database is touched.
pub fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut feeds = Vec::new();
    for file in &a.files {
        feeds.push(read_feed(file, a.suite)?);
    }
    let db = RefDb::open(&a.db.db)?;
    if a.replace {
        db.clear_feed()?;
    }
    for (file, (feed, kind)) in a.files.iter().zip(&feeds) {
        let n = db.import_feed(feed)?;
        eprintln!("refdb feed: {n} packages from {} {kind} → {}", file.display(), a.db.db.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one feed file: JSON, or a Packages index of `suite` (or the suite its name tells).
fn read_feed(file: &Path, suite: Option<Suite>) -> anyhow::Result<(Feed, String)> {
    let raw = read(file)?;
    let bytes = Compression::sniff(&raw)
        .decode_all(&raw)
        .with_context(|| format!("{}: cannot decompress", file.display()))?;
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if is_json {
        let feed = parse_json_feed(&bytes).with_context(|| format!("{}", file.display()))?;
        return Ok((feed, "JSON feed".to_string()));
    }
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suite = suite.or_else(|| Suite::from_file_name(&name)).with_context(|| {
        format!("{}: a Packages index, but its name tells no suite: give --suite security|updates", file.display())
    })?;
    let text = String::from_utf8(bytes).with_context(|| format!("{}: not text", file.display()))?;
    let feed = parse_packages_index(&text, suite).with_context(|| format!("{}", file.display()))?;
    Ok((feed, format!("Packages index ({suite} suite)")))
}
