//! The one bounds-checked reader every binary parser in `cairn-core` goes through.
//!
//! TPM structures are big-endian; tpm2-tools' in-memory blobs and the TCG event log are
//! little-endian, so the reader offers both. Every read names the field it is reading, so a
//! short or malformed input is reported as "field X at offset N needs K bytes, M left" rather
//! than a panic. Length-prefixed parts are read through a sub-reader (`sub`) whose end is the
//! prefix's end, and `finish` rejects trailing bytes.

use crate::error::ParseError;

/// A cursor over untrusted bytes. All reads are checked; none panics.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the outermost input, so errors report absolute offsets.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, base: 0 }
    }

    /// Absolute offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Takes exactly `n` bytes for `field`.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        let start = self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(
            ParseError::Truncated { field, offset: self.offset(), needed: n, available: self.remaining() },
        )?;
        self.pos = end;
        Ok(self.buf.get(start..end).unwrap_or(&[]))
    }

    /// Takes a fixed-size array for `field`.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let s = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }
    /// Big-endian u16 (TPM wire order).
    pub fn u16_be(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u32.
    pub fn u32_be(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u64.
    pub fn u64_be(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    /// Little-endian u16 (host structures, event logs).
    pub fn u16_le(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    /// Little-endian u32.
    pub fn u32_le(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    /// Little-endian u64.
    pub fn u64_le(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A TPM2B: big-endian u16 size then that many bytes, the size capped at `max`.
    pub fn tpm2b(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        let offset = self.offset();
        let len = usize::from(self.u16_be(field)?);
        if len > max {
            return Err(ParseError::TooLarge { field, offset, size: len, max });
        }
        self.take(len, field)
    }

    /// A sub-reader over the next `n` bytes; absolute offsets are kept.
    pub fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader<'a>, ParseError> {
        let base = self.offset();
        let buf = self.take(n, field)?;
        Ok(Reader { buf, pos: 0, base })
    }

    /// Fails with `TrailingData` unless every byte has been read.
    pub fn finish(&self, structure: &'static str) -> Result<(), ParseError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ParseError::TrailingData { structure, offset: self.offset(), extra: self.remaining() })
        }
    }
}

/// Big-endian writer helpers for marshalling TPM structures.
pub(crate) trait PutBe {
    fn put_u16_be(&mut self, v: u16);
    fn put_u32_be(&mut self, v: u32);
    fn put_u64_be(&mut self, v: u64);
    /// A TPM2B: u16 size then the bytes. Callers guarantee `b.len() <= u16::MAX`
    /// (every TPM2B we build comes from a parsed TPM2B or a bounded digest).
    fn put_tpm2b(&mut self, b: &[u8]);
}

impl PutBe for Vec<u8> {
    fn put_u16_be(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32_be(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64_be(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_tpm2b(&mut self, b: &[u8]) {
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        self.put_u16_be(len);
        self.extend_from_slice(b.get(..usize::from(len)).unwrap_or(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_read_names_field_and_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16_be("a").unwrap(), 0x0102);
        let e = r.u32_be("b").unwrap_err();
        assert_eq!(e, ParseError::Truncated { field: "b", offset: 2, needed: 4, available: 1 });
    }

    #[test]
    fn tpm2b_is_capped_and_sub_keeps_offsets() {
        let mut r = Reader::new(&[0, 5, 1, 2, 3, 4, 5]);
        assert!(matches!(r.clone().tpm2b(4, "x"), Err(ParseError::TooLarge { size: 5, max: 4, .. })));
        let mut s = r.sub(3, "outer").unwrap();
        s.u16_be("len").unwrap();
        assert_eq!(s.offset(), 2);
        assert!(s.finish("outer").is_err());
        assert!(r.finish("all").is_err());
    }
}
