//! `cairn demo`: the local all-in-one demonstration.

use std::process::ExitCode;

use clap::Args;

/// Demo arguments.
#[derive(Args)]
pub struct DemoArgs {}

impl DemoArgs {
    /// Runs the demo.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("the demo needs the TPM layer, which is not built yet")
    }
}
