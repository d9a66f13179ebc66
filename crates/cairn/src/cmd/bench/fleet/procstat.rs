//! Reading a process's CPU time and memory from /proc, for the verifier under test.

/// CPU seconds (user + system) and resident memory of a process at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// VmRSS, bytes.
    pub rss_bytes: u64,
}

/// Samples process `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let cpu_seconds = (ticks(11) + ticks(12)) as f64 / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(ProcSample { cpu_seconds, rss_bytes: rss_kib * 1024 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn this_process_has_cpu_and_memory() {
        let s = super::sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
