//! Hand-run measurement (not a test): replay and appraise a synthetic ima-ng log.
//!
//! `cargo run --release -p cairn-core --example ima_bench -- [entries]` prints JSON.

use std::time::Instant;

use cairn_core::ima::{self, BankSet};
use cairn_core::policy::runtime::{appraise, AppraisalConfig, AppraisalState, RuntimePolicy};
use cairn_core::HashAlg;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let synth = ima::synth::generate(n);
    let policy = RuntimePolicy::from_json(&synth.policy_json).unwrap_or_else(|e| panic!("{e}"));
    let rounds = 5;
    let mut report = Vec::new();
    for (label, banks) in [
        ("sha1", BankSet::of(&[HashAlg::Sha1])),
        ("sha256", BankSet::of(&[HashAlg::Sha256])),
        ("sha1+sha256", BankSet::of(&[HashAlg::Sha1, HashAlg::Sha256])),
    ] {
        let mut best_replay = f64::MAX;
        let mut best_appraise = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            let (_, summary) = ima::replay::replay(&synth.log, banks).unwrap_or_else(|e| panic!("{e}"));
            best_replay = best_replay.min(t.elapsed().as_secs_f64());
            assert_eq!(summary.entries as usize, n);
            let t = Instant::now();
            let a = appraise(Some(&policy), &AppraisalState::new(banks), &synth.log, None, &AppraisalConfig::default())
                .unwrap_or_else(|e| panic!("{e}"));
            best_appraise = best_appraise.min(t.elapsed().as_secs_f64());
            assert!(a.passed());
        }
        report.push(format!(
            "{{\"banks\":\"{label}\",\"entries\":{n},\"replay_ms\":{:.2},\"replay_entries_per_s\":{:.0},\"replay_and_policy_ms\":{:.2},\"replay_and_policy_entries_per_s\":{:.0}}}",
            best_replay * 1e3,
            n as f64 / best_replay,
            best_appraise * 1e3,
            n as f64 / best_appraise
        ));
    }
    println!("[{}]", report.join(",\n "));
}
