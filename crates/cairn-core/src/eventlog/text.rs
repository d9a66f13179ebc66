//! Text inside event data: UCS-2 (UTF-16LE) names and strings, and ASCII descriptions.
//!
//! UEFI writes names and S-CRTM versions in UCS-2; boot loaders write EV_IPL strings as ASCII
//! (grub) or UTF-16 (systemd-boot). [`Ucs2`] borrows the bytes and compares without allocating,
//! so policy checks over every event stay allocation-free; rendering allocates only on demand.

use std::borrow::Cow;
use std::fmt;

/// UCS-2 / UTF-16LE text borrowed from event data (an even number of bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ucs2<'a>(&'a [u8]);

impl<'a> Ucs2<'a> {
    /// Text over `bytes`; a trailing odd byte is ignored, trailing NULs are trimmed.
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut b = bytes.get(..bytes.len() & !1).unwrap_or(&[]);
        while let Some(rest) = b.strip_suffix(&[0, 0]) {
            b = rest;
        }
        Ucs2(b)
    }

    /// The UTF-16 code units.
    pub fn units(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]))
    }

    /// True when the text equals `s` exactly.
    pub fn eq_str(&self, s: &str) -> bool {
        self.units().eq(s.encode_utf16())
    }

    /// The text, with unpaired surrogates replaced.
    pub fn to_string_lossy(&self) -> String {
        char::decode_utf16(self.units()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for Ucs2<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for Ucs2<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// Trims trailing NUL bytes.
pub(crate) fn trim_nuls(b: &[u8]) -> &[u8] {
    let mut b = b;
    while let Some(rest) = b.strip_suffix(&[0]) {
        b = rest;
    }
    b
}

/// Text of an event that is either 8-bit or UTF-16LE, decided by the bytes themselves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventText<'a> {
    /// 8-bit text (ASCII / UTF-8), trailing NULs trimmed.
    Ascii(&'a str),
    /// UTF-16LE text (every high byte zero for the ASCII range), trailing NULs trimmed.
    Utf16(Ucs2<'a>),
}

impl<'a> EventText<'a> {
    /// Classifies `data`: UTF-16 when it has an even length, at least one character and every
    /// odd byte zero; otherwise UTF-8 when it decodes as such with no control bytes but
    /// newline/tab; otherwise `None` (binary data).
    pub fn classify(data: &'a [u8]) -> Option<EventText<'a>> {
        let looks_utf16 = data.len() >= 2
            && data.len() % 2 == 0
            && data.iter().skip(1).step_by(2).all(|b| *b == 0)
            && data.first().is_some_and(|b| *b != 0);
        if looks_utf16 {
            return Some(EventText::Utf16(Ucs2::new(data)));
        }
        let t = trim_nuls(data);
        let s = std::str::from_utf8(t).ok()?;
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            return None;
        }
        Some(EventText::Ascii(s))
    }

    /// The text as a string (borrowed for 8-bit text).
    pub fn as_str(&self) -> Cow<'a, str> {
        match self {
            EventText::Ascii(s) => Cow::Borrowed(s),
            EventText::Utf16(u) => Cow::Owned(u.to_string_lossy()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_compares_and_trims() {
        let b = [b'P', 0, b'K', 0, 0, 0];
        let u = Ucs2::new(&b);
        assert!(u.eq_str("PK"));
        assert!(!u.eq_str("PK\0"));
        assert_eq!(u.to_string_lossy(), "PK");
    }

    #[test]
    fn classifies_ascii_utf16_and_binary() {
        assert_eq!(EventText::classify(b"grub_cmd: ls\0").map(|t| t.as_str().into_owned()), Some("grub_cmd: ls".into()));
        assert_eq!(EventText::classify(b"MokList\0").map(|t| t.as_str().into_owned()), Some("MokList".into()));
        let u16: Vec<u8> = "initrd=x".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(matches!(EventText::classify(&u16), Some(EventText::Utf16(_))));
        assert_eq!(EventText::classify(&[0xff, 0x01, 0x02]), None);
    }
}
