//! Every IMA list in the shared testdata replays to the PCR 10 values and entry counts its sidecar
//! records; incremental replay equals full replay; the prefix a quote covers is found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_core::ima::{self, BankSet, ReplayConfig, ReplayState, Replayer};
use cairn_core::{Digest, HashAlg};
use serde_json::Value;

const BANKS: [HashAlg; 2] = [HashAlg::Sha1, HashAlg::Sha256];

fn sidecars() -> Vec<(String, Vec<u8>, Value)> {
    let Some(dir) = common::testdata("ima") else { return Vec::new() };
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(log_name) = name.strip_suffix(".expected.json") else { continue };
        let exp: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let log = std::fs::read(p.with_file_name(log_name)).unwrap();
        out.push((log_name.to_string(), log, exp));
    }
    out
}

#[test]
fn every_vector_replays_to_its_recorded_pcr10() {
    let vectors = sidecars();
    for (name, log, exp) in &vectors {
        let result = ima::replay::replay(log, BankSet::of(&BANKS));
        let must_fail = exp["must_fail"].as_bool().unwrap_or(false);
        if exp["kind"] == "ima-lenient" {
            continue;
        }
        if must_fail {
            assert!(result.is_err(), "{name} must be rejected");
            continue;
        }
        let (state, summary) = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.entries, exp["entries"].as_u64().unwrap(), "{name}: entries");
        assert_eq!(summary.violations, exp["violations"].as_u64().unwrap_or(0), "{name}: violations");
        for bank in BANKS {
            let Some(want) = exp["pcr10"][bank.name()].as_str() else { continue };
            assert_eq!(state.value(bank).unwrap().to_hex(), want, "{name}: {bank}");
        }
        let mismatches = exp["template_hash_mismatch_lines"].as_array().map_or(0, Vec::len);
        assert_eq!(summary.template_hash_mismatches.len(), mismatches, "{name}: template hash checks");
    }
    if common::testdata("ima").is_some() {
        assert!(vectors.len() >= 7, "expected the shared IMA vectors");
    }
}

fn agent_log() -> Option<Vec<u8>> {
    common::testdata("ima/rust-keylime-agent_ima-ng_sha1.ascii").map(|p| std::fs::read(p).unwrap())
}

#[test]
fn chunked_replay_equals_full_replay() {
    let Some(log) = agent_log() else { return };
    let (full, _) = ima::replay::replay(&log, BankSet::of(&BANKS)).unwrap();
    let lines: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 826);
    let mut state = ReplayState::new(BankSet::of(&BANKS));
    let mut replayer = Replayer::new(ReplayConfig::default());
    for chunk in lines.chunks(100) {
        let bytes = chunk.concat();
        replayer.replay(&mut state, &bytes).unwrap();
        // Restoring from stored digests is the same as keeping the state.
        let stored: Vec<Digest> = BANKS.iter().map(|b| state.value(*b).unwrap()).collect();
        state = ReplayState::resume(state.next_entry(), &stored);
    }
    assert_eq!(state, full);
    assert_eq!(state.next_entry(), 826);
}

#[test]
fn prefix_match_finds_where_the_quote_stopped() {
    let Some(log) = agent_log() else { return };
    let lines: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').collect();
    let prefix: Vec<u8> = lines[..600].concat();
    let (at600, _) = ima::replay::replay(&prefix, BankSet::of(&BANKS)).unwrap();
    for bank in BANKS {
        let quoted = at600.value(bank).unwrap();
        let mut state = ReplayState::new(BankSet::of(&BANKS));
        let m = Replayer::new(ReplayConfig::default()).replay_to_quote(&mut state, &log, &quoted).unwrap();
        let matched = m.matched.expect("a prefix matches");
        assert_eq!(matched.next_entry(), 600, "{bank}");
        assert_eq!(m.end.next_entry(), 826);
        // Next round resumes at the match with only the new lines.
        let mut resumed = matched;
        let rest: Vec<u8> = lines[600..].concat();
        let final_value = m.end.value(bank).unwrap();
        let again = Replayer::new(ReplayConfig::default()).replay_to_quote(&mut resumed, &rest, &final_value).unwrap();
        assert_eq!(again.matched.unwrap().next_entry(), 826);
    }
}

#[test]
fn no_prefix_matches_a_wrong_quote() {
    let Some(log) = agent_log() else { return };
    let wrong = Digest::from_hex(HashAlg::Sha1, "82231c67a69da98dc5b3aa10f6343d33109225fd").unwrap();
    let mut state = ReplayState::new(BankSet::of(&BANKS));
    let m = Replayer::new(ReplayConfig::default()).replay_to_quote(&mut state, &log, &wrong).unwrap();
    assert!(m.matched.is_none());
    assert_eq!(m.end.value(HashAlg::Sha1).unwrap().to_hex(), "82231c67a69da98dc5b3aa10f6343d33109225fc");
}

#[test]
fn entry_for_another_pcr_is_an_error_naming_it() {
    let log = b"10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate\n11 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate\n";
    let err = ima::replay::replay(log, BankSet::of(&BANKS)).unwrap_err();
    assert_eq!(err.entry, 1);
    assert_eq!(err.offset, 112);
}

#[test]
fn violation_extends_all_ones() {
    let log = b"10 0000000000000000000000000000000000000000 ima-ng sha256:0000000000000000000000000000000000000000000000000000000000000000 /tmp/x\n";
    let (state, summary) = ima::replay::replay(log, BankSet::ALL).unwrap();
    assert_eq!(summary.violations, 1);
    for bank in HashAlg::ALL {
        assert_eq!(state.value(bank).unwrap(), bank.extend(&bank.zero(), bank.ones().as_bytes()));
    }
}

#[test]
fn unknown_ascii_template_leaves_only_the_sha1_bank() {
    let log = b"10 1d8d532d463c9f8c205d0df7787669a85f93e260 my-template whatever fields\n";
    let (state, _) = ima::replay::replay(log, BankSet::of(&BANKS)).unwrap();
    assert!(state.value(HashAlg::Sha1).is_some());
    assert_eq!(state.bank(HashAlg::Sha256), Some(ima::BankValue::Unavailable { entry: 0 }));
}

#[test]
fn altered_field_is_a_template_hash_mismatch() {
    let Some(log) = agent_log() else { return };
    let text = String::from_utf8(log).unwrap().replacen("/init", "/evil", 1);
    let (_, summary) = ima::replay::replay(text.as_bytes(), BankSet::of(&BANKS)).unwrap();
    assert_eq!(summary.template_hash_mismatches, vec![1]);
}
