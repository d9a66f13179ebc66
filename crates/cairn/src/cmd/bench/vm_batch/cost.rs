//! What one attestation round cost, and the summary of several rounds.

use std::time::Instant;

use serde_json::{json, Value};

use super::cpu::{self_cpu_ns, total_cpu_ns};

/// Costs of one round, nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundCost {
    /// Wall time of the agent side: from assembling evidence to holding every quote and its PCRs.
    pub agent_wall: u64,
    /// CPU of this process during the agent side (cairn, libtss2, the TCTI).
    pub agent_cpu: u64,
    /// CPU of the swtpm processes during the agent side (the TPM's own work).
    pub tpm_cpu: u64,
    /// Wall time of the verifier side.
    pub verifier_wall: u64,
    /// CPU of this process during the verifier side.
    pub verifier_cpu: u64,
}

impl RoundCost {
    /// Everything's CPU: agent, TPMs, verifier.
    pub fn total_cpu(&self) -> u64 {
        self.agent_cpu + self.tpm_cpu + self.verifier_cpu
    }
    /// Agent wall time plus verifier wall time.
    pub fn total_wall(&self) -> u64 {
        self.agent_wall + self.verifier_wall
    }
}

/// Measures the agent side `f`: wall, this process's CPU and the CPU of swtpm processes `tpms`
/// (sampled outside the timed span, so reading /proc is not counted).
pub fn measure_agent<T>(tpms: &[u32], f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, u64, u64, u64)> {
    let tpm0 = total_cpu_ns(tpms);
    let cpu0 = self_cpu_ns();
    let t0 = Instant::now();
    let out = f()?;
    let wall = elapsed_ns(t0);
    let cpu = self_cpu_ns().saturating_sub(cpu0);
    let tpm = total_cpu_ns(tpms).saturating_sub(tpm0);
    Ok((out, wall, cpu, tpm))
}

/// Measures the verifier side `f`: wall and this process's CPU.
pub fn measure<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, u64, u64)> {
    let cpu0 = self_cpu_ns();
    let t0 = Instant::now();
    let out = f()?;
    Ok((out, elapsed_ns(t0), self_cpu_ns().saturating_sub(cpu0)))
}

fn elapsed_ns(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Median (upper median for an even count) of `xs`; 0 for none.
pub fn median(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or(0)
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e4).round() / 100.0
}

/// `{"median": ms, "best": ms}` of one measure over the rounds.
fn summary(rounds: &[RoundCost], f: impl Fn(&RoundCost) -> u64) -> Value {
    let xs: Vec<u64> = rounds.iter().map(&f).collect();
    let best = xs.iter().copied().min().unwrap_or(0);
    json!({ "median": ms(median(xs)), "best": ms(best) })
}

/// The JSON of a side's timed rounds.
pub fn report(rounds: &[RoundCost]) -> Value {
    json!({
        "agent_wall_ms": summary(rounds, |r| r.agent_wall),
        "agent_cpu_ms": summary(rounds, |r| r.agent_cpu),
        "tpm_cpu_ms": summary(rounds, |r| r.tpm_cpu),
        "verifier_wall_ms": summary(rounds, |r| r.verifier_wall),
        "verifier_cpu_ms": summary(rounds, |r| r.verifier_cpu),
        "round_wall_ms": summary(rounds, RoundCost::total_wall),
        "round_cpu_ms": summary(rounds, RoundCost::total_cpu),
    })
}

/// separate / batched of the medians of `f`, to three decimals (0 when batched is 0).
pub fn ratio(separate: &[RoundCost], batched: &[RoundCost], f: impl Fn(&RoundCost) -> u64) -> f64 {
    let s = median(separate.iter().map(&f).collect()) as f64;
    let b = median(batched.iter().map(&f).collect()) as f64;
    if b == 0.0 {
        0.0
    } else {
        (s / b * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 3);
        assert_eq!(median(vec![]), 0);
        let r = |n| RoundCost { agent_wall: n, agent_cpu: n, tpm_cpu: n, verifier_wall: n, verifier_cpu: n };
        assert_eq!(ratio(&[r(30), r(20)], &[r(2)], RoundCost::total_cpu), 15.0);
        assert_eq!(ratio(&[r(3)], &[r(0)], RoundCost::total_wall), 0.0);
        assert_eq!(report(&[r(1_500_000)])["round_cpu_ms"]["best"], 4.5);
    }
}
