//! Counters of the attestation rounds the verifier has run, for `/metrics` and benchmarks.
//!
//! Lock-free: every round adds to a few atomics — how it ended and how long it took from the
//! request to the applied outcome, in a fixed log-spaced histogram (each bucket 25 % wider than
//! the one below, from 50 µs up), so quantiles over any window are the difference of two
//! snapshots, however many nodes there are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of histogram buckets (the last one is unbounded).
pub const BUCKETS: usize = 64;
/// Upper bound of bucket 0, in microseconds.
const FIRST_US: f64 = 50.0;
/// Each bucket's bound over the previous one.
const GROWTH: f64 = 1.25;

/// The upper bound of bucket `i` in seconds (infinity for the last).
pub fn bucket_bound_seconds(i: usize) -> f64 {
    if i + 1 >= BUCKETS {
        return f64::INFINITY;
    }
    FIRST_US * GROWTH.powi(i32::try_from(i).unwrap_or(i32::MAX)) / 1e6
}

fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= FIRST_US {
        return 0;
    }
    // log_1.25(us / 50), rounded up; bounded below BUCKETS.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((us / FIRST_US).ln() / GROWTH.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

/// How a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundEnd {
    /// Every check passed.
    Pass,
    /// A check failed.
    Fail,
    /// No usable answer.
    Unreachable,
}

/// The counters.
#[derive(Debug)]
pub struct RoundStats {
    passed: AtomicU64,
    failed: AtomicU64,
    unreachable: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for RoundStats {
    fn default() -> Self {
        RoundStats {
            passed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl RoundStats {
    /// Records one round that took `took`.
    pub fn record(&self, end: RoundEnd, took: Duration) {
        let counter = match end {
            RoundEnd::Pass => &self.passed,
            RoundEnd::Fail => &self.failed,
            RoundEnd::Unreachable => &self.unreachable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(b) = self.buckets.get(bucket_of(took)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text: counters by outcome and the latency histogram.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP cairn_verifier_rounds_total Attestation rounds completed since start, by outcome.\n");
        out.push_str("# TYPE cairn_verifier_rounds_total counter\n");
        for (name, c) in [("pass", &self.passed), ("fail", &self.failed), ("unreachable", &self.unreachable)] {
            out.push_str(&format!("cairn_verifier_rounds_total{{outcome=\"{name}\"}} {}\n", c.load(Ordering::Relaxed)));
        }
        out.push_str("# HELP cairn_verifier_round_seconds Time from a round's request to its applied outcome.\n");
        out.push_str("# TYPE cairn_verifier_round_seconds histogram\n");
        let mut cumulative = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = bucket_bound_seconds(i);
            let le = if le.is_finite() { format!("{le:.6}") } else { "+Inf".to_owned() };
            out.push_str(&format!("cairn_verifier_round_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"));
        }
        out.push_str(&format!("cairn_verifier_round_seconds_sum {:.6}\n", self.sum_us.load(Ordering::Relaxed) as f64 / 1e6));
        out.push_str(&format!("cairn_verifier_round_seconds_count {cumulative}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_and_hold_their_rounds() {
        assert_eq!(bucket_of(Duration::from_micros(10)), 0);
        assert_eq!(bucket_of(Duration::from_micros(50)), 0);
        assert_eq!(bucket_of(Duration::from_micros(51)), 1);
        assert_eq!(bucket_of(Duration::from_secs(100_000)), BUCKETS - 1);
        for us in [60u64, 700, 12_000, 3_000_000] {
            let i = bucket_of(Duration::from_micros(us));
            assert!(us as f64 / 1e6 <= bucket_bound_seconds(i) + 1e-12);
            assert!(i == 0 || us as f64 / 1e6 > bucket_bound_seconds(i - 1));
        }
        let s = RoundStats::default();
        s.record(RoundEnd::Pass, Duration::from_millis(2));
        s.record(RoundEnd::Unreachable, Duration::from_millis(900));
        let text = s.prometheus();
        assert!(text.contains("cairn_verifier_rounds_total{outcome=\"pass\"} 1"));
        assert!(text.contains("cairn_verifier_round_seconds_count 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}
