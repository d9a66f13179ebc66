//! One function per fuzz target.

use cairn_core::crypto::{spki, VerifyingKey};
use cairn_core::quote::{verify_quote, Expected, QuoteParts};
use cairn_core::tpm::{decode_pcr_blob, encode_pcr_blob, Attest, Public, Signature};

/// TPM structures: each parser on the whole input; what parses re-encodes to the same bytes.
pub fn tpm_structures(data: &[u8]) {
    if let Ok(a) = Attest::parse(data) {
        assert_eq!(a.to_bytes(), data, "TPMS_ATTEST re-encodes differently");
    }
    if let Ok(s) = Signature::parse(data) {
        assert_eq!(s.to_bytes(), data, "TPMT_SIGNATURE re-encodes differently");
    }
    if let Ok(p) = Public::parse_tpm2b(data) {
        assert_eq!(p.to_tpm2b(), data, "TPM2B_PUBLIC re-encodes differently");
        let _ = spki::to_spki_der(&p.key);
    }
    if let Ok(v) = decode_pcr_blob(data) {
        let _ = encode_pcr_blob(&v);
    }
    let _ = spki::from_spki_der(data);
}

/// A whole quote check over input split into key, message, signature and PCRs.
pub fn quote(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0xA5);
    let (Some(k), Some(m), Some(s), Some(p)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if let Ok(public) = Public::parse_tpm2b(k) {
        let key = VerifyingKey::from_public(&public);
        let _ = verify_quote(&key, QuoteParts { message: m, signature: s, pcrs: p }, Expected::nonce(b"nonce"));
    }
}

/// UEFI / TCG event log: parse, decode every event, replay, gather measured-boot facts; a log
/// whose banks are all supported must re-encode to a log with the same records.
pub fn eventlog(data: &[u8]) {
    use cairn_core::eventlog::EventLog;
    let Ok(log) = EventLog::parse(data) else { return };
    for ev in log.events() {
        let _ = ev.decode().map(|d| format!("{d:?}"));
    }
    let pcrs = log.replay();
    for b in pcrs.banks() {
        let _ = pcrs.boot_aggregate(b.alg(), cairn_core::eventlog::BootAggregate::Pcrs0To9);
    }
    let _ = cairn_core::policy::measured_boot::facts::BootFacts::gather(&log);
    let all_supported = log.spec_id().is_none_or(|s| s.algorithms().len() == s.banks().count());
    if all_supported {
        let bytes = log.encode().unwrap_or_default();
        let again = EventLog::parse(&bytes);
        let Ok(again) = again else { panic!("re-encoded log does not parse: {again:?}") };
        let fields = |l: &EventLog<'_>| -> Vec<_> {
            l.events().iter().map(|e| (e.pcr_raw(), e.event_type(), *e.digests(), e.data().to_vec())).collect()
        };
        assert_eq!(fields(&again), fields(&log), "re-encoding changed the records");
    }
}

/// IMA measurement lists: parse (ASCII or binary, detected) and replay every bank; an appraisal
/// with an empty policy must not panic either.
pub fn ima(data: &[u8]) {
    use cairn_core::ima::{BankSet, ReplayConfig, ReplayState, Replayer};
    use cairn_core::policy::runtime::{appraise, AppraisalConfig, AppraisalState, RuntimePolicy};
    let _ = cairn_core::ima::parse(data);
    let mut state = ReplayState::new(BankSet::ALL);
    let _ = Replayer::new(ReplayConfig::default()).replay(&mut state, data);
    let policy = RuntimePolicy::empty();
    let start = AppraisalState::new(BankSet::ALL);
    let _ = appraise(Some(&policy), &start, data, None, &AppraisalConfig::default());
/// EK certificates: parse (DER with NV padding, or PEM bundles), read every field, build and
/// check a chain against the certificate itself as anchor; and the tpm2-tools credential file.
pub fn ekcert(data: &[u8]) {
    use cairn_core::credential::MadeCredential;
    use cairn_core::ekcert::{certificates_from_bytes, verify_chain, Certificate, TrustStore};
    if let Ok(c) = Certificate::from_der(data) {
        let _ = c.public_key();
        let _ = (c.subject().to_string(), c.issuer().to_string(), c.serial_hex(), c.tpm_identity());
        let mut store = TrustStore::new();
        store.add_anchor(c.clone());
        assert!(verify_chain(&c, &store, c.not_before()).is_ok() || c.not_after() < c.not_before() || !c.extensions().unknown_critical.is_empty());
        let _ = verify_chain(&c, &TrustStore::new(), 0);
    }
    let _ = certificates_from_bytes(data);
    if let Ok(m) = MadeCredential::from_tpm2_tools(data) {
        assert_eq!(m.to_tpm2_tools(), data, "credential file re-encodes differently");
    }
}
