//! Measured-boot reference states generated from real logs accept those logs and reject the same
//! logs with one boot component changed (records re-encoded with consistent digests, as an
//! attacker who controls the log but not the PCRs' history would write them).

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use cairn_core::eventlog::encode::write_event2;
use cairn_core::eventlog::{Event, EventLog};
use cairn_core::policy::measured_boot::facts::BootFacts;
use cairn_core::policy::measured_boot::{generate, MbFailure, MeasuredBootPolicy, RefState};
use cairn_core::{Digest, HashAlg};

const SECURE_BOOT_LOGS: [&str; 3] =
    ["ovmf-secureboot-swtpm_sha256.bin", "keylime-mb-log_sha256.bin", "ovmf-edk2-el9-secureboot_sha256.bin"];

fn load(name: &str) -> Option<Vec<u8>> {
    common::testdata(&format!("eventlogs/{name}")).map(|p| std::fs::read(p).unwrap())
}

/// The log with record `index` replaced by one carrying `data` and `digests`.
fn rebuild(log: &EventLog<'_>, index: usize, digests: &[Digest], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in log.events() {
        if ev.index() == index {
            write_event2(&mut out, ev.pcr_raw(), ev.event_type(), digests, data).unwrap();
        } else {
            out.extend_from_slice(ev.raw());
        }
    }
    out
}

/// Every digest of `ev` replaced by the same bank's hash of `data`.
fn rehash(ev: &Event<'_>, data: &[u8]) -> Vec<Digest> {
    ev.digests().iter().map(|d| d.alg().hash(data)).collect()
}

fn other_digests(ev: &Event<'_>) -> Vec<Digest> {
    ev.digests().iter().map(|d| d.alg().hash(d.as_bytes())).collect()
}

fn judge(policy: &MeasuredBootPolicy, bytes: &[u8]) -> Result<(), Vec<MbFailure>> {
    policy.evaluate(&EventLog::parse(bytes).unwrap())
}

#[test]
fn generated_reference_accepts_its_own_log_and_survives_json() {
    for name in SECURE_BOOT_LOGS {
        let Some(bytes) = load(name) else { return };
        let log = EventLog::parse(&bytes).unwrap();
        let refstate = generate(&log).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(refstate.has_secureboot, "{name}");
        assert!(!refstate.db.is_empty() && refstate.kernels[0].kernel_authcode_sha256.is_some(), "{name}");
        let again = RefState::from_json(&refstate.to_json()).unwrap();
        assert_eq!(again, refstate);
        let policy = MeasuredBootPolicy::new(again).unwrap();
        if let Err(f) = policy.evaluate(&log) {
            panic!("{name}: {}", f.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
        }
    }
}

#[test]
fn changed_shim_grub_or_kernel_is_rejected() {
    for name in SECURE_BOOT_LOGS {
        let Some(bytes) = load(name) else { return };
        let log = EventLog::parse(&bytes).unwrap();
        let policy = MeasuredBootPolicy::new(generate(&log).unwrap()).unwrap();
        let facts = BootFacts::gather(&log);
        for (pos, what) in ["shim", "grub", "kernel"].iter().enumerate() {
            let ev = facts.boot_apps[pos];
            let modified = rebuild(&log, ev.index(), &other_digests(ev), ev.data());
            let failures = judge(&policy, &modified).expect_err(what);
            assert!(
                failures.iter().any(|f| matches!(f, MbFailure::BootChain { actual, .. } if actual.iter().any(|(i, _)| *i == ev.index()))),
                "{name} {what}: {failures:?}"
            );
        }
    }
}

#[test]
fn changed_db_entry_is_rejected_even_when_consistently_measured() {
    let Some(bytes) = load("ovmf-secureboot-swtpm_sha256.bin") else { return };
    let log = EventLog::parse(&bytes).unwrap();
    let policy = MeasuredBootPolicy::new(generate(&log).unwrap()).unwrap();
    let facts = BootFacts::gather(&log);
    let db = &facts.keys[2][0];
    let ev = &log.events()[db.index];
    let mut data = ev.data().to_vec();
    *data.last_mut().unwrap() ^= 0x55; // last byte of the last db certificate
    // Consistent digests: the policy must reject the content.
    let failures = judge(&policy, &rebuild(&log, ev.index(), &rehash(ev, &data), &data)).unwrap_err();
    assert!(
        failures.iter().any(|f| matches!(f, MbFailure::KeyNotAllowed { var: "db", index, .. } if *index == ev.index())),
        "{failures:?}"
    );
    // Data changed but digests kept: the data is not believed at all.
    let failures = judge(&policy, &rebuild(&log, ev.index(), &ev.digests().iter().copied().collect::<Vec<_>>(), &data)).unwrap_err();
    assert!(failures.iter().any(|f| matches!(f, MbFailure::DataNotMeasured { .. })), "{failures:?}");
}

#[test]
fn changed_kernel_command_line_is_rejected() {
    let Some(bytes) = load("keylime-mb-log_sha256.bin") else { return };
    let log = EventLog::parse(&bytes).unwrap();
    let policy = MeasuredBootPolicy::new(generate(&log).unwrap()).unwrap();
    let facts = BootFacts::gather(&log);
    let (index, line) = facts.cmdlines[0].clone();
    let ev = &log.events()[index];
    let evil = format!("{line} init=/bin/sh");
    let data = format!("kernel_cmdline: {evil}\0");
    let modified = rebuild(&log, index, &rehash(ev, evil.as_bytes()), data.as_bytes());
    let failures = judge(&policy, &modified).unwrap_err();
    assert!(failures.iter().any(|f| matches!(f, MbFailure::KernelCmdline { actual, .. } if *actual == evil)), "{failures:?}");
}

#[test]
fn secure_boot_off_reference_rejects_secure_boot_log_and_reports_state() {
    let Some(bytes) = load("ovmf-secureboot-swtpm_sha256.bin") else { return };
    let log = EventLog::parse(&bytes).unwrap();
    let mut refstate = generate(&log).unwrap();
    refstate.has_secureboot = false;
    let failures = MeasuredBootPolicy::new(refstate).unwrap().evaluate(&log).unwrap_err();
    let msg = failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    assert!(msg.contains("SecureBoot") && msg.contains("expected disabled, measured enabled"), "{msg}");
}

#[test]
fn systemd_boot_command_line_is_read_from_pcr12() {
    let Some(bytes) = load("systemd-boot-fedora37_sha256.bin") else { return };
    let log = EventLog::parse(&bytes).unwrap();
    let facts = BootFacts::gather(&log);
    assert!(!facts.cmdlines.is_empty());
    assert!(facts.cmdlines.iter().all(|(_, c)| c.contains("console=ttyS0")), "{:?}", facts.cmdlines);
    assert!(facts.problems.is_empty(), "{:?}", facts.problems);
}

#[test]
fn reference_state_without_sha256_bank_log_is_a_named_failure() {
    let mut log = Vec::new();
    let spec = cairn_core::eventlog::SpecIdEvent::new(&[HashAlg::Sha1]);
    cairn_core::eventlog::encode::write_spec_id(&mut log, &spec).unwrap();
    let parsed = EventLog::parse(&log).unwrap();
    let policy = MeasuredBootPolicy::from_json(
        r#"{"scrtm_and_bios": [], "pk": [], "kek": [], "db": [], "dbx": [], "mokdig": [], "mokxdig": [], "kernels": []}"#,
    )
    .unwrap();
    assert_eq!(policy.evaluate(&parsed).unwrap_err(), vec![MbFailure::NoSha256Bank]);
}
