//! `cairn refdb …`: build a reference database from `.deb` files or a root file system, import
//! update feeds, look digests up, and compute the integrity level an IMA log would give a host.
//! The database and feed formats are documented in `docs/refdb.md`; the level rule in
//! `cairn_core::levels`.

mod build;
mod decompress;
mod deb;
mod feed;
mod hash;
mod query;
mod rootfs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Reference database commands.
#[derive(Subcommand)]
pub enum RefdbCommand {
    /// Hash every file of .deb packages or of a root file system into a reference database.
    Build(build::BuildArgs),
    /// Update feeds: which packages have newer (security) versions.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Which package file has this digest (exit 1 when none).
    Lookup(query::LookupArgs),
    /// The integrity level an IMA log would give a host whose boot passed.
    Level(query::LevelArgs),
}

/// Feed commands.
#[derive(Subcommand)]
pub enum FeedCommand {
    /// Import JSON feeds or Debian Packages indexes (plain, .gz, .xz or .zst).
    Import(feed::ImportArgs),
}

/// The `--db` option every command shares.
#[derive(Args)]
pub struct DbArg {
    /// The reference database file.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
}

impl RefdbCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            RefdbCommand::Build(a) => build::run(a),
            RefdbCommand::Feed(FeedCommand::Import(a)) => feed::import(a),
            RefdbCommand::Lookup(a) => query::lookup(a),
            RefdbCommand::Level(a) => query::level(a),
        }
    }
}
