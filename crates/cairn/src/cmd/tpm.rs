//! `cairn tpm …`: talking to a TPM.

use std::process::ExitCode;

use clap::Subcommand;

/// TPM commands.
#[derive(Subcommand)]
pub enum TpmCommand {}

impl TpmCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {}
    }
}
