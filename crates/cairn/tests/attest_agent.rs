//! The verifier's per-round judgement against the real `cairn agent` on a real swtpm: the test
//! writes an IMA log while extending the same template hashes into PCR 10 (as the kernel would),
//! asks the agent for `quotes/integrity` as a verifier does, and hands each reply to
//! `cairn_core::attest::judge` with a full-digest runtime policy. Rounds pass and IMA travels
//! incrementally; an entry whose digest the policy does not list fails the next round, named by
//! its path; a quote for another nonce fails `nonce_mismatch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::attest::{judge, AgentPolicy, AgentState, Failure, Judgement, Round, Verdict};
use cairn_core::crypto::VerifyingKey;
use cairn_core::ima::{FileDigest, Template};
use cairn_core::pcr::PcrIndex;
use cairn_core::policy::runtime::{FailureReason, RuntimePolicy};
use cairn_core::tpm::Public;
use cairn_core::{Digest, HashAlg};
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use cairn_tpm::Tpm;

/// A process started in its own process group, stopped (by its group id) on drop.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pgid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
            let _ = self.child.wait();
        }
    }
}

/// Starts `cairn agent --no-register` and returns it with the address it serves.
fn start_agent(tcti: &str, state: &Path, ima: &Path, uefi: &Path) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["agent", "--no-register", "--tcti", tcti, "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .arg("--ima-log")
        .arg(ima)
        .arg("--uefi-log")
        .arg(uefi)
        .env_remove("CAIRN_AGENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut proc = Proc { child: cmd.spawn().unwrap() };
    let stdout = proc.child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    if !line.starts_with("cairn agent ") {
        let mut err = String::new();
        let _ = proc.child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("cairn agent did not come up: {err}");
    }
    let addr = line.split_whitespace().last().unwrap().to_owned();
    (proc, addr)
}

/// An HTTPS client trusting exactly the agent's self-signed certificate.
fn client(cert_pem: &[u8]) -> reqwest::blocking::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::blocking::Client::builder().use_preconfigured_tls(tls).build().unwrap()
}

/// Appends `lines` to the IMA log and extends PCR 10 as the kernel does (sha1: template hash,
/// sha256: H(template data)), through a short-lived TPM connection beside the running agent.
fn measure(tcti: &str, ima: &Path, lines: &[u8]) {
    std::fs::OpenOptions::new().create(true).append(true).open(ima).unwrap().write_all(lines).unwrap();
    let mut tpm = Tpm::open(tcti).unwrap();
    let mut scratch = Vec::new();
    for e in cairn_core::ima::parse(lines).unwrap() {
        let data = e.template_data(&mut scratch).unwrap().to_vec();
        let sha1 = Digest::from_bytes(HashAlg::Sha1, e.template_hash.as_bytes()).unwrap();
        tpm.pcr_extend(PcrIndex::new(10).unwrap(), &[sha1, HashAlg::Sha256.hash(&data)]).unwrap();
    }
}

/// An `ima-ng` line for `path` with a file digest the policy does not list.
fn rogue_line(path: &str) -> Vec<u8> {
    let file_digest = HashAlg::Sha256.hash(b"a binary nobody allowed");
    let digest = FileDigest::new(b"sha256", file_digest.as_bytes(), "d-ng").unwrap();
    let mut data = Vec::new();
    assert!(Template::ImaNg { digest, path: path.as_bytes() }.encode(&mut data));
    let thash = HashAlg::Sha1.hash(&data);
    format!("10 {} ima-ng sha256:{} {path}\n", thash.to_hex(), file_digest.to_hex()).into_bytes()
}

/// One `quotes/integrity` request; returns the `results` object.
fn ask(http: &reqwest::blocking::Client, base: &str, nonce: &str, partial: u8, entry: u64) -> serde_json::Value {
    let url = format!("{base}/quotes/integrity?nonce={nonce}&mask=0x400&partial={partial}&ima_ml_entry={entry}");
    let resp = http.get(&url).send().unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body["results"].clone()
}

/// Judges a reply, as the verifier would, with `nonce` as the nonce it sent.
fn judge_reply(policy: &AgentPolicy, state: &AgentState, r: &serde_json::Value, nonce: &str) -> Judgement {
    let round = Round {
        nonce: nonce.as_bytes(),
        mask: 1 << 10,
        quote: r["quote"].as_str().unwrap(),
        boottime: r["boottime"].as_u64(),
        pubkey: r["pubkey"].as_str(),
        ima_lines: r["ima_measurement_list"].as_str().map(str::as_bytes),
        ima_entry: r["ima_measurement_list_entry"].as_u64(),
        uefi_log: None,
    };
    judge(policy, state, &round)
}

fn failures(j: &Judgement) -> &[Failure] {
    match &j.verdict {
        Verdict::Pass => &[],
        Verdict::Fail(f) => f,
    }
}

#[test]
fn verifier_rounds_against_the_real_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("attest-agent-ca")).unwrap();
    let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None }).unwrap();
    let tcti = swtpm.tcti();
    let (ima, uefi, state_dir) = (dir.join("ima.ascii"), dir.join("uefi.bin"), dir.join("state"));
    let synth = cairn_core::ima::synth::generate(30);
    let lines: Vec<&[u8]> = synth.log.split_inclusive(|b| *b == b'\n').collect();
    measure(&tcti, &ima, &lines[..10].concat());
    std::fs::write(&uefi, b"").unwrap();

    let (_agent, addr) = start_agent(&tcti, &state_dir, &ima, &uefi);
    let http = client(&std::fs::read(state_dir.join("mtls.crt")).unwrap());
    let base = format!("https://{addr}/v2.5");
    let ak = Public::parse_tpm2b(&std::fs::read(state_dir.join("ak.pub")).unwrap()).unwrap();
    let mut policy = AgentPolicy {
        ak: VerifyingKey::from_public(&ak),
        nk_pem: None,
        hash: HashAlg::Sha256,
        pcr_policy: None,
        runtime: Some(Arc::new(RuntimePolicy::from_json(&synth.policy_json).unwrap())),
        measured_boot: None,
        require_safe_clock: false,
    };

    // Round 1: the whole list, with the NK (which the verifier then keeps for PCR 16).
    let r = ask(&http, &base, "round1", 0, 0);
    policy.nk_pem = r["pubkey"].as_str().map(str::to_owned);
    assert!(policy.nk_pem.is_some());
    let j = judge_reply(&policy, &AgentState::new(HashAlg::Sha256), &r, "round1");
    assert_eq!(j.verdict, Verdict::Pass, "{:?}", failures(&j));
    assert_eq!(j.next_ima_entry, 10);
    let mut state = j.next_state;

    // Rounds 2 and 3: ten new entries each, sent from where the verifier stands.
    for (round, chunk) in [(2u64, &lines[10..20]), (3, &lines[20..30])] {
        measure(&tcti, &ima, &chunk.concat());
        let nonce = format!("round{round}");
        let asked = state.ima.replay.next_entry();
        let r = ask(&http, &base, &nonce, 1, asked);
        assert_eq!(r["ima_measurement_list_entry"].as_u64(), Some(asked));
        assert_eq!(r["ima_measurement_list"].as_str().unwrap().as_bytes(), chunk.concat().as_slice(), "only new lines");
        let j = judge_reply(&policy, &state, &r, &nonce);
        assert_eq!(j.verdict, Verdict::Pass, "round {round}: {:?}", failures(&j));
        assert_eq!(j.next_ima_entry, round * 10);
        state = j.next_state;
    }

    // A file whose digest the policy does not list: the next round fails, naming it, and the
    // state does not move past it.
    let path = "/usr/bin/file-0000004";
    measure(&tcti, &ima, &rogue_line(path));
    let r = ask(&http, &base, "round4", 1, 30);
    let j = judge_reply(&policy, &state, &r, "round4");
    let f = failures(&j);
    assert_eq!(f.len(), 1, "{f:?}");
    let Failure::ImaEntry(e) = &f[0] else { panic!("{f:?}") };
    assert_eq!((e.entry, e.path.as_str()), (30, path));
    assert!(matches!(e.reason, FailureReason::DigestMismatch { .. }), "{:?}", e.reason);
    assert!(f[0].to_string().contains(path));
    assert_eq!(j.next_ima_entry, 30);
    assert_eq!(j.next_state.ima, state.ima);

    // A quote made for another nonce than the one the verifier sent.
    let r = ask(&http, &base, "sentbyattacker", 1, 30);
    let j = judge_reply(&policy, &state, &r, "round5");
    assert_eq!(failures(&j).iter().map(Failure::check).collect::<Vec<_>>(), ["nonce_mismatch"]);
    assert_eq!(j.next_state, state);

    // The agent's UEFI log is not judged: PCR 0 was not asked for.
    assert!(r.get("mb_measurement_list").is_none());
}
