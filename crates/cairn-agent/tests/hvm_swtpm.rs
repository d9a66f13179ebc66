//! Host mode on a real swtpm with a real process: the agent measures a running copy of `sleep`
//! (and itself), serves the list at `/cairn/v1/hvm` incrementally, and the list replays to the PCR
//! the TPM holds. The test then patches the process's code through `/proc/PID/mem`, as an attacker
//! with ptrace rights would, and the next round logs the mapping as `modified`. A restarted agent
//! continues the saved list because it still replays to the PCR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cairn_agent::{Agent, RawConfig};
use cairn_core::hvm::{self, ReplayState, Replayer, Verdict};
use cairn_core::pcr::{BankSelection, PcrIndex, PcrSelection};
use cairn_core::HashAlg;
use cairn_tpm::Tpm;
use common::{client, get, Node};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pcr13() -> PcrIndex {
    PcrIndex::new(13).unwrap()
}

fn read_pcr13(node: &Node) -> cairn_core::Digest {
    // The agent's TPM thread may still be closing its last connection (swtpm serves one at a time).
    let mut tpm = (0..50)
        .find_map(|_| Tpm::open(&node.swtpm.tcti()).ok().or_else(|| { std::thread::sleep(Duration::from_millis(100)); None }))
        .unwrap();
    let sel = PcrSelection::new(vec![BankSelection { alg: HashAlg::Sha256, mask: pcr13().bit() }]).unwrap();
    *tpm.pcr_read(&sel).unwrap().get(HashAlg::Sha256, pcr13()).unwrap()
}

/// Writes `bytes` into the middle of the process's executable mapping of `file`; returns its range.
pub fn patch_code(pid: u32, file: &Path, bytes: &[u8]) -> (u64, u64) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let line = maps.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')) && l.ends_with(file.to_str().unwrap())).unwrap();
    let (start, end) = line.split_whitespace().next().unwrap().split_once('-').unwrap();
    let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
    let at = start + (end - start) / 2;
    let mem = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/mem")).unwrap();
    mem.write_at(bytes, at).unwrap();
    (start, end)
}

async fn list(http: &reqwest::Client, base: &str, from: u64) -> serde_json::Value {
    let (status, body) = get(http, &format!("{base}/cairn/v1/hvm?from={from}")).await;
    assert_eq!(status, 200, "{body}");
    body["results"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_mode_measures_a_real_process_and_logs_its_patched_code() {
    let node = Node::new();
    let exe = node.path("vmm-sleep");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let child = Killed(Command::new(&exe).arg("600").spawn().unwrap());
    let pid = child.0.id();
    let config = || {
        let base = RawConfig {
            tcti: Some(node.swtpm.tcti()),
            state_dir: Some(node.path("state")),
            listen: Some("127.0.0.1:0".into()),
            register: Some(false),
            hvm: Some(true),
            hvm_interval_ms: Some(200),
            hvm_exe: Some(vec![exe.to_str().unwrap().to_owned()]),
            ..RawConfig::default()
        };
        base.validate().unwrap()
    };
    let agent = Agent::start(config()).await.unwrap();
    let http = client(&agent.mtls_cert);
    let base = format!("https://{}", agent.addr);

    // The first round logs the copy of sleep and the agent itself, all ok.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let r = list(&http, &base, 0).await;
        let text = r["list"].as_str().unwrap().to_owned();
        if text.contains(exe.to_str().unwrap()) {
            break r;
        }
        assert!(Instant::now() < deadline, "sleep never measured: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((first["pcr"].as_u64(), first["from"].as_u64()), (Some(13), Some(0)));
    assert_eq!(first["banks"], serde_json::json!(["sha256"]));
    let text = first["list"].as_str().unwrap().to_owned();
    let entries = hvm::parse(text.as_bytes()).unwrap();
    let me = std::env::current_exe().unwrap();
    assert!(entries.iter().any(|e| e.pid.get() == pid && e.file.to_bytes() == exe.to_str().unwrap().as_bytes()));
    assert!(entries.iter().any(|e| e.pid.get() == std::process::id() && e.exe.to_bytes() == me.to_str().unwrap().as_bytes()));
    assert!(entries.iter().all(|e| e.verdict == Verdict::Ok), "{text}");
    let sleep_digest = HashAlg::Sha256.hash(&std::fs::read(&exe).unwrap());
    assert!(entries.iter().any(|e| e.file_digest == sleep_digest));

    // Incremental: from N gives the rest; past the end gives everything from 0.
    let n = entries.len() as u64;
    let rest = list(&http, &base, n).await;
    assert_eq!(rest["from"].as_u64(), Some(n));
    assert!(rest["list"].as_str().unwrap().len() + text.len() >= text.len());
    let past = list(&http, &base, n + 1_000_000).await;
    assert_eq!(past["from"].as_u64(), Some(0));

    // Patch the code of sleep (not running: it sits in nanosleep inside libc).
    let (start, end) = patch_code(pid, &exe, &[0xcc, 0xcc, 0xcc, 0xcc]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let modified = loop {
        let r = list(&http, &base, n).await;
        let t = r["list"].as_str().unwrap().to_owned();
        let found = hvm::Entries::new(t.as_bytes(), n)
            .map(Result::unwrap)
            .find(|e| e.verdict == Verdict::Modified)
            .map(|e| (e.pid.get(), e.range.start(), e.range.end(), e.file.to_bytes()));
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "the patch was never logged: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(modified, (pid, start, end, exe.to_str().unwrap().as_bytes().to_vec()));

    // Stopped, the saved list replays to the PCR the TPM holds.
    agent.stop().await;
    let saved = std::fs::read(node.path("state").join("hvm/list")).unwrap();
    let mut s = ReplayState::new(HashAlg::Sha256);
    let m = Replayer::new(pcr13()).replay(&mut s, &saved).unwrap();
    assert!(m.hash_mismatches.is_empty() && m.wrong_pcr.is_empty());
    assert_eq!(s.value(), read_pcr13(&node));

    // Restarted, the agent continues the list (same first entries) rather than starting afresh.
    let again = Agent::start(config()).await.unwrap();
    let http = client(&again.mtls_cert);
    let r = list(&http, &format!("https://{}", again.addr), 0).await;
    assert!(r["list"].as_str().unwrap().starts_with(std::str::from_utf8(&saved).unwrap()));
    again.stop().await;
}
