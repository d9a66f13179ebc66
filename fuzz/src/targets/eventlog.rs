//! Fuzz target `eventlog`.

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
