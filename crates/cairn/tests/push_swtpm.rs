//! Push-on-change on real parts: `cairn agent --push-on-change` on swtpm, a verifier whose quote
//! interval is ten minutes. After the first round, every further round can only have been asked
//! for by the agent: new allowed measurements are attested (round count grows, still attested),
//! and an executable nobody allowed fails the node naming the entry — long before any interval.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;

use std::path::PathBuf;

use cairn_core::ima::{FileDigest, Template};
use cairn_core::HashAlg;
use cairn_tpm::swtpm::SwtpmCa;
use fleet::{count, free_port, AgentNode, Fleet};

/// Lines `from..to` of an ASCII log.
fn lines(log: &[u8], from: usize, to: usize) -> Vec<u8> {
    log.split_inclusive(|b| *b == b'\n').skip(from).take(to - from).flatten().copied().collect()
}

fn rogue_line(path: &str) -> Vec<u8> {
    let file_digest = HashAlg::Sha256.hash(b"pushed: a binary nobody allowed");
    let digest = FileDigest::new(b"sha256", file_digest.as_bytes(), "d-ng").unwrap();
    let mut data = Vec::new();
    assert!(Template::ImaNg { digest, path: path.as_bytes() }.encode(&mut data));
    format!("10 {} ima-ng sha256:{} {path}\n", HashAlg::Sha1.hash(&data).to_hex(), file_digest.to_hex()).into_bytes()
}

#[test]
fn a_pushing_agent_is_attested_when_its_log_grows_not_at_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("push-ca")).unwrap();
    let synthetic = cairn_core::ima::synth::generate(30);
    let policy = dir.join("policy.json");
    std::fs::write(&policy, &synthetic.policy_json).unwrap();

    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let a = AgentNode::start_with(&dir.join("a"), &ca, &http, &["--push-on-change".to_owned()]);
    a.measure(&lines(&synthetic.log, 0, 10));
    fleet.start_verifier_every(free_port(), 600_000);
    let (ok, out) = fleet.node(&["add", &a.uuid, "--runtime-policy", policy.to_str().unwrap()]);
    assert!(ok, "{out}");
    fleet.wait(&a.uuid, "attested once", |s| s["cairn_state"] == "attested" && count(s) >= 1);
    // The watcher's first poll (it starts knowing 0 entries) may ask for one round more; let it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after_first = count(&fleet.status(&a.uuid));

    // Allowed growth: attested again (the interval is ten minutes away).
    a.measure(&lines(&synthetic.log, 10, 20));
    let s = fleet.wait(&a.uuid, "attested after its log grew", |s| s["cairn_state"] == "attested" && count(s) > after_first);
    assert_eq!(s["attestation_status"], "PASS");

    // An unknown executable: failed at once, naming it.
    a.measure(&rogue_line("/tmp/.x/pushed-miner"));
    let s = fleet.wait(&a.uuid, "failed", |s| s["cairn_state"] == "failed");
    let reasons = s["failures"].to_string();
    assert!(reasons.contains("/tmp/.x/pushed-miner"), "{s}");
}
