//! `cairn`: one binary for every Cairn role and tool.
//!
//! Subcommands are thin: they read files, flags and the network, hand bytes to `cairn-core` for
//! every judgement, and print. `main` prints an error chain once and maps outcomes to exit codes.

#![allow(unreachable_pub)] // a binary: `pub` marks what a module offers its siblings

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cairn — hardware-rooted trust for IaaS clouds, layer by layer.
#[derive(Parser)]
#[command(name = "cairn", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Keylime-compatible agent: enrol at a registrar, serve quotes over mutual TLS.
    Agent(cmd::agent::AgentArgs),
    /// Check TPM quotes.
    #[command(subcommand)]
    Quote(cmd::quote::QuoteCommand),
    /// Work with a TPM (hardware or swtpm): make quotes, read and extend PCRs.
    #[command(subcommand)]
    Tpm(cmd::tpm::TpmCommand),
    /// Read and replay UEFI / TCG event logs.
    #[command(subcommand)]
    Eventlog(cmd::eventlog::EventlogCommand),
    /// Replay and appraise IMA measurement lists.
    #[command(subcommand)]
    Ima(cmd::ima::ImaCommand),
    /// Hypervisor dynamic measurement: measure processes' code against their files, once.
    #[command(subcommand)]
    Hvm(cmd::hvm::HvmCommand),
    /// Create policies from a machine's logs or files.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    /// Benchmarks; each prints JSON.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Run the registrar: agents register (EK, EK certificate, AK) and activate; admins list over mTLS.
    Registrar(cmd::registrar::RegistrarArgs),
    /// Run the verifier: attest every added node continuously; signed revocations on failure.
    Verifier(cmd::verifier::VerifierArgs),
    /// Tenant commands: add nodes to the verifier, read their status, reactivate, delete.
    Node(cmd::node::NodeArgs),
    /// Placement by integrity level: hosts that qualify now; Kubernetes labels and taints.
    Placement(cmd::placement::PlacementArgs),
    /// Reference databases (digest → package file) and update feeds, for integrity levels.
    #[command(subcommand)]
    Refdb(cmd::refdb::RefdbCommand),
    /// Trusted VM launch: encrypt a VM image whose secret only an attested host receives; open it there.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// vTPMs for VMs: one host-managed swtpm each, its state key sealed to the host TPM.
    #[command(subcommand)]
    Vtpm(cmd::vtpm::VtpmCommand),
    /// Run the local demo: a fresh swtpm, EK and AK, a quote, and its verification.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(a) => a.run(),
        Command::Quote(c) => c.run(),
        Command::Tpm(c) => c.run(),
        Command::Bench(c) => c.run(),
        Command::Eventlog(c) => c.run(),
        Command::Ima(c) => c.run(),
        Command::Hvm(c) => c.run(),
        Command::Policy(c) => c.run(),
        Command::Demo(a) => a.run(),
        Command::Registrar(a) => a.run(),
        Command::Verifier(a) => a.run(),
        Command::Node(a) => a.run(),
        Command::Image(c) => c.run(),
        Command::Refdb(c) => c.run(),
        Command::Placement(a) => a.run(),
        Command::Vtpm(c) => c.run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
