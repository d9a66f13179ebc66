//! Every UEFI event log of the shared test data against its sidecar: record count and final PCR
//! values per bank (from an independent replay), or rejection for the must-fail ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_core::eventlog::{BootAggregate, EventLog};
use cairn_core::{HashAlg, ParseError};
use serde_json::Value;

fn vectors() -> Vec<(PathBuf, Value)> {
    let Some(dir) = common::testdata("eventlogs") else { return Vec::new() };
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.to_string_lossy().to_string();
        if let Some(bin) = name.strip_suffix(".expected.json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((PathBuf::from(bin), v));
        }
    }
    assert!(out.len() >= 14, "expected the shared event logs, found {}", out.len());
    out
}

fn banks_of(log: &EventLog<'_>) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for bank in log.replay().banks() {
        let m: BTreeMap<String, String> = bank.iter_touched().map(|(p, d)| (p.to_string(), d.to_hex())).collect();
        if !m.is_empty() {
            out.insert(bank.alg().name().to_string(), m);
        }
    }
    out
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    for (bin, want) in vectors() {
        let bytes = std::fs::read(&bin).unwrap();
        let name = bin.file_name().unwrap().to_string_lossy().to_string();
        let must_fail = want["must_fail"].as_bool().unwrap_or(false);
        let kind = want["kind"].as_str().unwrap_or("");
        match EventLog::parse(&bytes) {
            Err(e) => {
                assert!(must_fail || kind == "eventlog-lenient", "{name}: rejected: {e}");
                // The reason names the record and its offset.
                assert!(matches!(e, ParseError::Entry { .. }), "{name}: {e:?}");
                assert!(e.to_string().contains("entry 0 at offset 0"), "{name}: {e}");
            }
            Ok(log) => {
                assert!(!must_fail, "{name}: accepted a must-fail log");
                assert_eq!(log.events().len() as u64, want["events"].as_u64().unwrap(), "{name}: events");
                let want_banks: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_value(want["banks"].clone()).unwrap();
                assert_eq!(banks_of(&log), want_banks, "{name}: banks");
                // Re-encoding reproduces the bytes.
                assert_eq!(log.encode().unwrap(), bytes[..bytes.len() - log.padding()], "{name}: re-encode");
            }
        }
    }
}

#[test]
fn every_event_of_every_log_decodes() {
    let mut failures = Vec::new();
    for (bin, want) in vectors() {
        if want["must_fail"].as_bool().unwrap_or(false) {
            continue;
        }
        let bytes = std::fs::read(&bin).unwrap();
        let log = EventLog::parse(&bytes).unwrap();
        for ev in log.events() {
            if let Err(e) = ev.decode() {
                failures.push(format!("{}: {} {e}", bin.file_name().unwrap().to_string_lossy(), ev.event_type()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn boot_aggregate_matches_ima_evm_utils() {
    let (Some(log_path), Some(ima)) = (
        common::testdata("eventlogs/lenovo-N24ET56W-ima-evm-utils_sha1-sha256.bin"),
        common::testdata("ima/ima-evm-utils-boot-aggregate-pcr0-7.ascii"),
    ) else {
        return;
    };
    let ascii = std::fs::read_to_string(ima).unwrap();
    let line = ascii.lines().find(|l| l.ends_with(" boot_aggregate")).unwrap();
    // "10 <template hash> ima-ng sha256:<digest> boot_aggregate"
    let field = line.split_whitespace().nth(3).unwrap();
    let (alg, hex) = field.split_once(':').unwrap();
    assert_eq!(alg, "sha256");
    let bytes = std::fs::read(log_path).unwrap();
    let pcrs = EventLog::parse(&bytes).unwrap().replay();
    let got = pcrs.boot_aggregate(HashAlg::Sha256, BootAggregate::Pcrs0To7).unwrap();
    assert_eq!(got.to_hex(), hex);
    let wider = pcrs.boot_aggregate(HashAlg::Sha256, BootAggregate::Pcrs0To9).unwrap();
    assert_ne!(wider.to_hex(), hex, "PCR 8/9 are extended in this log, so the 0-9 form differs");
}
