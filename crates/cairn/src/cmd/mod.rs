//! One module per subcommand group.

pub mod agent;
pub mod bench;
pub mod demo;
pub mod eventlog;
pub mod hvm;
pub mod ima;
pub mod image;
pub mod node;
pub mod node_bootstrap;
pub mod payload_zip;
pub mod placement;
pub mod policy;
pub mod qemu_img;
pub mod quote;
pub mod refdb;
pub mod registrar;
pub mod tpm;
pub mod verifier;
pub mod vtpm;

use std::path::Path;

use anyhow::Context;

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
