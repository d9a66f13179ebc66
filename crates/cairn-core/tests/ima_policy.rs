//! Every runtime-policy case in the shared testdata gives the outcome Keylime's own verifier code
//! recorded: pass/fail, the same failure event ids, and the same running PCR 10.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use cairn_core::ima::BankSet;
use cairn_core::policy::runtime::{
    appraise, AppraisalConfig, AppraisalState, FailureReason, PcrOutcome, RuntimePolicy,
};
use cairn_core::{Digest, HashAlg};
use serde_json::Value;

fn run_case(dir: &Path, case: &Value) -> cairn_core::policy::runtime::Appraisal {
    let log = std::fs::read(dir.join(case["ima_log"].as_str().unwrap())).unwrap();
    let policy = case["policy"]
        .as_str()
        .map(|p| RuntimePolicy::from_json(&std::fs::read_to_string(dir.join(p)).unwrap()).unwrap());
    let bank = HashAlg::from_name(case["pcr_bank"].as_str().unwrap()).unwrap();
    let quoted = case["pcr10"].as_str().map(|h| Digest::from_hex(bank, h).unwrap());
    let state = AppraisalState::new(BankSet::of(&[bank]));
    appraise(policy.as_ref(), &state, &log, quoted.as_ref(), &AppraisalConfig::default()).unwrap()
}

#[test]
fn every_policy_case_matches_keylime() {
    let Some(root) = common::testdata("policies") else { return };
    let mut cases = 0;
    for dir in std::fs::read_dir(root).unwrap().flatten().map(|e| e.path()) {
        let Ok(text) = std::fs::read(dir.join("expected.json")) else { continue };
        let exp: Value = serde_json::from_slice(&text).unwrap();
        for case in exp["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap();
            let a = run_case(&dir, case);
            let want_pass = case["expected"] == "pass";
            assert_eq!(a.passed(), want_pass, "{id}: {:?}", a.failures.first());
            let want_ids: BTreeSet<&str> =
                case["keylime_failure_event_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(a.keylime_event_ids(), want_ids, "{id}");
            let bank = HashAlg::from_name(case["pcr_bank"].as_str().unwrap()).unwrap();
            assert_eq!(
                a.end.value(bank).unwrap().to_hex(),
                case["keylime_running_pcr10"].as_str().unwrap(),
                "{id}: running PCR 10"
            );
            cases += 1;
        }
    }
    assert!(cases >= 12, "expected the shared policy cases, ran {cases}");
}

fn agent_case(id: &str) -> Option<(std::path::PathBuf, Value)> {
    let dir = common::testdata("policies/rust-keylime-agent")?;
    let exp: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let case = exp["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    Some((dir, case))
}

#[test]
fn digest_mismatch_names_the_entry_and_both_digests() {
    let Some((dir, case)) = agent_case("digest-mismatch") else { return };
    let a = run_case(&dir, &case);
    assert_eq!(a.failures.len(), 1);
    let f = &a.failures[0];
    assert_eq!(f.path, "/usr/bin/find");
    let FailureReason::DigestMismatch { expected, actual } = &f.reason else { panic!("{f}") };
    assert_eq!(expected.len(), 1);
    assert_ne!(&expected[0], actual);
    // Only the last bit was flipped.
    assert_eq!(expected[0][..38], actual[..38]);
    assert!(f.to_string().contains(actual));
    assert_eq!(a.pcr, PcrOutcome::Matched { entries: 826 });
}

#[test]
fn path_missing_reports_not_in_policy_and_excludes_rescue_it() {
    let Some((dir, case)) = agent_case("path-missing") else { return };
    let a = run_case(&dir, &case);
    assert!(!a.failures.is_empty());
    assert!(a.failures.iter().all(|f| f.path == "/usr/bin/find" && f.reason == FailureReason::NotInPolicy));
    let Some((dir, case)) = agent_case("path-missing-but-excluded") else { return };
    assert!(run_case(&dir, &case).passed());
}

#[test]
fn pcr_mismatch_reports_the_computed_value() {
    let Some((dir, case)) = agent_case("pcr10-mismatch") else { return };
    let a = run_case(&dir, &case);
    let PcrOutcome::NoPrefixMatches { computed, .. } = a.pcr else { panic!("{:?}", a.pcr) };
    assert_eq!(computed.unwrap().to_hex(), "c4a065637fc6a7c55f2811dd06cb45dd037133be2b3dc5c3e6fbe6bf061db724");
}

#[test]
fn keyring_entries_teach_keys_and_the_state_resumes() {
    let Some(dir) = common::testdata("policies/keylime-tests-policy-commands") else { return };
    let log = std::fs::read(dir.join("../../ima/keylime-tests_ima-ng+ima-buf.ascii")).unwrap();
    let policy = RuntimePolicy::from_json(&std::fs::read_to_string(dir.join("generated-allow-all.json")).unwrap()).unwrap();
    let state = AppraisalState::new(BankSet::of(&[HashAlg::Sha1]));
    let a = appraise(Some(&policy), &state, &log, None, &AppraisalConfig::default()).unwrap();
    assert!(a.passed(), "{:?}", a.failures);
    assert_eq!(a.next.learned.count(".ima"), 1);
    assert_eq!(a.next.learned.count(".test"), 1);
    assert_eq!(a.next.replay.next_entry(), 5);
}

#[test]
fn all_failing_entries_are_reported() {
    let Some(dir) = common::testdata("policies/keylime-unit-measurements") else { return };
    let log = std::fs::read(dir.join("measurements.ascii")).unwrap();
    let empty = RuntimePolicy::from_json(&std::fs::read_to_string(dir.join("runtime-policy-empty.json")).unwrap()).unwrap();
    let state = AppraisalState::new(BankSet::of(&[HashAlg::Sha1]));
    let a = appraise(Some(&empty), &state, &log, None, &AppraisalConfig::default()).unwrap();
    let entries: Vec<u64> = a.failures.iter().map(|f| f.entry).collect();
    assert_eq!(entries, vec![0, 1, 2]);
}

#[test]
fn incremental_appraisal_equals_full() {
    let Some((dir, case)) = agent_case("allow-all-sha256-bank") else { return };
    let log = std::fs::read(dir.join(case["ima_log"].as_str().unwrap())).unwrap();
    let policy = RuntimePolicy::from_json(&std::fs::read_to_string(dir.join("allow-all.json")).unwrap()).unwrap();
    let lines: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').collect();
    let mut state = AppraisalState::new(BankSet::of(&[HashAlg::Sha256]));
    for chunk in lines.chunks(100) {
        let a = appraise(Some(&policy), &state, &chunk.concat(), None, &AppraisalConfig::default()).unwrap();
        assert!(a.passed());
        state = a.next;
    }
    assert_eq!(state.replay.next_entry(), 826);
    assert_eq!(state.replay.value(HashAlg::Sha256).unwrap().to_hex(), case["pcr10"].as_str().unwrap());
}

/// The two-thread appraisal (extend chain on its own thread) reaches exactly the one-thread outcome:
/// failures, the matching prefix, the state kept there (learned keys included) and the end state.
#[test]
fn two_threads_give_the_one_thread_outcome() {
    use cairn_core::ima::replay;
    use cairn_core::policy::runtime::PARALLEL_MIN_BYTES;
    let synth = cairn_core::ima::synth::generate(12_000);
    let policy = RuntimePolicy::from_json(&synth.policy_json).unwrap();
    let mut log = synth.log.clone();
    // One entry's file digest altered (its template hash no longer matches), one path not in the policy.
    let text = String::from_utf8(log.clone()).unwrap();
    let line = text.lines().nth(4321).unwrap().to_owned();
    let digest = line.split(' ').nth(3).unwrap().to_owned();
    let altered = line.replace(&digest, &format!("sha256:{}", "ab".repeat(32)));
    log = text.replacen(&line, &altered, 1).replacen("/usr/bin/file-0009000", "/usr/bin/not-listed", 1).into_bytes();
    // Keylime's ima-buf log (keys learned into keyrings) after it.
    if let Some(p) = common::testdata("ima/keylime-tests_ima-ng+ima-buf.ascii") {
        log.extend(std::fs::read(p).unwrap());
    }
    assert!(log.len() >= PARALLEL_MIN_BYTES, "the test log must take the two-thread path");
    for bank in [HashAlg::Sha1, HashAlg::Sha256] {
        let banks = BankSet::of(&[bank]);
        let prefix: Vec<u8> = log.split_inclusive(|b| *b == b'\n').take(7_000).flatten().copied().collect();
        let at = |input: &[u8]| replay::replay(input, banks).unwrap().0.value(bank).unwrap();
        let quotes = [None, Some(at(&prefix)), Some(at(&log)), Some(bank.hash(b"no prefix gives this"))];
        for quoted in quotes {
            let state = AppraisalState::new(banks);
            let one = appraise(Some(&policy), &state, &log, quoted.as_ref(), &AppraisalConfig::default()).unwrap();
            let config = AppraisalConfig { two_threads: true, ..AppraisalConfig::default() };
            let two = appraise(Some(&policy), &state, &log, quoted.as_ref(), &config).unwrap();
            assert_eq!(one.entries, two.entries);
            assert_eq!(one.failures, two.failures);
            assert_eq!(one.pcr, two.pcr, "{bank} {quoted:?}");
            assert_eq!(one.end, two.end);
            assert_eq!(one.next, two.next);
            assert!(one.failures.len() >= 2, "{:?}", one.failures);
        }
        // A log cut mid-entry: the same error either way.
        let cut = &log[..log.len() - 7];
        let state = AppraisalState::new(banks);
        let one = appraise(Some(&policy), &state, cut, None, &AppraisalConfig::default()).map(|a| a.entries);
        let two = appraise(Some(&policy), &state, cut, None, &AppraisalConfig { two_threads: true, ..AppraisalConfig::default() })
            .map(|a| a.entries);
        assert_eq!(format!("{one:?}"), format!("{two:?}"));
    }
}
