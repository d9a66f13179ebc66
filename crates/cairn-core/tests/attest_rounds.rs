//! The verifier's per-round judgement (`cairn_core::attest::judge`) over quotes signed in software
//! with an AK-shaped P-256 key: these test the judgement logic (state, increments, reboots, which
//! failures are reported), not a TPM — `crates/cairn/tests/attest_agent.rs` does that with swtpm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod common;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use cairn_core::attest::{judge, nk_binding, AgentPolicy, AgentState, Failure, Judgement, Round, Verdict};
use cairn_core::crypto::VerifyingKey;
use cairn_core::eventlog::EventLog;
use cairn_core::ima::replay::{replay, BankSet};
use cairn_core::ima::synth;
use cairn_core::pcr::{BankSelection, PcrSelection, PcrValues};
use cairn_core::policy::measured_boot::{generate, MeasuredBootPolicy};
use cairn_core::policy::pcr::PcrPolicy;
use cairn_core::policy::runtime::{FailureReason, RuntimePolicy};
use cairn_core::quote::{encode_quote_string, QuoteFailure};
use cairn_core::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
use cairn_core::tpm::signature::SignatureValue;
use cairn_core::tpm::{encode_pcr_blob, Attest, EccCurve, Public, PublicKey, SigScheme, Signature};
use cairn_core::{Digest, HashAlg};

const BANK: HashAlg = HashAlg::Sha256;
const IMA: u32 = 1 << 10;

/// A software stand-in holding a sha256 PCR bank, a clock and an AK-shaped key.
struct SoftTpm {
    key: EcdsaKeyPair,
    ak: Public,
    pcrs: [Digest; 24],
    clock: ClockInfo,
}

impl SoftTpm {
    fn new() -> SoftTpm {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = key.public_key().as_ref();
        let pk = PublicKey::Ecc { curve: EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..65].to_vec() };
        let ak = Public::for_signing_key(&pk, SigScheme::Ecdsa, BANK).unwrap();
        let clock = ClockInfo { clock: 10_000, reset_count: 3, restart_count: 0, safe: true };
        SoftTpm { key, ak, pcrs: [BANK.zero(); 24], clock }
    }

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_public(&self.ak)
    }

    fn reboot(&mut self) {
        self.pcrs = [BANK.zero(); 24];
        self.clock = ClockInfo { clock: 50, reset_count: self.clock.reset_count + 1, restart_count: 0, safe: true };
    }

    /// Sets PCR 10 to the replay of the first `n` entries of `log`.
    fn measure_ima(&mut self, log: &[u8], n: usize) {
        let (state, _) = replay(&prefix(log, 0, n), BankSet::of(&[BANK])).unwrap();
        self.pcrs[10] = state.value(BANK).unwrap();
    }

    fn bind_nk(&mut self, pem: &str) {
        self.pcrs[16] = BANK.extend(&BANK.zero(), BANK.hash(pem.as_bytes()).as_bytes());
    }

    /// A Keylime quote string over `mask` + 16.
    fn quote(&mut self, nonce: &[u8], mask: u32) -> String {
        self.clock.clock += 1_000;
        let selection = PcrSelection::new(vec![BankSelection { alg: BANK, mask: mask | 1 << 16 }]).unwrap();
        let values = selection.iter().map(|(_, p)| self.pcrs[usize::from(p.get())]).collect();
        let values = PcrValues::new(selection.clone(), values).unwrap();
        let attest = Attest {
            magic: TPM_GENERATED_VALUE,
            qualified_signer: [&[0u8, 0x0b][..], &[0x42; 32]].concat(),
            extra_data: nonce.to_vec(),
            clock_info: self.clock,
            firmware_version: 1,
            info: AttestInfo::Quote { selection, pcr_digest: values.composite_digest(BANK).as_bytes().to_vec() },
        };
        let message = attest.to_bytes();
        let sig = self.key.sign(&SystemRandom::new(), &message).unwrap();
        let s = sig.as_ref();
        let value = SignatureValue::Ecc { r: s[..32].to_vec(), s: s[32..64].to_vec() };
        let signature = Signature { scheme: SigScheme::Ecdsa, hash: BANK, value }.to_bytes();
        encode_quote_string(&message, &signature, &encode_pcr_blob(&values))
    }
}

/// Lines `from..to` of an ASCII log.
fn prefix(log: &[u8], from: usize, to: usize) -> Vec<u8> {
    log.split_inclusive(|b| *b == b'\n').skip(from).take(to - from).flatten().copied().collect()
}

fn policy(tpm: &SoftTpm, runtime: Option<RuntimePolicy>) -> AgentPolicy {
    AgentPolicy {
        ak: tpm.verifying_key(),
        nk_pem: None,
        hash: BANK,
        pcr_policy: None,
        runtime: runtime.map(Arc::new),
        measured_boot: None,
        require_safe_clock: false,
    }
}

fn ima_round<'a>(nonce: &'a [u8], quote: &'a str, lines: &'a [u8], entry: u64, boottime: u64) -> Round<'a> {
    Round {
        nonce,
        mask: IMA,
        quote,
        boottime: Some(boottime),
        pubkey: None,
        ima_lines: Some(lines),
        ima_entry: Some(entry),
        uefi_log: None,
    }
}

fn failures(j: &Judgement) -> &[Failure] {
    match &j.verdict {
        Verdict::Pass => &[],
        Verdict::Fail(f) => f,
    }
}

fn checks(j: &Judgement) -> Vec<&'static str> {
    failures(j).iter().map(Failure::check).collect()
}

struct Setup {
    tpm: SoftTpm,
    log: Vec<u8>,
    policy: AgentPolicy,
}

fn setup(entries: usize) -> Setup {
    let syn = synth::generate(entries);
    let tpm = SoftTpm::new();
    let runtime = RuntimePolicy::from_json(&syn.policy_json).unwrap();
    let policy = policy(&tpm, Some(runtime));
    Setup { tpm, log: syn.log, policy }
}

#[test]
fn a_full_first_round_passes_and_resumes_after_the_last_entry() {
    let Setup { mut tpm, log, policy } = setup(10);
    tpm.measure_ima(&log, 10);
    let q = tpm.quote(b"nonce-1", IMA);
    let state = AgentState::new(BANK);
    let j = judge(&policy, &state, &ima_round(b"nonce-1", &q, &log, 0, 1000));
    assert_eq!(j.verdict, Verdict::Pass, "{:?}", failures(&j));
    assert_eq!(j.next_ima_entry, 10);
    assert_eq!(j.next_state.ima.replay.next_entry(), 10);
    assert_eq!(j.next_state.last_clock, Some(tpm.clock));
    assert_eq!(j.next_state.boottime, Some(1000));
    assert!(!j.full_log_next);
}

#[test]
fn two_rounds_are_incremental() {
    let Setup { mut tpm, log, policy } = setup(20);
    tpm.measure_ima(&log, 12);
    let q = tpm.quote(b"n1", IMA);
    let first = prefix(&log, 0, 12);
    let j1 = judge(&policy, &AgentState::new(BANK), &ima_round(b"n1", &q, &first, 0, 1000));
    assert_eq!(j1.verdict, Verdict::Pass, "{:?}", failures(&j1));
    assert_eq!(j1.next_ima_entry, 12);

    tpm.measure_ima(&log, 20);
    let q = tpm.quote(b"n2", IMA);
    let second = prefix(&log, 12, 20);
    let j2 = judge(&policy, &j1.next_state, &ima_round(b"n2", &q, &second, 12, 1000));
    assert_eq!(j2.verdict, Verdict::Pass, "{:?}", failures(&j2));
    assert_eq!(j2.next_ima_entry, 20);

    // The same increment at the wrong position is refused and the state does not move.
    let q = tpm.quote(b"n3", IMA);
    let j3 = judge(&policy, &j1.next_state, &ima_round(b"n3", &q, &second, 11, 1000));
    assert_eq!(checks(&j3), ["ima_position_mismatch"]);
    assert!(matches!(failures(&j3)[0], Failure::ImaPositionMismatch { expected: 12, actual: Some(11) }));
    assert_eq!(j3.next_state.ima, j1.next_state.ima);
    assert_eq!(j3.next_ima_entry, 12);
}

#[test]
fn a_log_running_ahead_of_the_quote_passes_and_resumes_at_the_match() {
    let Setup { mut tpm, log, policy } = setup(20);
    tpm.measure_ima(&log, 15);
    let q = tpm.quote(b"n1", IMA);
    let j1 = judge(&policy, &AgentState::new(BANK), &ima_round(b"n1", &q, &log, 0, 1000));
    assert_eq!(j1.verdict, Verdict::Pass, "{:?}", failures(&j1));
    assert_eq!(j1.next_ima_entry, 15);

    tpm.measure_ima(&log, 20);
    let q = tpm.quote(b"n2", IMA);
    let rest = prefix(&log, 15, 20);
    let j2 = judge(&policy, &j1.next_state, &ima_round(b"n2", &q, &rest, 15, 1000));
    assert_eq!(j2.verdict, Verdict::Pass, "{:?}", failures(&j2));
    assert_eq!(j2.next_ima_entry, 20);
}

#[test]
fn entries_outside_the_policy_are_each_named_and_the_state_does_not_advance() {
    let syn = synth::generate(12);
    let mut tpm = SoftTpm::new();
    let runtime = RuntimePolicy::from_json(&synth::generate(10).policy_json).unwrap();
    let policy = policy(&tpm, Some(runtime));
    tpm.measure_ima(&syn.log, 12);
    let q = tpm.quote(b"n", IMA);
    let state = AgentState::new(BANK);
    let j = judge(&policy, &state, &ima_round(b"n", &q, &syn.log, 0, 1000));
    assert_eq!(checks(&j), ["ima_entry", "ima_entry"]);
    for (f, entry) in failures(&j).iter().zip([10, 11]) {
        let Failure::ImaEntry(e) = f else { panic!("{f:?}") };
        assert_eq!(e.entry, entry);
        assert!(e.path.ends_with(&format!("file-{entry:07}")), "{}", e.path);
        assert_eq!(e.reason, FailureReason::NotInPolicy);
        assert!(f.to_string().contains(&e.path));
    }
    assert_eq!(j.next_state.ima, state.ima);
    assert_eq!(j.next_ima_entry, 0);
}

#[test]
fn a_pcr10_no_prefix_reaches_fails() {
    let Setup { mut tpm, log, policy } = setup(5);
    tpm.pcrs[10] = BANK.hash(b"something else");
    let q = tpm.quote(b"n", IMA);
    let j = judge(&policy, &AgentState::new(BANK), &ima_round(b"n", &q, &log, 0, 1000));
    assert_eq!(checks(&j), ["ima_pcr_mismatch"]);
    assert_eq!(j.next_ima_entry, 0);
}

#[test]
fn a_missing_ima_list_fails_when_pcr10_is_asked() {
    let Setup { mut tpm, policy, .. } = setup(5);
    let q = tpm.quote(b"n", IMA);
    let mut round = ima_round(b"n", &q, b"", 0, 1000);
    round.ima_lines = None;
    let j = judge(&policy, &AgentState::new(BANK), &round);
    assert_eq!(checks(&j), ["ima_list_missing"]);
}

#[test]
fn a_reboot_resets_the_ima_state() {
    let Setup { mut tpm, log, policy } = setup(10);
    tpm.measure_ima(&log, 10);
    let q = tpm.quote(b"n1", IMA);
    let j1 = judge(&policy, &AgentState::new(BANK), &ima_round(b"n1", &q, &log, 0, 1000));
    assert_eq!(j1.verdict, Verdict::Pass, "{:?}", failures(&j1));

    tpm.reboot();
    tpm.measure_ima(&log, 4);
    let q = tpm.quote(b"n2", IMA);
    let after = prefix(&log, 0, 4);
    let j2 = judge(&policy, &j1.next_state, &ima_round(b"n2", &q, &after, 0, 2000));
    assert_eq!(j2.verdict, Verdict::Pass, "{:?}", failures(&j2));
    assert_eq!(j2.next_ima_entry, 4);
    assert_eq!(j2.next_state.boottime, Some(2000));
    assert_eq!(j2.next_state.last_clock.unwrap().reset_count, 4);
    assert!(!j2.full_log_next);

    // A changed boot time with an increment from the old position: refused, and the next round
    // must ask for the whole log.
    let q = tpm.quote(b"n3", IMA);
    let tail = prefix(&log, 10, 10);
    let j3 = judge(&policy, &j1.next_state, &ima_round(b"n3", &q, &tail, 10, 2000));
    assert_eq!(checks(&j3), ["ima_position_mismatch"]);
    assert!(j3.full_log_next);
    assert_eq!(j3.next_ima_entry, 0);
}

#[test]
fn quote_failures_stop_the_round_and_keep_the_state() {
    let Setup { mut tpm, log, policy } = setup(5);
    tpm.measure_ima(&log, 5);
    let state = AgentState::new(BANK);
    let q = tpm.quote(b"sent", IMA);
    let j = judge(&policy, &state, &ima_round(b"other", &q, b"garbage", 3, 1000));
    assert_eq!(checks(&j), ["nonce_mismatch"]);
    assert!(matches!(failures(&j)[0], Failure::Quote(QuoteFailure::NonceMismatch { .. })));
    assert_eq!(j.next_state, state);

    let j = judge(&policy, &state, &ima_round(b"sent", "rAA:AA", &log, 0, 1000));
    assert_eq!(checks(&j), ["quote_string"]);

    // A quote older than the last one accepted (a replay) fails the clock rule.
    let old = tpm.quote(b"n", IMA);
    let newer = tpm.quote(b"n2", IMA);
    let j1 = judge(&policy, &state, &ima_round(b"n2", &newer, &log, 0, 1000));
    assert_eq!(j1.verdict, Verdict::Pass, "{:?}", failures(&j1));
    let fresh = AgentState { ima: AgentState::new(BANK).ima, ..j1.next_state.clone() };
    let j2 = judge(&policy, &fresh, &ima_round(b"n", &old, &log, 0, 1000));
    assert_eq!(checks(&j2), ["clock_went_back"]);

    // Another AK's quote.
    let other = SoftTpm::new();
    let foreign = AgentPolicy { ak: other.verifying_key(), ..setup(1).policy };
    let j = judge(&foreign, &state, &ima_round(b"sent", &q, &log, 0, 1000));
    assert_eq!(checks(&j), ["bad_signature"]);
}

#[test]
fn pcr16_binds_the_nk() {
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQ==\n-----END PUBLIC KEY-----\n";
    let mut tpm = SoftTpm::new();
    tpm.bind_nk(pem);
    let mut policy = policy(&tpm, None);
    policy.nk_pem = Some(pem.to_string());
    let q = tpm.quote(b"n", 0);
    let round = Round {
        nonce: b"n",
        mask: 0,
        quote: &q,
        boottime: None,
        pubkey: Some(pem),
        ima_lines: None,
        ima_entry: None,
        uefi_log: None,
    };
    let state = AgentState::new(BANK);
    assert_eq!(judge(&policy, &state, &round).verdict, Verdict::Pass);
    assert_eq!(tpm.pcrs[16], nk_binding(BANK, pem));

    let other = pem.replace("MFkw", "MFkx");
    let j = judge(&policy, &state, &Round { pubkey: Some(&other), ..round });
    assert_eq!(checks(&j), ["nk_changed", "nk_not_bound"]);

    policy.nk_pem = Some(other.clone());
    let j = judge(&policy, &state, &Round { pubkey: None, ..round });
    assert_eq!(checks(&j), ["nk_not_bound"]);
}

#[test]
fn every_failure_of_a_round_is_reported() {
    let syn = synth::generate(6);
    let mut tpm = SoftTpm::new();
    let runtime = RuntimePolicy::from_json(&synth::generate(5).policy_json).unwrap();
    let mut policy = policy(&tpm, Some(runtime));
    let good = BANK.hash(b"good");
    policy.pcr_policy =
        Some(PcrPolicy::from_json(&format!(r#"{{"15": ["{}"], "mask": "0x8000"}}"#, good.to_hex())).unwrap());
    tpm.measure_ima(&syn.log, 6);
    tpm.pcrs[15] = BANK.hash(b"bad");
    // Ask for PCR 0 too, but quote only 10 and 15.
    let q = tpm.quote(b"n", IMA | 1 << 15);
    let round = Round { mask: IMA | 1 << 15 | 1, ..ima_round(b"n", &q, &syn.log, 0, 1000) };
    let j = judge(&policy, &AgentState::new(BANK), &round);
    assert_eq!(checks(&j), ["pcr_not_quoted", "ima_entry", "pcr_policy"]);
    assert!(matches!(&failures(&j)[0], Failure::PcrNotQuoted { pcr, .. } if pcr.get() == 0));

    // Fixing PCR 15 and the policy leaves a passing round.
    tpm.pcrs[15] = good;
    policy.runtime = Some(Arc::new(RuntimePolicy::from_json(&syn.policy_json).unwrap()));
    let q = tpm.quote(b"n", IMA | 1 << 15);
    let j = judge(&policy, &AgentState::new(BANK), &ima_round(b"n", &q, &syn.log, 0, 1000));
    assert_eq!(j.verdict, Verdict::Pass, "{:?}", failures(&j));
}

#[test]
fn measured_boot_replays_the_uefi_log_against_the_quote_then_judges_it() {
    let Some(path) = common::testdata("eventlogs/keylime-mb-log_sha256.bin") else { return };
    let bytes = std::fs::read(path).unwrap();
    let log = EventLog::parse(&bytes).unwrap();
    let mut tpm = SoftTpm::new();
    for (pcr, v) in log.replay().bank(BANK).unwrap().iter_touched() {
        tpm.pcrs[usize::from(pcr.get())] = v;
    }
    let mut policy = policy(&tpm, None);
    policy.measured_boot = Some(Arc::new(MeasuredBootPolicy::new(generate(&log).unwrap()).unwrap()));
    let mask = 0x3FF & !IMA;
    let q = tpm.quote(b"n", mask);
    let round = Round {
        nonce: b"n",
        mask,
        quote: &q,
        boottime: None,
        pubkey: None,
        ima_lines: None,
        ima_entry: None,
        uefi_log: Some(&bytes),
    };
    let state = AgentState::new(BANK);
    let j = judge(&policy, &state, &round);
    assert_eq!(j.verdict, Verdict::Pass, "{:?}", failures(&j));

    assert_eq!(checks(&judge(&policy, &state, &Round { uefi_log: None, ..round })), ["uefi_log_missing"]);
    assert_eq!(checks(&judge(&policy, &state, &Round { uefi_log: Some(&bytes[..40]), ..round })), ["uefi_log_malformed"]);

    tpm.pcrs[4] = BANK.hash(b"another boot loader");
    let q = tpm.quote(b"n", mask);
    let j = judge(&policy, &state, &Round { quote: &q, ..round });
    assert_eq!(checks(&j), ["uefi_pcr_mismatch"]);
    assert!(matches!(&failures(&j)[0], Failure::UefiPcrMismatch { pcr, .. } if pcr.get() == 4));
}

#[test]
fn a_failing_round_never_moves_the_ima_state_and_a_passing_one_stops_at_the_quote() {
    // Every cut of the list (mid-line included) and every quoted prefix: the judgement either
    // passes and resumes exactly at the quoted prefix, or fails and keeps the state.
    let Setup { mut tpm, log, policy } = setup(8);
    let state = AgentState::new(BANK);
    for quoted in [0, 3, 8] {
        tpm.measure_ima(&log, quoted);
        for cut in (0..=log.len()).step_by(7).chain([log.len()]) {
            let q = tpm.quote(b"n", IMA);
            let j = judge(&policy, &state, &ima_round(b"n", &q, &log[..cut], 0, 1000));
            match j.verdict {
                Verdict::Pass => assert_eq!(j.next_ima_entry, quoted as u64, "cut {cut}"),
                Verdict::Fail(_) => assert_eq!(j.next_state.ima, state.ima, "cut {cut}"),
            }
        }
    }
}

#[test]
fn the_state_kept_per_agent_is_small() {
    let size = std::mem::size_of::<AgentState>();
    eprintln!("AgentState: {size} bytes inline");
    assert!(size <= 640, "{size}");
}
