//! The ASN.1 reading X.509 needs, over the crate's bounds-checked [`Reader`].
//!
//! Deliberately lenient where EK certificates in the field are not strict DER, and strict where
//! leniency would be ambiguous: long-form lengths may be non-minimal (BER), but indefinite lengths
//! and multi-byte tags are refused, and every length is checked against the bytes present before
//! anything is sliced. Constructed values are read through `Reader::sub`, so an error deep inside
//! a certificate names its absolute offset.

use std::fmt::Write;

use crate::codec::Reader;
use crate::error::ParseError;

/// Universal tags used by X.509.
pub(crate) mod tag {
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const NULL: u8 = 0x05;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const UTC_TIME: u8 = 0x17;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
}

/// One TLV: its tag, its content and the whole encoding (tag and length included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) content: &'a [u8],
    pub(crate) raw: &'a [u8],
}

/// Reads a tag and a definite length; returns (tag, length, header size).
fn header(r: &mut Reader<'_>, field: &'static str) -> Result<(u8, usize, usize), ParseError> {
    let off = r.offset();
    let t = r.u8(field)?;
    if t & 0x1F == 0x1F {
        return Err(ParseError::BadValue { field, offset: off, value: u64::from(t), expected: "a single-byte ASN.1 tag" });
    }
    let first = r.u8(field)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            let expected = "a definite length of at most 4 bytes";
            return Err(ParseError::BadValue { field, offset: off + 1, value: u64::from(first), expected });
        }
        r.take(n, field)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    Ok((t, len, r.offset() - off))
}

/// Reads the next TLV, whatever its tag.
pub(crate) fn any<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<Tlv<'a>, ParseError> {
    let start = r.rest();
    let (tag, len, hdr) = header(r, field)?;
    let content = r.take(len, field)?;
    let raw = start.get(..hdr + len).unwrap_or(content);
    Ok(Tlv { tag, content, raw })
}

fn check_tag(t: u8, want: u8, off: usize, field: &'static str) -> Result<(), ParseError> {
    if t == want {
        Ok(())
    } else {
        Err(ParseError::BadValue { field, offset: off, value: u64::from(t), expected: tag_name(want) })
    }
}

/// Reads the next TLV and requires `want` as its tag.
pub(crate) fn expect<'a>(r: &mut Reader<'a>, want: u8, field: &'static str) -> Result<Tlv<'a>, ParseError> {
    let off = r.offset();
    let tlv = any(r, field)?;
    check_tag(tlv.tag, want, off, field)?;
    Ok(tlv)
}

/// Enters the next TLV (tag `want`): a reader over its content with absolute offsets, and the
/// whole encoding.
pub(crate) fn enter<'a>(r: &mut Reader<'a>, want: u8, field: &'static str) -> Result<(Reader<'a>, &'a [u8]), ParseError> {
    let start = r.rest();
    let off = r.offset();
    let (t, len, hdr) = header(r, field)?;
    check_tag(t, want, off, field)?;
    let sub = r.sub(len, field)?;
    Ok((sub, start.get(..hdr + len).unwrap_or(&[])))
}

/// True when the next byte is the tag `want`.
pub(crate) fn peek_is(r: &Reader<'_>, want: u8) -> bool {
    r.rest().first() == Some(&want)
}

/// A BOOLEAN; any non-zero byte is true (BER), as some encoders write 0x01.
pub(crate) fn boolean(r: &mut Reader<'_>, field: &'static str) -> Result<bool, ParseError> {
    let off = r.offset();
    let v = expect(r, tag::BOOLEAN, field)?;
    match v.content {
        [b] => Ok(*b != 0),
        _ => Err(ParseError::BadValue { field, offset: off, value: v.content.len() as u64, expected: "a one-byte BOOLEAN" }),
    }
}

/// A small non-negative INTEGER (versions, path lengths, salt lengths).
pub(crate) fn small_uint(r: &mut Reader<'_>, field: &'static str) -> Result<u32, ParseError> {
    let off = r.offset();
    let v = expect(r, tag::INTEGER, field)?;
    let digits = strip_zeros(v.content);
    if digits.len() > 4 || v.content.first().is_some_and(|b| b & 0x80 != 0) || v.content.is_empty() {
        return Err(ParseError::BadValue { field, offset: off, value: 0, expected: "a small non-negative INTEGER" });
    }
    Ok(digits.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The bytes after leading zero bytes.
pub(crate) fn strip_zeros(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or(&[])
}

/// A BIT STRING whose unused-bit count is 0 (keys, signatures); returns the bytes.
pub(crate) fn octet_aligned_bits<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a [u8], ParseError> {
    let off = r.offset();
    let v = expect(r, tag::BIT_STRING, field)?;
    match v.content.split_first() {
        Some((0, rest)) => Ok(rest),
        _ => Err(ParseError::BadValue { field, offset: off, value: 0, expected: "a BIT STRING with no unused bits" }),
    }
}

/// Dotted-decimal form of an OID's content bytes, e.g. `2.23.133.8.1`.
pub(crate) fn oid_string(oid: &[u8]) -> String {
    let mut out = String::with_capacity(oid.len() * 3);
    let mut acc: u64 = 0;
    let mut first = true;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7F);
        if b & 0x80 != 0 {
            if acc > u64::MAX >> 7 {
                return "invalid-oid".into();
            }
            continue;
        }
        if first {
            let (a, b) = if acc < 80 { (acc / 40, acc % 40) } else { (2, acc - 80) };
            let _ = write!(out, "{a}.{b}");
            first = false;
        } else {
            let _ = write!(out, ".{acc}");
        }
        acc = 0;
    }
    out
}

/// A UTCTime or GeneralizedTime as unix seconds. Accepts `Z` times with or without seconds and
/// ignores fractional seconds (not DER, but seen in the field); refuses local times and offsets.
pub(crate) fn time(r: &mut Reader<'_>, field: &'static str) -> Result<i64, ParseError> {
    let off = r.offset();
    let v = any(r, field)?;
    let bad = |expected| ParseError::BadValue { field, offset: off, value: u64::from(v.tag), expected };
    let text = std::str::from_utf8(v.content).map_err(|_| bad("an ASCII time"))?;
    let body = text.strip_suffix('Z').ok_or(bad("a time in UTC ending in Z"))?;
    let body = body.split_once('.').map_or(body, |(whole, _fraction)| whole);
    let (year, rest) = match v.tag {
        tag::UTC_TIME => {
            let yy = digits(body.get(0..2)).ok_or(bad("YYMMDDHHMM[SS]Z"))?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, body.get(2..).unwrap_or(""))
        }
        tag::GENERALIZED_TIME => (digits(body.get(0..4)).ok_or(bad("YYYYMMDDHHMM[SS]Z"))?, body.get(4..).unwrap_or("")),
        _ => return Err(bad("UTCTime or GeneralizedTime")),
    };
    let field_at = |i: usize| digits(rest.get(i..i + 2));
    let (Some(month), Some(day), Some(hour), Some(min)) = (field_at(0), field_at(2), field_at(4), field_at(6)) else {
        return Err(bad("a complete date and time"));
    };
    let sec = match rest.len() {
        8 => 0,
        10 => field_at(8).ok_or(bad("two-digit seconds"))?,
        _ => return Err(bad("a date and time without offset")),
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad("a valid calendar date and time"));
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3_600 + min * 60 + sec)
}

fn digits(s: Option<&str>) -> Option<i64> {
    let s = s?;
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Decodes an ASN.1 string value (Printable, UTF8, IA5, T61, BMP, Universal) for display;
/// other types are shown as `#hex`, as openssl does.
pub(crate) fn string_value(v: &Tlv<'_>) -> String {
    match v.tag {
        0x0C | 0x13 | 0x14 | 0x16 | 0x1A => String::from_utf8_lossy(v.content).into_owned(),
        0x1E => {
            let units = v.content.chunks_exact(2).map(|c| u16::from_be_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]));
            char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
        }
        0x1C => v
            .content
            .chunks_exact(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b.copy_from_slice(c);
                char::from_u32(u32::from_be_bytes(b)).unwrap_or('\u{FFFD}')
            })
            .collect(),
        _ => format!("#{}", hex::encode(v.raw)),
    }
}

/// An attribute type's short name (`CN`, `O`…) or its dotted OID.
pub(crate) fn attribute_name(oid: &[u8]) -> String {
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x0A] => "O",
        [0x55, 0x04, 0x0B] => "OU",
        _ => return oid_string(oid),
    };
    short.to_string()
}

fn tag_name(t: u8) -> &'static str {
    match t {
        tag::BOOLEAN => "BOOLEAN",
        tag::INTEGER => "INTEGER",
        tag::BIT_STRING => "BIT STRING",
        tag::OCTET_STRING => "OCTET STRING",
        tag::NULL => "NULL",
        tag::OID => "OBJECT IDENTIFIER",
        tag::SEQUENCE => "SEQUENCE",
        tag::SET => "SET",
        0xA0 => "[0]",
        0xA3 => "[3]",
        _ => "another ASN.1 tag",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(tag: u8, s: &str) -> i64 {
        let mut b = vec![tag, s.len() as u8];
        b.extend_from_slice(s.as_bytes());
        time(&mut Reader::new(&b), "t").unwrap()
    }

    #[test]
    fn times_become_unix_seconds() {
        assert_eq!(t(tag::UTC_TIME, "700101000000Z"), 0);
        assert_eq!(t(tag::UTC_TIME, "280726000000Z"), 1_848_182_400);
        assert_eq!(t(tag::GENERALIZED_TIME, "99991231235959Z"), 253_402_300_799);
        assert_eq!(t(tag::GENERALIZED_TIME, "20000229120000.5Z"), 951_825_600);
        assert_eq!(t(tag::UTC_TIME, "4912312359Z"), 2_524_607_940);
    }

    #[test]
    fn bad_times_are_refused() {
        for s in ["700101000000", "701301000000Z", "70010100000+0100", "7001010000x0Z", ""] {
            let mut b = vec![tag::UTC_TIME, s.len() as u8];
            b.extend_from_slice(s.as_bytes());
            assert!(time(&mut Reader::new(&b), "t").is_err(), "{s}");
        }
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(oid_string(&[0x67, 0x81, 0x05, 0x08, 0x01]), "2.23.133.8.1");
        assert_eq!(oid_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B]), "1.2.840.113549.1.1.11");
    }

    #[test]
    fn lengths_are_checked_and_offsets_absolute() {
        let b = [0x30, 0x03, 0x02, 0x05, 0x00];
        let mut r = Reader::new(&b);
        let (mut inner, raw) = enter(&mut r, tag::SEQUENCE, "seq").unwrap();
        assert_eq!(raw, &b);
        let e = expect(&mut inner, tag::INTEGER, "int").unwrap_err();
        assert!(matches!(e, ParseError::Truncated { offset: 4, .. }), "{e:?}");
        assert!(any(&mut Reader::new(&[0x30, 0x80]), "x").is_err());
        assert!(any(&mut Reader::new(&[0x1F, 0x01, 0x00]), "x").is_err());
        assert!(any(&mut Reader::new(&[0x04, 0x82, 0x00, 0x01, 0xAA]), "x").is_ok());
    }
}
