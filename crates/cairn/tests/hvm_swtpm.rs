//! Host mode end to end, on real parts: `cairn registrar`, `cairn verifier` and `cairn agent --hvm`
//! as real processes on a real swtpm, measuring a real running process (a copy of `sleep`).
//!
//! The host is added with `cairn node add --hvm` and attested (the hypervisor measurement list
//! replays to the quoted PCR 13 and every mapping's code matches its file). The test then patches
//! the process's code through `/proc/PID/mem` — a few bytes in the middle of its executable
//! mapping, which the sleeping process is not running — and the host fails at a following round
//! with `hvm_code_modified`, the reason naming the process, the mapping and both digests.
//! `cairn hvm measure --pid` sees the same patch locally and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use cairn_tpm::swtpm::SwtpmCa;
use fleet::{cairn, count, free_port, AgentNode, Fleet};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `bytes` in the middle of the process's executable mapping of `file`; returns the range.
fn patch_code(pid: u32, file: &Path, bytes: &[u8]) -> String {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let line = maps
        .lines()
        .find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')) && l.ends_with(file.to_str().unwrap()))
        .unwrap();
    let range = line.split_whitespace().next().unwrap().to_owned();
    let (start, end) = range.split_once('-').unwrap();
    let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
    let mem = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/mem")).unwrap();
    mem.write_at(bytes, start + (end - start) / 2).unwrap();
    // maps writes addresses with leading zeros; the hvm list does not.
    format!("{start:x}-{end:x}")
}

#[test]
fn a_host_whose_hypervisor_code_is_patched_in_memory_fails_naming_the_mapping() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hvm-ca")).unwrap();
    let exe = dir.join("qemu-sleep");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let vmm = Killed(Command::new(&exe).arg("600").spawn().unwrap());
    let pid = vmm.0.id();

    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let extra: Vec<String> = ["--hvm", "--hvm-interval-ms", "500", "--hvm-exe", exe.to_str().unwrap()].map(str::to_owned).to_vec();
    let host = AgentNode::start_with(&dir.join("host"), &ca, &http, &extra);
    fleet.start_verifier(free_port());
    let (ok, out) = fleet.node(&["add", &host.uuid, "--hvm"]);
    assert!(ok, "{out}");
    let s = fleet.wait(&host.uuid, "attested twice", |s| s["cairn_state"] == "attested" && count(s) >= 2);
    assert_eq!(s["hvm_pcr"], 13, "{s}");

    // The agent's list names the process; the host passed with it.
    let list = std::fs::read_to_string(host.state.join("hvm/list")).unwrap();
    assert!(list.lines().any(|l| l.contains(&format!(" cairn-hvm {pid} ")) && l.ends_with(" ok")), "{list}");

    let range = patch_code(pid, &exe, &[0xcc; 8]);
    let s = fleet.wait(&host.uuid, "failed", |s| s["cairn_state"] == "failed");
    let f = &s["failures"][0];
    assert_eq!(f["check"], "hvm_code_modified", "{s}");
    let msg = f["message"].as_str().unwrap();
    for part in [format!("pid {pid}"), exe.to_str().unwrap().to_owned(), range.clone(), "in memory sha256:".into(), "on disk sha256:".into()] {
        assert!(msg.contains(&part), "{part:?} not in {msg:?}");
    }

    eprintln!("{msg}");

    // The operator's one-shot measurement sees the same mapping modified (exit 1).
    let out = cairn().args(["hvm", "measure", "--pid", &pid.to_string()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.contains("modified") && l.contains(&range)), "{text}");
}
