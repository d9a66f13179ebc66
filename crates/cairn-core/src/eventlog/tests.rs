//! Unit tests of the log parser on synthetic logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::encode::{write_event2, write_legacy, write_measured, write_spec_id};
use super::*;
use crate::pcr::PcrIndex;

fn agile(banks: &[HashAlg]) -> (SpecIdEvent, Vec<u8>) {
    let spec = SpecIdEvent::new(banks);
    let mut out = Vec::new();
    write_spec_id(&mut out, &spec).unwrap();
    (spec, out)
}

#[test]
fn crypto_agile_round_trip_and_replay() {
    let (spec, mut log) = agile(&[HashAlg::Sha1, HashAlg::Sha256]);
    write_measured(&mut log, &spec, 0, EventType::S_CRTM_VERSION, b"1\0").unwrap();
    write_measured(&mut log, &spec, 7, EventType::SEPARATOR, &[0; 4]).unwrap();
    let parsed = EventLog::parse(&log).unwrap();
    assert_eq!(parsed.format(), LogFormat::CryptoAgile);
    assert_eq!(parsed.events().len(), 3);
    assert_eq!(parsed.encode().unwrap(), log);
    let pcrs = parsed.replay();
    let want = HashAlg::Sha256.extend(&HashAlg::Sha256.zero(), HashAlg::Sha256.hash(&[0; 4]).as_bytes());
    let p7 = PcrIndex::new(7).unwrap();
    assert_eq!(pcrs.bank(HashAlg::Sha256).unwrap().value(p7), want);
    assert_eq!(pcrs.bank(HashAlg::Sha256).unwrap().touched(), 0b1000_0001);
}

#[test]
fn sha1_format_log_parses() {
    let mut log = Vec::new();
    write_legacy(&mut log, 0, EventType::POST_CODE, &[1; 20], b"x").unwrap();
    write_legacy(&mut log, 4, EventType::SEPARATOR, &[2; 20], &[0; 4]).unwrap();
    let parsed = EventLog::parse(&log).unwrap();
    assert_eq!(parsed.format(), LogFormat::Sha1);
    assert_eq!(parsed.banks(), vec![HashAlg::Sha1]);
    assert_eq!(parsed.encode().unwrap(), log);
}

#[test]
fn startup_locality_sets_pcr0_start() {
    let (spec, mut log) = agile(&[HashAlg::Sha256]);
    write_event2(&mut log, 0, EventType::NO_ACTION, &[HashAlg::Sha256.zero()], b"StartupLocality\0\x03").unwrap();
    let d = HashAlg::Sha256.hash(b"fw");
    write_event2(&mut log, 0, EventType::EFI_PLATFORM_FIRMWARE_BLOB, &[d], &[0; 16]).unwrap();
    let _ = spec;
    let pcrs = EventLog::parse(&log).unwrap().replay();
    let mut start = [0u8; 32];
    start[31] = 3;
    let want = HashAlg::Sha256.hash_parts(&[&start, d.as_bytes()]);
    assert_eq!(pcrs.bank(HashAlg::Sha256).unwrap().value(PcrIndex::new(0).unwrap()), want);
}

#[test]
fn truncation_names_record_and_offset() {
    let (spec, mut log) = agile(&[HashAlg::Sha256]);
    let second = log.len();
    write_measured(&mut log, &spec, 1, EventType::POST_CODE, b"abc").unwrap();
    for cut in [0, 10, second + 3, log.len() - 1] {
        let err = EventLog::parse(&log[..cut]).unwrap_err();
        let ParseError::Entry { index, offset, source, .. } = err else { panic!("{err:?}") };
        assert!(matches!(*source, ParseError::Truncated { .. }), "{source:?}");
        if cut > second {
            assert_eq!((index, offset), (1, second));
        } else {
            assert_eq!((index, offset), (0, 0));
        }
    }
}

#[test]
fn trailing_garbage_rejected_but_padding_accepted() {
    let (spec, mut log) = agile(&[HashAlg::Sha256]);
    write_measured(&mut log, &spec, 1, EventType::POST_CODE, b"abc").unwrap();
    let mut padded = log.clone();
    padded.extend_from_slice(&[0; 100]);
    assert_eq!(EventLog::parse(&padded).unwrap().padding(), 100);
    let mut garbage = log.clone();
    garbage.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(EventLog::parse(&garbage), Err(ParseError::Entry { index: 2, .. })));
}

#[test]
fn digest_not_in_header_is_refused() {
    let (_, mut log) = agile(&[HashAlg::Sha256]);
    write_event2(&mut log, 1, EventType::POST_CODE, &[HashAlg::Sha1.hash(b"")], b"").unwrap();
    let err = EventLog::parse(&log).unwrap_err();
    assert!(err.to_string().contains("entry 1"), "{err}");
    assert!(matches!(err, ParseError::Entry { source, .. } if matches!(*source, ParseError::UnsupportedAlgorithm { alg: 4, .. })));
}

#[test]
fn duplicate_or_too_many_digests_refused() {
    let (_, mut log) = agile(&[HashAlg::Sha1, HashAlg::Sha256]);
    let d = HashAlg::Sha256.hash(b"");
    let mut dup = log.clone();
    write_event2(&mut dup, 1, EventType::POST_CODE, &[d, d], b"").unwrap();
    assert!(EventLog::parse(&dup).is_err());
    write_event2(&mut log, 1, EventType::POST_CODE, &[d, d, d], b"").unwrap();
    assert!(EventLog::parse(&log).is_err());
}

#[test]
fn oversized_event_data_refused_before_reading() {
    let (_, mut log) = agile(&[HashAlg::Sha256]);
    write_event2(&mut log, 1, EventType::POST_CODE, &[HashAlg::Sha256.hash(b"")], b"").unwrap();
    let n = log.len();
    log[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = EventLog::parse(&log).unwrap_err();
    assert!(matches!(err, ParseError::Entry { source, .. } if matches!(*source, ParseError::TooLarge { field: "eventSize", .. })));
}
