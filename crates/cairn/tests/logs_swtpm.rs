//! Logs written by the test while it extends the very same digests into a real swtpm: a quote of
//! those PCRs must equal our replay of the logs, and the IMA appraisal must find the quoted PCR 10.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::PathBuf;

use cairn_core::crypto::VerifyingKey;
use cairn_core::eventlog::{encode, EventLog, EventType, SpecIdEvent};
use cairn_core::ima::BankSet;
use cairn_core::pcr::{PcrIndex, PcrSelection};
use cairn_core::policy::runtime::{appraise, AppraisalConfig, AppraisalState, PcrOutcome, RuntimePolicy};
use cairn_core::quote::{verify_quote, Expected, QuoteParts};
use cairn_core::tpm::{encode_pcr_blob, Public};
use cairn_core::HashAlg;
use cairn_tpm::swtpm::{Swtpm, SwtpmOptions};
use cairn_tpm::{AkAlg, AkSpec, Tpm};

#[test]
fn quote_of_pcrs_extended_from_written_logs_matches_our_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = cairn_tpm::swtpm::SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logs-ek-ca")).unwrap();
    let swtpm = Swtpm::start(&tmp.path().join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None }).unwrap();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let banks = [HashAlg::Sha1, HashAlg::Sha256];

    // 1. A UEFI-style log: every measured record is extended, in both banks, as firmware would.
    let spec = SpecIdEvent::new(&banks);
    let mut uefi = Vec::new();
    encode::write_spec_id(&mut uefi, &spec).unwrap();
    let records: [(u32, EventType, &[u8]); 6] = [
        (0, EventType::POST_CODE, b"firmware volume"),
        (0, EventType::SEPARATOR, &[0, 0, 0, 0]),
        (4, EventType::EFI_ACTION, b"Calling EFI Application from Boot Option"),
        (7, EventType::EFI_ACTION, b"secure boot off"),
        (5, EventType::IPL, b"grub_cmd: linux /vmlinuz root=/dev/vda1"),
        (4, EventType::SEPARATOR, &[0, 0, 0, 0]),
    ];
    for (pcr, ty, data) in records {
        encode::write_measured(&mut uefi, &spec, pcr, ty, data).unwrap();
        let digests: Vec<_> = banks.iter().map(|b| b.hash(data)).collect();
        tpm.pcr_extend(PcrIndex::new(pcr as u8).unwrap(), &digests).unwrap();
    }

    // 2. An IMA log: the kernel extends sha1 with the template hash and sha256 with H(template data).
    let synth = cairn_core::ima::synth::generate(300);
    let entries = cairn_core::ima::parse(&synth.log).unwrap();
    let mut scratch = Vec::new();
    for e in &entries {
        let data = e.template_data(&mut scratch).expect("ima-ng data rebuilds").to_vec();
        let sha1 = cairn_core::Digest::from_bytes(HashAlg::Sha1, e.template_hash.as_bytes()).unwrap();
        tpm.pcr_extend(PcrIndex::new(10).unwrap(), &[sha1, HashAlg::Sha256.hash(&data)]).unwrap();
    }

    // 3. Quote, verify, and compare with our replays.
    let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
    let sel: PcrSelection = "sha1:0,4,5,7,10+sha256:0,4,5,7,10".parse().unwrap();
    let quote = tpm.quote(&ak, b"logs-nonce", &sel).unwrap();
    drop(tpm);
    let key = VerifyingKey::from_public(&Public::parse_tpm2b(&ak.public).unwrap());
    let blob = encode_pcr_blob(&quote.pcrs);
    let verified = verify_quote(&key, QuoteParts { message: &quote.attest, signature: &quote.signature, pcrs: &blob }, Expected::nonce(b"logs-nonce")).unwrap();

    let log = EventLog::parse(&uefi).unwrap();
    let replayed = log.replay();
    for alg in banks {
        for n in [0u8, 4, 5, 7] {
            let pcr = PcrIndex::new(n).unwrap();
            assert_eq!(verified.pcrs.get(alg, pcr), Some(&replayed.bank(alg).unwrap().value(pcr)), "{alg}:{n}");
        }
    }
    let (state, _) = cairn_core::ima::replay::replay(&synth.log, BankSet::of(&banks)).unwrap();
    for alg in banks {
        assert_eq!(verified.pcrs.get(alg, PcrIndex::new(10).unwrap()), state.value(alg).as_ref(), "{alg}:10");
    }
    // The appraisal against the quoted sha256 PCR 10 passes with the full-digest policy.
    let policy = RuntimePolicy::from_json(&synth.policy_json).unwrap();
    let quoted = *verified.pcrs.get(HashAlg::Sha256, PcrIndex::new(10).unwrap()).unwrap();
    let a = appraise(Some(&policy), &AppraisalState::new(BankSet::of(&banks)), &synth.log, Some(&quoted), &AppraisalConfig::default()).unwrap();
    assert!(a.passed(), "{:?}", a.failures);
    assert_eq!(a.pcr, PcrOutcome::Matched { entries: entries.len() as u64 });
}
