//! `cairn hvm measure`: one host-mode measurement round, here and now, printed — what the agent
//! would log for the selected processes, with what it cost (µs per MiB of code read from memory).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use cairn_agent::hvm::procs::{self, Process};
use cairn_agent::hvm::{Measurer, Selector, Stats, DEFAULT_SELECTORS};
use cairn_core::hvm::entry::escape_path;
use cairn_core::hvm::{Measurement, Pid};
use cairn_core::HashAlg;
use clap::{Args, Subcommand};
use serde_json::json;

/// Hypervisor dynamic measurement.
#[derive(Subcommand)]
pub enum HvmCommand {
    /// Measure processes' executable mappings once: code in memory against the mapped files.
    Measure(MeasureArgs),
}

impl HvmCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            HvmCommand::Measure(a) => a.run(),
        }
    }
}

/// Arguments of `cairn hvm measure`.
#[derive(Args)]
#[command(after_help = "\
Exit codes: 0 every mapping's code matches its file, 1 some mapping is modified, 2 usage or I/O error.
Needs root (ptrace rights over the processes). The cost line (stderr) is what a host-mode round
costs the agent once files are cached: µs per MiB of code read from process memory.")]
pub struct MeasureArgs {
    /// Measure this process (repeatable).
    #[arg(long, value_name = "PID", conflicts_with = "exe")]
    pid: Vec<u32>,
    /// Measure processes whose executable matches this glob (repeatable) [default: qemu-system-*,
    /// swtpm, libvirtd].
    #[arg(long, value_name = "GLOB")]
    exe: Vec<String>,
    /// Print JSON.
    #[arg(long, conflicts_with = "list")]
    json: bool,
    /// Print the lines exactly as a host-mode agent logs them (hypervisor measurement list format).
    #[arg(long)]
    list: bool,
    /// The PCR the --list lines name.
    #[arg(long, value_name = "PCR", default_value_t = cairn_agent::hvm::DEFAULT_PCR, requires = "list")]
    pcr: u8,
}

/// The processes the arguments select.
pub fn selected(pids: &[u32], exe: &[String]) -> anyhow::Result<Vec<Process>> {
    let root = Path::new("/proc");
    if !pids.is_empty() {
        let mut out = Vec::new();
        for p in pids {
            let Some(pid) = Pid::new(*p) else { bail!("{p} is not a process id") };
            match procs::by_pid(root, pid) {
                Some(x) => out.push(x),
                None => bail!("no process {p} (or no right to read its executable)"),
            }
        }
        return Ok(out);
    }
    let patterns: Vec<String> = if exe.is_empty() { DEFAULT_SELECTORS.iter().map(|s| (*s).to_owned()).collect() } else { exe.to_vec() };
    let selectors = patterns.iter().map(|p| Selector::new(p).ok_or_else(|| anyhow::anyhow!("empty --exe pattern"))).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(procs::select(root, &selectors, None))
}

/// µs per MiB of `bytes` in `micros`.
pub fn per_mib(micros: f64, bytes: u64) -> f64 {
    if bytes == 0 {
        0.0
    } else {
        micros / (bytes as f64 / 1_048_576.0)
    }
}

fn entry_json(m: &Measurement) -> serde_json::Value {
    json!({
        "pid": m.pid.get(),
        "exe": escape_path(&m.exe),
        "file": escape_path(&m.file),
        "range": m.range.to_string(),
        "offset": format!("{:x}", m.offset),
        "mem_digest": format!("sha256:{}", m.mem.to_hex()),
        "disk_digest": format!("sha256:{}", m.disk.to_hex()),
        "file_digest": format!("sha256:{}", m.file_digest.to_hex()),
        "verdict": m.verdict().as_str(),
    })
}

fn cost_json(s: &Stats, cold_us: f64, warm_us: f64) -> serde_json::Value {
    json!({
        "processes": s.processes,
        "mappings": s.mappings,
        "skipped": s.skipped,
        "code_bytes": s.mem_bytes,
        "file_bytes_hashed_cold": s.file_bytes,
        "cold_round_us": cold_us.round(),
        "warm_round_us": warm_us.round(),
        "cold_us_per_mib": per_mib(cold_us, s.mem_bytes).round(),
        "warm_us_per_mib": per_mib(warm_us, s.mem_bytes).round(),
    })
}

/// A cold round (files hashed) and a warm one (files cached), as the agent runs them.
pub fn rounds(processes: &[Process]) -> (Vec<Measurement>, Stats, f64, f64) {
    let mut m = Measurer::new(Path::new("/proc"), HashAlg::Sha256);
    let t = Instant::now();
    let out: Vec<Measurement> = processes.iter().flat_map(|p| m.measure(p)).collect();
    let cold = t.elapsed().as_secs_f64() * 1e6;
    let stats = m.take_stats();
    m.end_round();
    let t = Instant::now();
    for p in processes {
        m.measure(p);
    }
    let warm = t.elapsed().as_secs_f64() * 1e6;
    (out, stats, cold, warm)
}

impl MeasureArgs {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let processes = selected(&self.pid, &self.exe)?;
        let (out, stats, cold, warm) = rounds(&processes);
        let modified = out.iter().any(|m| m.mem != m.disk);
        if self.list {
            let Some(pcr) = cairn_core::pcr::PcrIndex::new(self.pcr).filter(|_| self.pcr <= 23) else { bail!("--pcr must be 0 to 23") };
            let mut stdout = std::io::stdout().lock();
            for m in &out {
                std::io::Write::write_all(&mut stdout, m.render(pcr).line.as_bytes())?;
            }
        } else if self.json {
            let report = json!({ "entries": out.iter().map(entry_json).collect::<Vec<_>>(), "cost": cost_json(&stats, cold, warm) });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{:>7} {:<8} {:<29} {:>8} FILE (EXE)", "PID", "VERDICT", "RANGE", "OFFSET");
            for m in &out {
                println!(
                    "{:>7} {:<8} {:<29} {:>8x} {} ({})",
                    m.pid.get(),
                    m.verdict().as_str(),
                    m.range.to_string(),
                    m.offset,
                    escape_path(&m.file),
                    escape_path(&m.exe)
                );
                if m.mem != m.disk {
                    println!("        in memory sha256:{}\n        on disk   sha256:{}", m.mem.to_hex(), m.disk.to_hex());
                }
            }
            eprintln!(
                "{} processes, {} mappings, {:.1} MiB of code read: first round {:.0} µs ({:.0} µs/MiB, files hashed), \
                 next rounds {:.0} µs ({:.0} µs/MiB, files cached){}",
                stats.processes,
                stats.mappings,
                stats.mem_bytes as f64 / 1_048_576.0,
                cold,
                per_mib(cold, stats.mem_bytes),
                warm,
                per_mib(warm, stats.mem_bytes),
                if stats.skipped > 0 { format!("; {} mappings skipped", stats.skipped) } else { String::new() }
            );
        }
        Ok(if modified { ExitCode::from(1) } else { ExitCode::SUCCESS })
    }
}
