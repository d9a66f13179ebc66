//! `cairn demo`: the local all-in-one demonstration.
//!
//! By default the whole system on one machine (see [`fleet`]): registrar and verifier on one
//! SQLite file, three agents on three software TPMs with their own IMA logs, all attested; then
//! one node is tampered with and the detection, its reason and the signed revocation are shown.
//! `--quote-only` runs the smaller first demo: one TPM quote judged by the verifier's core.

pub mod cluster;
mod fleet;
mod quote;

use std::process::ExitCode;

use clap::Args;

/// Demo arguments.
#[derive(Args)]
pub struct DemoArgs {
    /// Only the one-quote demo (a fresh swtpm, EK, AK, a quote and its check).
    #[arg(long)]
    quote_only: bool,
    /// Run the story once and exit (0 when every step held) instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Number of agents (software TPMs).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=16))]
    agents: u16,
    /// The verifier's quote interval, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    #[command(flatten)]
    quote: quote::QuoteDemoArgs,
}

impl DemoArgs {
    /// Runs the demo.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.quote_only {
            return self.quote.run();
        }
        fleet::run(fleet::Options {
            once: self.once,
            agents: usize::from(self.agents),
            interval_ms: self.interval_ms,
            state_dir: self.quote.state_dir,
            json: self.quote.json,
        })
    }
}
