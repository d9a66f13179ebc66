//! One record of the log: `TCG_PCR_EVENT` (SHA-1 format) or `TCG_PCR_EVENT2` (crypto-agile).
//!
//! A record borrows its event data from the log bytes, and its digests live inline, so parsing a
//! log allocates once (the record list) whatever its size. Every length is checked against the
//! remaining input before it is used, and event data is capped at [`MAX_EVENT_DATA`].

use crate::alg::{AlgId, Digest, HashAlg};
use crate::codec::Reader;
use crate::error::ParseError;
use crate::pcr::{PcrIndex, PCR_COUNT};

use super::event_type::EventType;
use super::spec_id::SpecIdEvent;

/// Largest event data accepted in one record (16 MiB).
pub const MAX_EVENT_DATA: usize = 16 << 20;

/// Size of a `TCG_PCR_EVENT` before its event data.
pub const LEGACY_HEADER_LEN: usize = 32;

/// The digests of one record (`TPML_DIGEST_VALUES`), at most one per supported hash.
///
/// Digests of algorithms that the Spec ID header announces but Cairn cannot compute are skipped
/// (they stay in the record's raw bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventDigests {
    slots: [Option<Digest>; 5],
}

fn slot(alg: HashAlg) -> usize {
    match alg {
        HashAlg::Sha1 => 0,
        HashAlg::Sha256 => 1,
        HashAlg::Sha384 => 2,
        HashAlg::Sha512 => 3,
        HashAlg::Sm3_256 => 4,
    }
}

impl EventDigests {
    /// The digest for `alg`, if the record carries one.
    pub fn get(&self, alg: HashAlg) -> Option<&Digest> {
        self.slots.get(slot(alg)).and_then(Option::as_ref)
    }

    /// Sets (or replaces) the digest of its algorithm.
    pub fn set(&mut self, d: Digest) {
        if let Some(s) = self.slots.get_mut(slot(d.alg())) {
            *s = Some(d);
        }
    }

    /// Every digest, in TPM_ALG_ID order.
    pub fn iter(&self) -> impl Iterator<Item = &Digest> + '_ {
        self.slots.iter().flatten()
    }

    /// Number of digests.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when the record carries no supported digest.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed record; `TCG_PCR_EVENT` or `TCG_PCR_EVENT2` depending on the log's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub(super) index: usize,
    pub(super) offset: usize,
    pub(super) pcr: u32,
    pub(super) event_type: EventType,
    pub(super) digests: EventDigests,
    pub(super) data: &'a [u8],
    pub(super) raw: &'a [u8],
}

impl<'a> Event<'a> {
    /// Position in the log, the Spec ID header record being 0.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Absolute offset of the record's first byte.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// pcrIndex as written.
    pub fn pcr_raw(&self) -> u32 {
        self.pcr
    }
    /// The PCR, when the index is one (always true for measured records).
    pub fn pcr(&self) -> Option<PcrIndex> {
        u8::try_from(self.pcr).ok().and_then(PcrIndex::new)
    }
    /// True when the record is in PCR `n`.
    pub fn in_pcr(&self, n: u32) -> bool {
        self.pcr == n
    }
    /// eventType.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }
    /// The digests.
    pub fn digests(&self) -> &EventDigests {
        &self.digests
    }
    /// The digest for `alg`.
    pub fn digest(&self, alg: HashAlg) -> Option<&Digest> {
        self.digests.get(alg)
    }
    /// The event data, as written.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// The whole record as written.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// True when the record is extended into its PCR (everything but EV_NO_ACTION).
    pub fn is_measured(&self) -> bool {
        !self.event_type.is_no_action()
    }
}

fn checked_pcr(pcr: u32, event_type: EventType, offset: usize) -> Result<u32, ParseError> {
    if event_type.is_no_action() || pcr < u32::from(PCR_COUNT) {
        Ok(pcr)
    } else {
        Err(ParseError::BadValue { field: "pcrIndex", offset, value: u64::from(pcr), expected: "a PCR from 0 to 31" })
    }
}

fn event_data<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<Reader<'a>, ParseError> {
    let offset = r.offset();
    let size = r.u32_le("eventSize")? as usize;
    if size > MAX_EVENT_DATA {
        return Err(ParseError::TooLarge { field: "eventSize", offset, size, max: MAX_EVENT_DATA });
    }
    r.sub(size, field)
}

/// Reads a `TCG_PCR_EVENT` (SHA-1 format); returns the record and a reader over its data.
pub(super) fn read_legacy<'a>(r: &mut Reader<'a>, index: usize) -> Result<(Event<'a>, Reader<'a>), ParseError> {
    let start = r.clone();
    let offset = r.offset();
    let pcr = r.u32_le("TCG_PCR_EVENT.pcrIndex")?;
    let event_type = EventType(r.u32_le("TCG_PCR_EVENT.eventType")?);
    let pcr = checked_pcr(pcr, event_type, offset)?;
    let sha1 = r.take(20, "TCG_PCR_EVENT.digest")?;
    let data = event_data(r, "TCG_PCR_EVENT.event")?;
    let mut digests = EventDigests::default();
    digests.set(Digest::from_bytes(HashAlg::Sha1, sha1)?);
    let len = r.offset() - offset;
    let raw = start.rest().get(..len).unwrap_or(&[]);
    Ok((Event { index, offset, pcr, event_type, digests, data: data.rest(), raw }, data))
}

/// Reads a `TCG_PCR_EVENT2` whose digest sizes come from `spec`.
pub(super) fn read_agile<'a>(r: &mut Reader<'a>, index: usize, spec: &SpecIdEvent) -> Result<Event<'a>, ParseError> {
    let start = r.clone();
    let offset = r.offset();
    let pcr = r.u32_le("TCG_PCR_EVENT2.pcrIndex")?;
    let event_type = EventType(r.u32_le("TCG_PCR_EVENT2.eventType")?);
    let pcr = checked_pcr(pcr, event_type, offset)?;
    let count_offset = r.offset();
    let count = r.u32_le("TPML_DIGEST_VALUES.count")? as usize;
    let max = spec.algorithms().len();
    if count == 0 || count > max {
        return Err(ParseError::TooLarge {
            field: "TPML_DIGEST_VALUES.count (1 up to the Spec ID header's algorithm count)",
            offset: count_offset,
            size: count,
            max,
        });
    }
    let mut digests = EventDigests::default();
    let mut seen: [AlgId; 16] = [AlgId(0); 16];
    for i in 0..count {
        let alg_offset = r.offset();
        let alg = AlgId(r.u16_le("TPMT_HA.hashAlg")?);
        let size = spec.digest_size(alg).ok_or(ParseError::UnsupportedAlgorithm {
            field: "TPMT_HA.hashAlg (not in the Spec ID header)",
            offset: alg_offset,
            alg: alg.0,
        })?;
        if seen.get(..i).is_some_and(|s| s.contains(&alg)) {
            return Err(ParseError::BadValue {
                field: "TPMT_HA.hashAlg",
                offset: alg_offset,
                value: u64::from(alg.0),
                expected: "each algorithm at most once per record",
            });
        }
        if let Some(s) = seen.get_mut(i) {
            *s = alg;
        }
        let bytes = r.take(size, "TPMT_HA.digest")?;
        if let Some(h) = HashAlg::from_alg_id(alg) {
            digests.set(Digest::from_bytes(h, bytes)?);
        }
    }
    let data = event_data(r, "TCG_PCR_EVENT2.event")?;
    let len = r.offset() - offset;
    let raw = start.rest().get(..len).unwrap_or(&[]);
    Ok(Event { index, offset, pcr, event_type, digests, data: data.rest(), raw })
}
