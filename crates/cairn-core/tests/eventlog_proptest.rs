//! Properties of the event-log parser: no input makes it (or what reads its output) panic, and
//! logs it writes parse back to the same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::eventlog::encode::synthetic;
use cairn_core::eventlog::EventLog;
use cairn_core::policy::measured_boot::facts::BootFacts;
use cairn_core::HashAlg;
use proptest::prelude::*;

/// Everything downstream of a parse, so a panic anywhere is caught.
fn exercise(bytes: &[u8]) {
    if let Ok(log) = EventLog::parse(bytes) {
        for ev in log.events() {
            let _ = ev.decode().map(|d| format!("{d:?}"));
        }
        let pcrs = log.replay();
        for b in pcrs.banks() {
            let _ = pcrs.boot_aggregate(b.alg(), cairn_core::eventlog::BootAggregate::Pcrs0To9);
        }
        let _ = BootFacts::gather(&log);
        let _ = log.encode();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_valid_logs_never_panic(
        records in 0usize..12,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut log = synthetic(&[HashAlg::Sha1, HashAlg::Sha256], records);
        for (pos, x) in flips {
            let n = log.len();
            if let Some(b) = log.get_mut(pos % n) {
                *b ^= x;
            }
        }
        let n = log.len();
        exercise(&log[..cut % (n + 1)]);
    }

    #[test]
    fn synthetic_logs_round_trip(records in 0usize..40, four_banks in any::<bool>()) {
        let banks: &[HashAlg] = if four_banks {
            &[HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
        } else {
            &[HashAlg::Sha256]
        };
        let bytes = synthetic(banks, records);
        let log = EventLog::parse(&bytes).unwrap();
        prop_assert_eq!(log.events().len(), records + 1);
        prop_assert_eq!(&log.encode().unwrap(), &bytes);
        prop_assert_eq!(log.replay().banks().len(), banks.len());
    }
}
