//! Writing records back: `TCG_PCR_EVENT`, `TCG_PCR_EVENT2` and the Spec ID header record.
//!
//! Used for round-trip tests, for building modified logs in policy tests, and by tools that
//! synthesise logs. Re-encoding a parsed log reproduces its bytes, except that digests of
//! algorithms Cairn cannot hash are dropped and padding is not written.

use crate::alg::{Digest, HashAlg};
use crate::error::ParseError;

use super::event_type::EventType;
use super::record::{Event, MAX_EVENT_DATA};
use super::spec_id::SpecIdEvent;
use super::{EventLog, LogFormat};

fn data_len(data: &[u8]) -> Result<u32, ParseError> {
    if data.len() > MAX_EVENT_DATA {
        return Err(ParseError::TooLarge { field: "eventSize", offset: 0, size: data.len(), max: MAX_EVENT_DATA });
    }
    Ok(data.len() as u32)
}

/// Appends a `TCG_PCR_EVENT` (SHA-1 format).
pub fn write_legacy(out: &mut Vec<u8>, pcr: u32, ty: EventType, sha1: &[u8; 20], data: &[u8]) -> Result<(), ParseError> {
    let len = data_len(data)?;
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&ty.0.to_le_bytes());
    out.extend_from_slice(sha1);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Appends a `TCG_PCR_EVENT2` with `digests` in the order given.
pub fn write_event2(out: &mut Vec<u8>, pcr: u32, ty: EventType, digests: &[Digest], data: &[u8]) -> Result<(), ParseError> {
    let len = data_len(data)?;
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&ty.0.to_le_bytes());
    out.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    for d in digests {
        out.extend_from_slice(&d.alg().alg_id().0.to_le_bytes());
        out.extend_from_slice(d.as_bytes());
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Appends the header record of a crypto-agile log.
pub fn write_spec_id(out: &mut Vec<u8>, spec: &SpecIdEvent) -> Result<(), ParseError> {
    let mut data = Vec::with_capacity(64);
    spec.write(&mut data);
    write_legacy(out, 0, EventType::NO_ACTION, &[0; 20], &data)
}

/// Appends measured records for `(pcr, type, data)` with digests H(data) in every bank of `spec`.
pub fn write_measured(out: &mut Vec<u8>, spec: &SpecIdEvent, pcr: u32, ty: EventType, data: &[u8]) -> Result<(), ParseError> {
    let digests: Vec<Digest> = spec.banks().map(|a: HashAlg| a.hash(data)).collect();
    write_event2(out, pcr, ty, &digests, data)
}

impl Event<'_> {
    /// Appends this record in `format`.
    pub fn write(&self, format: LogFormat, out: &mut Vec<u8>) -> Result<(), ParseError> {
        match format {
            LogFormat::Sha1 => {
                let mut sha1 = [0u8; 20];
                if let Some(d) = self.digest(HashAlg::Sha1) {
                    sha1.iter_mut().zip(d.as_bytes()).for_each(|(o, i)| *o = *i);
                }
                write_legacy(out, self.pcr, self.event_type, &sha1, self.data)
            }
            LogFormat::CryptoAgile => {
                let digests: Vec<Digest> = self.digests.iter().copied().collect();
                write_event2(out, self.pcr, self.event_type, &digests, self.data)
            }
        }
    }
}

impl EventLog<'_> {
    /// Re-encodes the log.
    pub fn encode(&self) -> Result<Vec<u8>, ParseError> {
        let mut out = Vec::with_capacity(self.events().iter().map(|e| e.raw().len()).sum());
        for (i, ev) in self.events().iter().enumerate() {
            // The header record of a crypto-agile log is itself in the SHA-1 format.
            let format = if i == 0 { LogFormat::Sha1 } else { self.format() };
            ev.write(format, &mut out)?;
        }
        Ok(out)
    }
}

/// A synthetic crypto-agile log for benches and property tests: a Spec ID header for `banks`,
/// then `records` measured records cycling through PCRs 0–7 with varied types and data sizes
/// (up to 1 KiB), every digest the hash of its data. Deterministic.
pub fn synthetic(banks: &[HashAlg], records: usize) -> Vec<u8> {
    let spec = SpecIdEvent::new(banks);
    let mut out = Vec::with_capacity(64 + records * 200);
    let _ = write_spec_id(&mut out, &spec);
    let types = [EventType::POST_CODE, EventType::EFI_ACTION, EventType::IPL, EventType::SEPARATOR];
    let mut data = Vec::with_capacity(1024);
    for i in 0..records {
        data.clear();
        data.extend((0..(i * 37) % 1024).map(|j| (i + j) as u8));
        let ty = types.get(i % types.len()).copied().unwrap_or(EventType::POST_CODE);
        let _ = write_measured(&mut out, &spec, (i % 8) as u32, ty, &data);
    }
    out
}
