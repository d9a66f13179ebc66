//! `cairn bench …`: benchmarks that print JSON. Targets live here, never in timed tests.

pub mod fleet;
mod hvm;
mod keyrelease;
mod logs;
mod quote_material;
mod quote_verify;
mod sim;
mod vm_batch;

use std::process::ExitCode;

use clap::Subcommand;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Quote verifications per second per core (RSA-2048, ECDSA P-256, SM2): the whole check
    /// (parse, signature, nonce, PCR digest) against the bare signature check alone.
    QuoteVerify(quote_verify::QuoteVerifyArgs),
    /// IMA replay and full-digest policy appraisal of a synthetic ima-ng log (entries/s).
    Ima(logs::ImaBenchArgs),
    /// UEFI event log parse + replay (µs per log, records/s).
    Eventlog(logs::EventlogBenchArgs),
    /// Time from `cairn node add --payload` to the agent holding the bootstrap key (local cluster on swtpm).
    Keyrelease(keyrelease::KeyReleaseArgs),
    /// The verifier under a simulated fleet (software TPM identities, genuine quotes, growing IMA
    /// logs): attestations/s, verifier CPU per attestation, round latency, memory, detection latency.
    Fleet(fleet::FleetArgs),
    /// Host-mode measurement cost: µs per MiB of code read from process memory (needs root).
    Hvm(hvm::HvmBenchArgs),
    /// The simulated fleet alone, for any verifier (Keylime's too): agents JSON, control endpoint.
    Sim(sim::SimArgs),
    /// One attestation round for N VMs on real swtpm: one batched host quote over a Merkle root
    /// against a quote per VM from its own vTPM (agent, TPM and verifier CPU, wall time).
    VmBatch(vm_batch::VmBatchArgs),
}

impl BenchCommand {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            BenchCommand::QuoteVerify(a) => a.run(),
            BenchCommand::Ima(a) => a.run(),
            BenchCommand::Eventlog(a) => a.run(),
            BenchCommand::Keyrelease(a) => a.run(),
            BenchCommand::Fleet(a) => a.run(),
            BenchCommand::Hvm(a) => a.run(),
            BenchCommand::Sim(a) => a.run(),
            BenchCommand::VmBatch(a) => a.run(),
        }
    }
}
