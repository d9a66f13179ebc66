//! `cairn eventlog …`: read a UEFI / TCG PC Client event log natively (no tpm2_eventlog).
//!
//! `replay` prints the final PCR values of every bank (exit 1 with the reason when the log is
//! rejected); `show` prints every record readably.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_core::eventlog::EventLog;
use clap::{Args, Subcommand};
use serde_json::json;

use super::read;

/// Event-log commands.
#[derive(Subcommand)]
pub enum EventlogCommand {
    /// Replay a log to its final PCR values per bank. Exit 1 when the log is rejected.
    Replay(ReplayArgs),
    /// Print every record: index, PCR, type, digests and decoded content.
    Show(ShowArgs),
}

/// Arguments of `cairn eventlog replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// The binary log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements).
    file: PathBuf,
    /// JSON output: {"events": N, "banks": {"sha256": {"0": "hex", …}, …}}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cairn eventlog show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The binary log.
    file: PathBuf,
}

impl EventlogCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            EventlogCommand::Replay(a) => {
                let bytes = read(&a.file)?;
                let log = match EventLog::parse(&bytes) {
                    Ok(l) => l,
                    Err(e) => return Ok(rejected(&a.file, &e.to_string(), a.json)),
                };
                let pcrs = log.replay();
                let mut banks = serde_json::Map::new();
                for bank in pcrs.banks() {
                    let mut m = serde_json::Map::new();
                    for (pcr, v) in bank.iter_touched() {
                        m.insert(pcr.to_string(), json!(v.to_hex()));
                    }
                    // A bank no record extended (a header algorithm the records do not carry) is left out.
                    if !m.is_empty() {
                        banks.insert(bank.alg().name().to_string(), serde_json::Value::Object(m));
                    }
                }
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&json!({ "events": log.events().len(), "banks": banks }))?);
                } else {
                    println!("{} records ({:?})", log.events().len(), log.format());
                    for bank in pcrs.banks() {
                        for (pcr, v) in bank.iter_touched() {
                            println!("{}:{pcr:<2} {v}", bank.alg());
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            EventlogCommand::Show(a) => {
                let bytes = read(&a.file)?;
                let log = match EventLog::parse(&bytes) {
                    Ok(l) => l,
                    Err(e) => return Ok(rejected(&a.file, &e.to_string(), false)),
                };
                for ev in log.events() {
                    println!("#{:<4} PCR {:<2} {}", ev.index(), ev.pcr_raw(), ev.event_type());
                    for d in ev.digests().iter() {
                        println!("        {}:{}", d.alg(), d.to_hex());
                    }
                    match ev.decode() {
                        Ok(data) => println!("        {data:?}"),
                        Err(e) => println!("        (data not decodable: {e})"),
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn rejected(file: &std::path::Path, reason: &str, json: bool) -> ExitCode {
    eprintln!("{}: log rejected: {reason}", file.display());
    if json {
        println!("{}", json!({ "rejected": true, "reason": reason }));
    }
    ExitCode::from(1)
}
