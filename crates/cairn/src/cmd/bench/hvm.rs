//! `cairn bench hvm`: the cost of a host-mode measurement round, in µs per MiB of code read from
//! process memory — first round (files hashed too) and the best of later rounds (files cached).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::cmd::hvm::{per_mib, rounds, selected};

/// Arguments of `cairn bench hvm`.
#[derive(Args)]
pub struct HvmBenchArgs {
    /// Processes to measure [default: this benchmark itself].
    #[arg(long, value_name = "PID")]
    pid: Vec<u32>,
    /// Executable globs to measure instead.
    #[arg(long, value_name = "GLOB")]
    exe: Vec<String>,
    /// Warm rounds (the best is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

impl HvmBenchArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let pids = if self.pid.is_empty() && self.exe.is_empty() { vec![std::process::id()] } else { self.pid };
        let processes = selected(&pids, &self.exe)?;
        let (_, stats, cold, _) = rounds(&processes);
        let warm = (0..self.runs.max(1)).map(|_| rounds(&processes).3).fold(f64::INFINITY, f64::min);
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "bench": "hvm",
                "processes": stats.processes,
                "mappings": stats.mappings,
                "code_mib": stats.mem_bytes as f64 / 1_048_576.0,
                "cold_round_us": cold.round(),
                "cold_us_per_mib": per_mib(cold, stats.mem_bytes).round(),
                "warm_round_us": warm.round(),
                "warm_us_per_mib": per_mib(warm, stats.mem_bytes).round(),
            }))?
        );
        Ok(ExitCode::SUCCESS)
    }
}
