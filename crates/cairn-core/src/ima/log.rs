//! A whole measurement list: which of the two securityfs formats it is, and iteration over its
//! entries without copying them.
//!
//! The format is told apart by content: a binary log starts with a small u32 PCR index, while an
//! ASCII log starts with decimal digits and a space (which, read as a u32, is far above 31). Entry
//! numbers in errors count from `first_index`, so an incremental chunk (Keylime's `ima_ml_entry`)
//! reports positions in the whole log.

use thiserror::Error;

use crate::codec::Reader;
use crate::error::ParseError;
use crate::ima::ascii;
use crate::ima::binary::{self, Endian};
use crate::ima::entry::ImaEntry;

/// A measurement list could not be read: which entry, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("IMA log entry {entry} (byte {offset}): {source}")]
pub struct LogError {
    /// Index of the entry in the whole log (0-based).
    pub entry: u64,
    /// Byte offset of the entry in the input.
    pub offset: usize,
    /// What is wrong.
    #[source]
    pub source: ParseError,
}

/// The two formats IMA exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `ascii_runtime_measurements`.
    Ascii,
    /// `binary_runtime_measurements` in the given byte order.
    Binary(Endian),
}

impl LogFormat {
    /// Tells the format from the first bytes.
    pub fn detect(input: &[u8]) -> LogFormat {
        if let Some(head) = input.get(..4) {
            let mut b = [0u8; 4];
            b.copy_from_slice(head);
            if u32::from_le_bytes(b) < 32 {
                return LogFormat::Binary(Endian::Little);
            }
            if u32::from_be_bytes(b) < 32 {
                return LogFormat::Binary(Endian::Big);
            }
        }
        LogFormat::Ascii
    }
}

/// Iterator over the entries of a log; stops after the first error.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    format: LogFormat,
    input: &'a [u8],
    pos: usize,
    index: u64,
    failed: bool,
}

impl<'a> Entries<'a> {
    /// Entries of `input` (format detected), the first one numbered `first_index`.
    pub fn new(input: &'a [u8], first_index: u64) -> Self {
        Self::with_format(input, LogFormat::detect(input), first_index)
    }

    /// Entries of `input` in a known format.
    pub fn with_format(input: &'a [u8], format: LogFormat, first_index: u64) -> Self {
        Entries { format, input, pos: 0, index: first_index, failed: false }
    }

    /// The format being read.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Byte offset where the next entry (or blank line) starts.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Index the next entry will have.
    pub fn next_index(&self) -> u64 {
        self.index
    }

    /// The next non-blank line and its offset.
    fn next_line(&mut self) -> Option<(usize, &'a [u8])> {
        loop {
            let start = self.pos;
            let rest = self.input.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            let (line, advance) = match memchr::memchr(b'\n', rest) {
                Some(i) => (rest.get(..i).unwrap_or_default(), i + 1),
                None => (rest, rest.len()),
            };
            self.pos += advance;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                return Some((start, line));
            }
        }
    }

    fn next_binary(&mut self, e: Endian) -> Option<(usize, Result<ImaEntry<'a>, ParseError>)> {
        let start = self.pos;
        let rest = self.input.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let mut r = Reader::new(rest);
        let out = binary::read_entry(&mut r, e).map_err(|err| shift(err, self.pos));
        self.pos += r.offset();
        Some((start, out))
    }
}

/// Makes a chunk-relative offset absolute.
fn shift(err: ParseError, base: usize) -> ParseError {
    match err {
        ParseError::Truncated { field, offset, needed, available } => {
            ParseError::Truncated { field, offset: offset + base, needed, available }
        }
        ParseError::TooLarge { field, offset, size, max } => ParseError::TooLarge { field, offset: offset + base, size, max },
        ParseError::TrailingData { structure, offset, extra } => {
            ParseError::TrailingData { structure, offset: offset + base, extra }
        }
        ParseError::BadValue { field, offset, value, expected } => {
            ParseError::BadValue { field, offset: offset + base, value, expected }
        }
        other => other,
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<ImaEntry<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let entry = self.index;
        // Each arm returns the entry where the parser built it: an entry is a few hundred bytes,
        // and this runs for every line of a log.
        match self.format {
            LogFormat::Ascii => {
                let (offset, line) = self.next_line()?;
                self.index += 1;
                let item = ascii::parse_line_or(line, |source| LogError { entry, offset, source });
                self.failed = item.is_err();
                Some(item)
            }
            LogFormat::Binary(e) => {
                let (offset, item) = self.next_binary(e)?;
                self.index += 1;
                Some(item.map_err(|source| {
                    self.failed = true;
                    LogError { entry, offset, source }
                }))
            }
        }
    }
}

/// Parses every entry of `input` (format detected) into a vector.
pub fn parse(input: &[u8]) -> Result<Vec<ImaEntry<'_>>, LogError> {
    Entries::new(input, 0).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(LogFormat::detect(b"10 abc"), LogFormat::Ascii);
        assert_eq!(LogFormat::detect(&[10, 0, 0, 0, 1]), LogFormat::Binary(Endian::Little));
        assert_eq!(LogFormat::detect(&[0, 0, 0, 10, 1]), LogFormat::Binary(Endian::Big));
        assert_eq!(LogFormat::detect(b""), LogFormat::Ascii);
    }

    #[test]
    fn errors_name_the_entry_and_stop() {
        let log = b"10 00 ima-ng sha1:0000000000000000000000000000000000000000 a\n\n10 zz ima-ng x\n10 00 ima-ng y\n";
        let mut it = Entries::new(log, 5);
        assert!(it.next().unwrap().is_ok());
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.entry, 6);
        assert_eq!(e.offset, 62);
        assert!(it.next().is_none());
    }
}
