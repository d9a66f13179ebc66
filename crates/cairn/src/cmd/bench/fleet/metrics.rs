//! Reading the verifier's Prometheus text: counters, and quantiles of the round-latency
//! histogram between two snapshots.

/// A parsed `/metrics` page.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    lines: Vec<(String, f64)>,
}

impl Metrics {
    /// Parses Prometheus text.
    pub fn parse(text: &str) -> Metrics {
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| v.parse().ok().map(|v| (k.to_owned(), v))))
            .collect();
        Metrics { lines }
    }

    /// The value of the series `key` (name with labels, as printed), 0 if absent.
    pub fn get(&self, key: &str) -> f64 {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, v)| *v).unwrap_or(0.0)
    }

    /// Rounds that got an answer and were judged (pass or fail).
    pub fn judged_rounds(&self) -> f64 {
        self.get("cairn_verifier_rounds_total{outcome=\"pass\"}") + self.get("cairn_verifier_rounds_total{outcome=\"fail\"}")
    }

    /// Nodes in `state`.
    pub fn nodes(&self, state: &str) -> f64 {
        self.get(&format!("cairn_verifier_nodes{{state=\"{state}\"}}"))
    }

    /// (upper bound seconds, cumulative count) of the round histogram.
    fn buckets(&self) -> Vec<(f64, f64)> {
        self.lines
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix("cairn_verifier_round_seconds_bucket{le=\"")?.strip_suffix("\"}")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, *v))
            })
            .collect()
    }
}

/// The `q` quantile (0–1) of round latency in milliseconds over the rounds between `before` and
/// `after`, interpolated within its bucket; None without rounds.
pub fn round_quantile_ms(before: &Metrics, after: &Metrics, q: f64) -> Option<f64> {
    let (a, b) = (before.buckets(), after.buckets());
    let delta: Vec<(f64, f64)> = b.iter().map(|(le, v)| (*le, v - a.iter().find(|(l, _)| l == le).map(|x| x.1).unwrap_or(0.0))).collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cum) in delta {
        if cum >= target {
            if !le.is_finite() {
                return Some(lower.0 * 1000.0);
            }
            let span = cum - lower.1;
            let frac = if span > 0.0 { (target - lower.1) / span } else { 1.0 };
            return Some((lower.0 + (le - lower.0) * frac) * 1000.0);
        }
        lower = (le, cum);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_difference_of_two_snapshots() {
        let before = Metrics::parse("cairn_verifier_round_seconds_bucket{le=\"0.001\"} 10\ncairn_verifier_round_seconds_bucket{le=\"0.002\"} 10\ncairn_verifier_round_seconds_bucket{le=\"+Inf\"} 10\n");
        let after = Metrics::parse("cairn_verifier_round_seconds_bucket{le=\"0.001\"} 10\ncairn_verifier_round_seconds_bucket{le=\"0.002\"} 110\ncairn_verifier_round_seconds_bucket{le=\"+Inf\"} 110\n");
        let p50 = round_quantile_ms(&before, &after, 0.5).unwrap();
        assert!((p50 - 1.5).abs() < 1e-9, "{p50}");
        assert!(round_quantile_ms(&after, &after, 0.5).is_none());
        let m = Metrics::parse("# HELP x\ncairn_verifier_rounds_total{outcome=\"pass\"} 7\ncairn_verifier_rounds_total{outcome=\"fail\"} 2\n");
        assert_eq!(m.judged_rounds(), 9.0);
    }
}
