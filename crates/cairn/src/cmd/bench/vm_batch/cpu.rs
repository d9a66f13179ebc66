//! CPU time of processes, from /proc, to the nanosecond where the kernel allows.
//!
//! `/proc/PID/task/*/schedstat` starts with each thread's run time in nanoseconds; summed over the
//! threads it is the process's CPU time, precise enough for one TPM command (`/proc/PID/stat`
//! counts in clock ticks, 10 ms on most kernels — longer than a whole batched round). Where
//! schedstat is missing, the ticks are used instead.
//!
//! The kernel brings a *running* thread's schedstat up to date only at a tick or a switch, so a
//! process reading its own would miss up to a tick of its latest work. Reading `/proc/self/stat`
//! first makes the kernel account the reader's run time up to now (it sums the group's CPU time
//! for that file), and the schedstat read right after is current. The swtpm processes are asleep
//! when read (they answered their last command), so theirs is always current.

/// CPU nanoseconds process `pid` has run so far (its live threads), or `None` if it is gone.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.filter_map(Result::ok) {
        let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// As [`cpu_ns`], falling back to `/proc/PID/stat`'s utime + stime where schedstat is missing.
pub fn process_cpu_ns(pid: u32) -> u64 {
    cpu_ns(pid).unwrap_or_else(|| stat_ticks_ns(pid).unwrap_or(0))
}

/// utime + stime of `pid` from `/proc/PID/stat`, in nanoseconds.
fn stat_ticks_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some((ticks(11)? + ticks(12)?) * 1_000_000_000 / hz)
}

/// This process's CPU nanoseconds so far, up to this call.
pub fn self_cpu_ns() -> u64 {
    let pid = std::process::id();
    // Reading stat updates the running thread's accounting (see the module docs).
    let ticks = stat_ticks_ns(pid);
    cpu_ns(pid).or(ticks).unwrap_or(0)
}

/// The summed CPU nanoseconds of `pids`.
pub fn total_cpu_ns(pids: &[u32]) -> u64 {
    pids.iter().map(|p| process_cpu_ns(*p)).sum()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_millisecond_of_work_is_seen_at_once() {
        // Shorter than a scheduler tick: without the stat read first it would mostly read 0.
        let mut seen = 0;
        for _ in 0..5 {
            let before = self_cpu_ns();
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_millis(1) {
                std::hint::black_box(());
            }
            seen += u32::from(self_cpu_ns() > before);
        }
        assert!(seen >= 4, "{seen}/5");
    }

    #[test]
    fn this_process_cpu_time_grows_with_work() {
        let before = self_cpu_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(self_cpu_ns() > before, "{x}");
        assert!(stat_ticks_ns(std::process::id()).is_some());
        assert!(cpu_ns(u32::MAX).is_none());
    }
}
