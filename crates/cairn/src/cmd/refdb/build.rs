//! `cairn refdb build`: hash packages' files into a reference database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_core::HashAlg;
use cairn_store::RefDb;
use clap::Args;

use super::hash::Progress;
use super::{deb, rootfs};

/// Arguments of `cairn refdb build`.
#[derive(Args)]
pub struct BuildArgs {
    /// .deb files to read (name, version and architecture from each package's control file).
    #[arg(long, value_name = "FILE.deb", num_args = 1.., required_unless_present = "rootfs", conflicts_with = "rootfs")]
    deb: Vec<PathBuf>,
    /// A root file system to read (packages from its dpkg database, if it has one).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// The database to create or add to.
    #[arg(long, value_name = "DB")]
    out: PathBuf,
    /// Also hash with SM3 (for hosts whose IMA hashes files with sm3).
    #[arg(long)]
    sm3: bool,
}

/// Runs the build.
pub fn run(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let mut algs = vec![HashAlg::Sha1, HashAlg::Sha256];
    if a.sm3 {
        algs.push(HashAlg::Sm3_256);
    }
    let db = RefDb::open(&a.out)?;
    let mut progress = Progress::new(a.deb.len() as u64);
    if let Some(root) = &a.rootfs {
        let groups = rootfs::read_rootfs(root, &algs, &mut progress)?;
        for (owner, files) in &groups {
            db.add_package(&rootfs::package(owner, root), files)?;
            progress.package();
        }
    } else {
        for path in &a.deb {
            let (pkg, files) = deb::read_deb(path, &algs, &mut progress)?;
            db.add_package(&pkg, &files).with_context(|| format!("{}: cannot store", path.display()))?;
            progress.package();
        }
    }
    let stats = db.stats()?;
    progress.report(&format!(
        "done → {} ({} package versions, {} digest rows)",
        a.out.display(),
        stats.packages,
        stats.digests
    ));
    Ok(ExitCode::SUCCESS)
}
