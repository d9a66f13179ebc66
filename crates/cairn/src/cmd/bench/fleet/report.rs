//! The bench's figures: a JSON document for tools and a short table for people.

/// One injected unknown file and when its revocation arrived.
#[derive(Clone, Debug)]
pub struct Detection {
    /// The agent that measured it.
    pub agent: String,
    /// Milliseconds from the measurement to the revocation at the webhook (None: never seen).
    pub ms: Option<f64>,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Agents simulated.
    pub agents: usize,
    /// Quote interval, seconds.
    pub interval_s: f64,
    /// Length of the window, seconds.
    pub duration_s: f64,
    /// AK algorithm.
    pub sign: String,
    /// IMA growth per agent per second.
    pub ima_growth: f64,
    /// Rounds judged (pass or fail) in the window.
    pub attestations: f64,
    /// Quotes the simulated agents served in the window.
    pub quotes_served: u64,
    /// Verifier CPU seconds in the window.
    pub verifier_cpu_seconds: f64,
    /// Verifier RSS at the end of the window.
    pub verifier_rss_bytes: u64,
    /// Round latency p50, ms.
    pub round_p50_ms: Option<f64>,
    /// Round latency p99, ms.
    pub round_p99_ms: Option<f64>,
    /// Rounds without an answer in the window.
    pub unreachable_rounds: f64,
    /// Per interval window: the share of agents quoted in it.
    pub window_coverage: Vec<f64>,
    /// Injections in the window (attested on the interval).
    pub detections: Vec<Detection>,
    /// Injections after the window with push-on-change answered (None: not offered).
    pub push_detections: Option<Vec<Detection>>,
    /// Verifier database bytes at the end.
    pub store_bytes: u64,
}

fn sorted_ms(d: &[Detection]) -> Vec<f64> {
    let mut v: Vec<f64> = d.iter().filter_map(|d| d.ms).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    // Nearest rank; the index stays within the slice.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(i.min(v.len() - 1)).copied()
}

impl Report {
    /// Attestations per second.
    pub fn attestations_per_second(&self) -> f64 {
        self.attestations / self.duration_s.max(1e-9)
    }

    /// Verifier CPU µs per attestation.
    pub fn cpu_us_per_attestation(&self) -> Option<f64> {
        (self.attestations > 0.0).then(|| self.verifier_cpu_seconds * 1e6 / self.attestations)
    }

    fn detection_ms(&self) -> Vec<f64> {
        sorted_ms(&self.detections)
    }

    /// The smallest share of agents attested in any interval window.
    pub fn min_coverage(&self) -> Option<f64> {
        self.window_coverage.iter().copied().reduce(f64::min)
    }

    /// The JSON report.
    pub fn json(&self) -> serde_json::Value {
        let det = self.detection_ms();
        serde_json::json!({
            "bench": "fleet",
            "verifier": "cairn",
            "agents": self.agents,
            "interval_s": self.interval_s,
            "duration_s": self.duration_s,
            "sign": self.sign,
            "ima_growth_per_agent_per_s": self.ima_growth,
            "attestations": self.attestations,
            "attestations_per_second": self.attestations_per_second(),
            "expected_attestations_per_second": self.agents as f64 / self.interval_s,
            "quotes_served": self.quotes_served,
            "verifier_cpu_seconds": self.verifier_cpu_seconds,
            "verifier_cpu_us_per_attestation": self.cpu_us_per_attestation(),
            "attestations_per_verifier_cpu_second": (self.verifier_cpu_seconds > 0.0).then(|| self.attestations / self.verifier_cpu_seconds),
            "round_latency_ms": { "p50": self.round_p50_ms, "p99": self.round_p99_ms },
            "unreachable_rounds": self.unreachable_rounds,
            "interval_windows": self.window_coverage.len(),
            "min_window_coverage": self.min_coverage(),
            "verifier_rss_bytes": self.verifier_rss_bytes,
            "verifier_rss_bytes_per_agent": self.verifier_rss_bytes / self.agents.max(1) as u64,
            "store_bytes": self.store_bytes,
            "detection_latency_ms": { "p50": quantile(&det, 0.5), "p99": quantile(&det, 0.99),
                                      "injected": self.detections.len(), "detected": det.len() },
            "detections": self.detections.iter().map(|d| serde_json::json!({"agent": d.agent, "ms": d.ms})).collect::<Vec<_>>(),
            "push_on_change": self.push_detections.is_some(),
            "detection_latency_push_ms": self.push_detections.as_ref().map(|p| {
                let v = sorted_ms(p);
                serde_json::json!({ "p50": quantile(&v, 0.5), "p99": quantile(&v, 0.99), "injected": p.len(), "detected": v.len() })
            }),
        })
    }

    /// A short table.
    pub fn table(&self) -> String {
        let f = |v: Option<f64>, unit: &str| v.map(|x| format!("{x:.2} {unit}")).unwrap_or_else(|| "-".into());
        let det = self.detection_ms();
        format!(
            "cairn bench fleet: {} agents, interval {} s, {} AKs, IMA growth {}/s, window {:.1} s\n\
             attestations/s            {:.1} (expected {:.1})\n\
             verifier CPU/attestation  {}\n\
             round latency p50 / p99   {} / {}\n\
             min interval coverage     {}\n\
             verifier RSS              {:.1} MiB ({} bytes/agent)\n\
             store size                {:.1} MiB\n\
             detection p50 / p99       {} / {} ({} of {} detected){}",
            self.agents,
            self.interval_s,
            self.sign,
            self.ima_growth,
            self.duration_s,
            self.attestations_per_second(),
            self.agents as f64 / self.interval_s,
            f(self.cpu_us_per_attestation(), "µs"),
            f(self.round_p50_ms, "ms"),
            f(self.round_p99_ms, "ms"),
            self.min_coverage().map(|c| format!("{:.1} %", c * 100.0)).unwrap_or_else(|| "-".into()),
            self.verifier_rss_bytes as f64 / 1_048_576.0,
            self.verifier_rss_bytes / self.agents.max(1) as u64,
            self.store_bytes as f64 / 1_048_576.0,
            f(quantile(&det, 0.5), "ms"),
            f(quantile(&det, 0.99), "ms"),
            det.len(),
            self.detections.len(),
            self.push_detections.as_ref().map(|p| {
                let v = sorted_ms(p);
                format!("\nwith push-on-change       {} / {} ({} of {} detected)", f(quantile(&v, 0.5), "ms"), f(quantile(&v, 0.99), "ms"), v.len(), p.len())
            }).unwrap_or_default(),
        )
    }
}
