//! `cairn eventlog`, `cairn ima` and `cairn policy create` against every shared log vector.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("cairn runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn sidecars(dir: &str) -> Vec<(std::path::PathBuf, Value)> {
    let Some(root) = common::testdata(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if let Some(name) = p.to_str().and_then(|n| n.strip_suffix(".expected.json")) {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            out.push((Path::new(name).to_path_buf(), v));
        }
    }
    assert!(!out.is_empty() || std::env::var("CI").is_err(), "no vectors under {dir}");
    out
}

#[test]
fn eventlog_replay_gives_every_recorded_result() {
    for (log, exp) in sidecars("eventlogs") {
        let o = cairn(&["eventlog", "replay", "--json", s(&log)]);
        if exp["must_fail"] == true {
            assert_eq!(o.status.code(), Some(1), "{}: must be rejected", log.display());
            assert!(!o.stderr.is_empty(), "{}: rejection without a reason", log.display());
            continue;
        }
        assert!(o.status.success(), "{}: {}", log.display(), String::from_utf8_lossy(&o.stderr));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got["events"], exp["events"], "{}", log.display());
        assert_eq!(got["banks"], exp["banks"], "{}", log.display());
    }
}

#[test]
fn ima_replay_gives_every_recorded_pcr10() {
    for (log, exp) in sidecars("ima") {
        let o = cairn(&["ima", "replay", "--json", s(&log)]);
        if exp["must_fail"] == true {
            assert_eq!(o.status.code(), Some(1), "{}", log.display());
            continue;
        }
        assert!(o.status.success(), "{}: {}", log.display(), String::from_utf8_lossy(&o.stderr));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got["entries"], exp["entries"], "{}", log.display());
        for (bank, v) in exp["pcr10"].as_object().unwrap() {
            if v.is_string() {
                assert_eq!(&got["pcr10"][bank], v, "{} {bank}", log.display());
            }
        }
    }
}

#[test]
fn ima_check_and_policy_create_runtime_round_trip() {
    let Some(log) = common::testdata("ima/rust-keylime-agent_ima-ng_sha1.ascii") else { return };
    let Some(bad) = common::testdata("policies/rust-keylime-agent/digest-mismatch.json") else { return };
    let exp: Value = serde_json::from_slice(&std::fs::read(common::testdata("ima/rust-keylime-agent_ima-ng_sha1.ascii.expected.json").unwrap()).unwrap()).unwrap();
    let pcr10 = exp["pcr10"]["sha1"].as_str().unwrap();
    // The vector's mismatching policy fails, naming the entry.
    let o = cairn(&["ima", "check", "--json", "--policy", s(&bad), s(&log)]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["pass"], false);
    assert!(j["failures"][0]["path"].as_str().unwrap().starts_with('/'), "{j}");
    // A policy made from the log accepts it, and the replay reaches the quoted PCR 10.
    let tmp = tempfile::tempdir().unwrap();
    let pol = tmp.path().join("policy.json");
    let o = cairn(&["policy", "create", "runtime", "--ima-log", s(&log), "--exclude", "/tmp/.*", "--out", s(&pol)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cairn(&["ima", "check", "--json", "--policy", s(&pol), "--pcr10", pcr10, s(&log)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // …but not a PCR 10 no prefix reaches.
    let o = cairn(&["ima", "check", "--policy", s(&pol), "--pcr10", &"ab".repeat(20), s(&log)]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn policy_create_runtime_from_a_rootfs_lists_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(root.join("init"), b"init").unwrap();
    let o = cairn(&["policy", "create", "runtime", "--rootfs", s(&root)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sha = |b: &[u8]| cairn_core::HashAlg::Sha256.hash(b).to_hex();
    assert_eq!(j["digests"]["/usr/bin/tool"][0], sha(b"#!/bin/sh\necho hi\n"));
    assert_eq!(j["digests"]["/init"][0], sha(b"init"));
}

#[test]
fn policy_create_measured_boot_from_a_real_log() {
    let Some(log) = common::testdata("eventlogs/ovmf-secureboot-swtpm_sha256.bin") else { return };
    let o = cairn(&["policy", "create", "measured-boot", "--eventlog", s(&log)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["has_secureboot"], true, "{j}");
    assert!(!j["kernels"].as_array().unwrap().is_empty());
}
