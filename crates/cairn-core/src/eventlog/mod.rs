//! UEFI / TCG PC Client firmware event logs: parse, decode, replay, re-encode.
//!
//! A log is either in the **SHA-1 format** (every record a `TCG_PCR_EVENT`) or in the
//! **crypto-agile format**: a first `TCG_PCR_EVENT` of type EV_NO_ACTION whose data is the
//! "Spec ID Event03" header ([`SpecIdEvent`]), then `TCG_PCR_EVENT2` records whose digest sizes
//! come from that header. The format is decided by the first record alone.
//!
//! # What is accepted (strict, with one named exception)
//! * An empty log, a log that ends inside a record (the header included), a record that names an
//!   algorithm missing from the header, repeats an algorithm, carries no digest or more digests
//!   than the header announces, or whose event data exceeds [`MAX_EVENT_DATA`] is **rejected**;
//!   the error ([`ParseError::Entry`]) names the record index and its offset and, inside, the
//!   field. Bytes after the last record that do not form a record are rejected the same way:
//!   they are a record that ends early or is malformed.
//! * The one exception: in a crypto-agile log, a tail made only of `0x00` bytes or only of `0xFF`
//!   bytes is **padding** (the unused part of a firmware log area; the kernel stops at the first
//!   all-zero record too). No record can be all-zero or all-0xFF, so this cannot hide a measured
//!   event; the number of padding bytes is kept ([`EventLog::padding`]).
//!
//! These rules give the expected outcome for every vector of the shared test data: the empty and
//! the 28-byte truncated header are rejected, every other log parses and replays to its banks.
//!
//! Typed decoding of event data ([`EventData`]) is separate and lazy: a record's structure is
//! what replay needs, and a firmware quirk inside one event's data must not hide the PCR values;
//! policies that read an event's data report a decoding failure for that event.

pub mod data;
pub mod devpath;
pub mod encode;
pub mod event_type;
pub mod guid;
pub mod record;
pub mod replay;
pub mod spec_id;
pub mod text;
pub mod uefi;

pub use data::EventData;
pub use event_type::EventType;
pub use guid::EfiGuid;
pub use record::{Event, EventDigests, MAX_EVENT_DATA};
pub use replay::{replay, BootAggregate, PcrBank, ReplayedPcrs};
pub use spec_id::SpecIdEvent;

use crate::alg::HashAlg;
use crate::codec::Reader;
use crate::error::ParseError;

/// Which record format the log uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Every record is a `TCG_PCR_EVENT` with a SHA-1 digest (TPM 1.2 era firmware).
    Sha1,
    /// Spec ID header then `TCG_PCR_EVENT2` records.
    CryptoAgile,
}

/// A parsed event log, borrowing the bytes it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog<'a> {
    format: LogFormat,
    spec_id: Option<SpecIdEvent>,
    events: Vec<Event<'a>>,
    padding: usize,
}

const LIST: &str = "event log";

fn in_record(index: usize, offset: usize) -> impl Fn(ParseError) -> ParseError {
    move |e| ParseError::Entry { list: LIST, index, offset, source: Box::new(e) }
}

impl<'a> EventLog<'a> {
    /// Parses a whole log (see the module documentation for what is accepted).
    pub fn parse(bytes: &'a [u8]) -> Result<EventLog<'a>, ParseError> {
        let mut r = Reader::new(bytes);
        let (first, mut first_data) = record::read_legacy(&mut r, 0).map_err(in_record(0, 0))?;
        let agile = first.event_type.is_no_action() && SpecIdEvent::is_spec_id(first.data);
        if !agile {
            let mut events = Vec::with_capacity(bytes.len() / 256 + 1);
            events.push(first);
            while !r.is_empty() {
                let (index, offset) = (events.len(), r.offset());
                let (ev, _) = record::read_legacy(&mut r, index).map_err(in_record(index, offset))?;
                events.push(ev);
            }
            return Ok(EventLog { format: LogFormat::Sha1, spec_id: None, events, padding: 0 });
        }
        let spec = SpecIdEvent::read(&mut first_data).map_err(in_record(0, 0))?;
        // Typical UEFI records are 100–500 bytes; the Vec doubles if the guess is low.
        let mut events = Vec::with_capacity(bytes.len() / 256 + 1);
        events.push(first);
        let mut padding = 0;
        while !r.is_empty() {
            let rest = r.rest();
            if rest.iter().all(|b| *b == 0) || rest.iter().all(|b| *b == 0xFF) {
                padding = rest.len();
                break;
            }
            let (index, offset) = (events.len(), r.offset());
            events.push(record::read_agile(&mut r, index, &spec).map_err(in_record(index, offset))?);
        }
        Ok(EventLog { format: LogFormat::CryptoAgile, spec_id: Some(spec), events, padding })
    }

    /// The record format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The Spec ID header of a crypto-agile log.
    pub fn spec_id(&self) -> Option<&SpecIdEvent> {
        self.spec_id.as_ref()
    }

    /// Every record, the header record included, in log order.
    pub fn events(&self) -> &[Event<'a>] {
        &self.events
    }

    /// Bytes of padding after the last record (crypto-agile logs only).
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// The PCR banks the log carries: the header's supported algorithms, or SHA-1.
    pub fn banks(&self) -> Vec<HashAlg> {
        match &self.spec_id {
            Some(s) => s.banks().collect(),
            None => vec![HashAlg::Sha1],
        }
    }

    /// Replays the log into final PCR values (see [`replay`]).
    pub fn replay(&self) -> ReplayedPcrs {
        replay::replay(self)
    }
}

#[cfg(test)]
mod tests;
