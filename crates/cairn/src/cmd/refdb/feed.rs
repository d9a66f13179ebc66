//! `cairn refdb feed import`: merge a JSON feed or a Debian `Packages` index into a database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_core::levels::{parse_json_feed, parse_packages_index, Suite};
use cairn_store::RefDb;
use clap::Args;

use super::decompress::Compression;
use super::DbArg;
use crate::cmd::read;

/// Arguments of `cairn refdb feed import`.
#[derive(Args)]
pub struct ImportArgs {
    /// A JSON feed, or a Packages index (plain, .gz, .xz or .zst).
    file: PathBuf,
    #[command(flatten)]
    db: DbArg,
    /// Which suite a Packages index comes from (default: from the file name, e.g.
    /// `…bookworm-security…` or `…noble-updates…`).
    #[arg(long)]
    suite: Option<Suite>,
    /// Forget the stored feed first (the file replaces it instead of adding to it).
    #[arg(long)]
    replace: bool,
}

/// Runs the import.
pub fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let raw = read(&a.file)?;
    let bytes = Compression::sniff(&raw)
        .decode_all(&raw)
        .with_context(|| format!("{}: cannot decompress", a.file.display()))?;
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let (feed, kind) = if is_json {
        (parse_json_feed(&bytes).with_context(|| format!("{}", a.file.display()))?, "JSON feed".to_string())
    } else {
        let name = a.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let suite = a.suite.or_else(|| Suite::from_file_name(&name)).with_context(|| {
            format!("{}: a Packages index, but its name tells no suite: give --suite security|updates", a.file.display())
        })?;
        let text = String::from_utf8(bytes).with_context(|| format!("{}: not text", a.file.display()))?;
        let feed = parse_packages_index(&text, suite).with_context(|| format!("{}", a.file.display()))?;
        (feed, format!("Packages index ({suite} suite)"))
    };
    let db = RefDb::open(&a.db.db)?;
    if a.replace {
        db.clear_feed()?;
    }
    let n = db.import_feed(&feed)?;
    eprintln!("refdb feed: {n} packages from {} {kind} → {}", a.file.display(), a.db.db.display());
    Ok(ExitCode::SUCCESS)
}
