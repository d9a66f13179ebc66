//! Parsing a hypervisor measurement list: strict, one line per entry, every field checked.
//!
//! Strict means one spelling per value (lower-case hex, no leading zeros, canonical path escapes),
//! so the hashed bytes and the parsed meaning cannot drift apart. Every error names the line (1 is
//! the first line of the input), the entry number (the list's own index) and the field.

use std::fmt;

use thiserror::Error;

use crate::alg::{Digest, HashAlg};
use crate::pcr::PcrIndex;

use super::entry::{literal, EscapedPath, HvmEntry, MapRange, Pid, Verdict, ENTRY_HASH_ALG, PAGE_ALIGN, PATH_MAX, TAG};

/// Longest line accepted, newline included (two escaped paths of PATH_MAX bytes and the rest).
pub const MAX_LINE: usize = 2 * 3 * PATH_MAX + 1024;
/// Fields per line.
pub const FIELDS: usize = 12;

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldProblem {
    /// The line ends before the field.
    Missing,
    /// Text follows the last field.
    Extra,
    /// The line has no newline at its end (a cut transfer).
    Unterminated,
    /// The line is longer than [`MAX_LINE`].
    LineTooLong {
        /// Its length.
        len: usize,
    },
    /// Empty field (two spaces in a row, or a space at the end).
    Empty,
    /// Longer than the field allows.
    TooLong {
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// Not a decimal number without leading zeros.
    NotDecimal,
    /// Not lower-case hex without leading zeros (or the exact digits a digest needs).
    NotHex,
    /// A number outside its range.
    OutOfRange {
        /// What the range is.
        allowed: &'static str,
    },
    /// An address or offset that is not page aligned, or an empty range.
    BadRange,
    /// A digest without a known `alg:` prefix.
    UnknownAlgorithm,
    /// A digest with the wrong number of hex digits for its algorithm.
    DigestLength {
        /// Digits found.
        found: usize,
        /// Digits needed.
        expected: usize,
    },
    /// The in-memory and on-disk digests use different algorithms.
    MixedAlgorithms,
    /// A path that does not start with `/`, or is not escaped canonically.
    BadPath {
        /// Byte index in the field.
        at: usize,
    },
    /// The format tag is not `cairn-hvm`.
    UnknownTag,
    /// The verdict is not `ok` or `modified`.
    UnknownVerdict,
    /// The verdict contradicts the digests (`ok` with different digests, or the reverse).
    VerdictContradicts,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Missing => f.write_str("missing"),
            FieldProblem::Extra => f.write_str("unexpected text after the last field"),
            FieldProblem::Unterminated => f.write_str("the line has no newline (cut short?)"),
            FieldProblem::LineTooLong { len } => write!(f, "line of {len} bytes exceeds {MAX_LINE}"),
            FieldProblem::Empty => f.write_str("empty (fields are separated by exactly one space)"),
            FieldProblem::TooLong { len, max } => write!(f, "{len} bytes exceeds {max}"),
            FieldProblem::NotDecimal => f.write_str("not a decimal number without leading zeros"),
            FieldProblem::NotHex => f.write_str("not lower-case hex without leading zeros"),
            FieldProblem::OutOfRange { allowed } => write!(f, "out of range ({allowed})"),
            FieldProblem::BadRange => f.write_str("not page aligned, or an empty range"),
            FieldProblem::UnknownAlgorithm => f.write_str("not <alg>:<hex> with a known hash algorithm"),
            FieldProblem::DigestLength { found, expected } => write!(f, "{found} hex digits where {expected} are needed"),
            FieldProblem::MixedAlgorithms => f.write_str("in-memory and on-disk digests use different algorithms"),
            FieldProblem::BadPath { at } => write!(f, "not an absolute, canonically escaped path (byte {at})"),
            FieldProblem::UnknownTag => write!(f, "not {TAG}"),
            FieldProblem::UnknownVerdict => f.write_str("not ok or modified"),
            FieldProblem::VerdictContradicts => f.write_str("contradicts the in-memory and on-disk digests"),
        }
    }
}

/// A line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("hvm list line {line} (entry {entry}), field {field}: {problem}")]
pub struct HvmError {
    /// Line number in this input, from 1.
    pub line: usize,
    /// The entry's index in the whole list.
    pub entry: u64,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: FieldProblem,
}

/// The entries of a list, in order; the first error ends the iteration.
#[derive(Debug)]
pub struct Entries<'a> {
    rest: &'a [u8],
    line: usize,
    entry: u64,
    failed: bool,
}

impl<'a> Entries<'a> {
    /// The entries of `input`, whose first line is entry `first` of the list.
    pub fn new(input: &'a [u8], first: u64) -> Entries<'a> {
        Entries { rest: input, line: 0, entry: first, failed: false }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<HvmEntry<'a>, HvmError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let (line, terminated, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(i) => (self.rest.get(..i).unwrap_or_default(), true, self.rest.get(i + 1..).unwrap_or_default()),
            None => (self.rest, false, &[][..]),
        };
        self.rest = rest;
        let err = |field, problem| HvmError { line: self.line, entry: self.entry, field, problem };
        let result = if line.len() + 1 > MAX_LINE {
            Err(err("line", FieldProblem::LineTooLong { len: line.len() + usize::from(terminated) }))
        } else if !terminated {
            Err(err("line", FieldProblem::Unterminated))
        } else {
            parse_line(line).map_err(|(field, problem)| err(field, problem))
        };
        self.failed = result.is_err();
        self.entry += 1;
        Some(result)
    }
}

/// Parses a whole list (entries numbered from 0).
pub fn parse(input: &[u8]) -> Result<Vec<HvmEntry<'_>>, HvmError> {
    Entries::new(input, 0).collect()
}

type FieldResult<T> = Result<T, (&'static str, FieldProblem)>;

const NAMES: [&str; FIELDS] =
    ["pcr", "entry_hash", "tag", "pid", "exe", "file", "range", "offset", "mem_digest", "disk_digest", "file_digest", "verdict"];

/// Parses one line (without its newline).
pub(crate) fn parse_line(line: &[u8]) -> FieldResult<HvmEntry<'_>> {
    let text = std::str::from_utf8(line).map_err(|e| ("line", FieldProblem::BadPath { at: e.valid_up_to() }))?;
    let mut fields = text.split(' ');
    let mut next = |i: usize| -> FieldResult<&str> {
        let name = NAMES.get(i).copied().unwrap_or("line");
        match fields.next() {
            None => Err((name, FieldProblem::Missing)),
            Some("") => Err((name, FieldProblem::Empty)),
            Some(f) => Ok(f),
        }
    };
    let pcr = next(0)?;
    let pcr = decimal(pcr, 2)
        .and_then(|n| u8::try_from(n).ok())
        .filter(|n| *n <= 23)
        .and_then(PcrIndex::new)
        .ok_or(("pcr", FieldProblem::OutOfRange { allowed: "0 to 23" }))?;
    let entry_hash = hex_digest(next(1)?, ENTRY_HASH_ALG).map_err(|p| ("entry_hash", p))?;
    let tag_start = text.len() - fields_rest_len(text, 2);
    if next(2)? != TAG {
        return Err(("tag", FieldProblem::UnknownTag));
    }
    let pid = decimal(next(3)?, 7).ok_or(("pid", FieldProblem::NotDecimal))?;
    let pid = u32::try_from(pid).ok().and_then(Pid::new).ok_or(("pid", FieldProblem::OutOfRange { allowed: "1 to 4194304" }))?;
    let exe = path(next(4)?).map_err(|p| ("exe", p))?;
    let file = path(next(5)?).map_err(|p| ("file", p))?;
    let range_text = next(6)?;
    let (start, end) = range_text.split_once('-').ok_or(("range", FieldProblem::NotHex))?;
    let start = hex_number(start).ok_or(("range", FieldProblem::NotHex))?;
    let end = hex_number(end).ok_or(("range", FieldProblem::NotHex))?;
    let range = MapRange::new(start, end).ok_or(("range", FieldProblem::BadRange))?;
    let offset = hex_number(next(7)?).ok_or(("offset", FieldProblem::NotHex))?;
    if offset % PAGE_ALIGN != 0 {
        return Err(("offset", FieldProblem::BadRange));
    }
    let mem = alg_digest(next(8)?).map_err(|p| ("mem_digest", p))?;
    let disk = alg_digest(next(9)?).map_err(|p| ("disk_digest", p))?;
    if mem.alg() != disk.alg() {
        return Err(("disk_digest", FieldProblem::MixedAlgorithms));
    }
    let file_digest = alg_digest(next(10)?).map_err(|p| ("file_digest", p))?;
    let verdict = match next(11)? {
        "ok" => Verdict::Ok,
        "modified" => Verdict::Modified,
        _ => return Err(("verdict", FieldProblem::UnknownVerdict)),
    };
    if verdict != Verdict::of(&mem, &disk) {
        return Err(("verdict", FieldProblem::VerdictContradicts));
    }
    if fields.next().is_some() {
        return Err(("line", FieldProblem::Extra));
    }
    let canonical = line.get(tag_start..).unwrap_or_default();
    Ok(HvmEntry { pcr, entry_hash, pid, exe, file, range, offset, mem, disk, file_digest, verdict, canonical })
}

/// Length of `text` after its first `n` space-separated fields and their spaces.
fn fields_rest_len(text: &str, n: usize) -> usize {
    let mut rest = text;
    for _ in 0..n {
        rest = rest.split_once(' ').map(|(_, r)| r).unwrap_or("");
    }
    rest.len()
}

/// A decimal number of at most `max_digits` digits, without leading zeros.
fn decimal(s: &str, max_digits: usize) -> Option<u64> {
    let ok = !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// Lower-case hex without leading zeros, at most 16 digits.
fn hex_number(s: &str) -> Option<u64> {
    let ok = !s.is_empty()
        && s.len() <= 16
        && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (s == "0" || !s.starts_with('0'));
    if ok {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// Exactly `alg.len()` bytes of lower-case hex.
fn hex_digest(s: &str, alg: HashAlg) -> Result<Digest, FieldProblem> {
    let expected = alg.len() * 2;
    if s.len() != expected {
        return Err(FieldProblem::DigestLength { found: s.len(), expected });
    }
    if !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(FieldProblem::NotHex);
    }
    let bytes = hex::decode(s).map_err(|_| FieldProblem::NotHex)?;
    Digest::from_bytes(alg, &bytes).map_err(|_| FieldProblem::DigestLength { found: s.len(), expected })
}

/// `<alg>:<hex>` with the algorithm's canonical name.
fn alg_digest(s: &str) -> Result<Digest, FieldProblem> {
    let (name, hex) = s.split_once(':').ok_or(FieldProblem::UnknownAlgorithm)?;
    let alg = HashAlg::ALL.into_iter().find(|a| a.name() == name).ok_or(FieldProblem::UnknownAlgorithm)?;
    hex_digest(hex, alg)
}

/// An absolute path in canonical escaped form.
fn path(s: &str) -> Result<EscapedPath<'_>, FieldProblem> {
    let max = 3 * PATH_MAX;
    if s.len() > max {
        return Err(FieldProblem::TooLong { len: s.len(), max });
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(FieldProblem::BadPath { at: 0 });
    }
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let pair = b.get(i + 1..i + 3).ok_or(FieldProblem::BadPath { at: i })?;
            let lower = pair.iter().all(|h| h.is_ascii_digit() || (b'a'..=b'f').contains(h));
            let value = std::str::from_utf8(pair).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            // An escape is canonical only for a byte that cannot be written as itself.
            match value {
                Some(v) if lower && !literal(v) => i += 3,
                _ => return Err(FieldProblem::BadPath { at: i }),
            }
        } else if literal(c) {
            i += 1;
        } else {
            return Err(FieldProblem::BadPath { at: i });
        }
    }
    Ok(EscapedPath::new_unchecked(s))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hvm::entry::Measurement;

    pub(crate) fn sample(mem_byte: u8) -> Measurement {
        let disk = HashAlg::Sha256.hash(b"code");
        let mem = if mem_byte == 0 { disk } else { HashAlg::Sha256.hash(&[mem_byte]) };
        Measurement {
            pid: Pid::new(4242).unwrap(),
            exe: b"/usr/bin/qemu-system-x86_64".to_vec(),
            file: b"/usr/lib/x86_64-linux-gnu/libc.so.6".to_vec(),
            range: MapRange::new(0x7f00_0002_8000, 0x7f00_001b_d000).unwrap(),
            offset: 0x28000,
            mem,
            disk,
            file_digest: HashAlg::Sha256.hash(b"whole file"),
        }
    }

    fn pcr13() -> PcrIndex {
        PcrIndex::new(13).unwrap()
    }

    #[test]
    fn rendered_lines_parse_back_to_the_same_fields_and_hash() {
        for m in [sample(0), sample(1)] {
            let r = m.render(pcr13());
            let e = parse(r.line.as_bytes()).unwrap();
            assert_eq!(e.len(), 1);
            let e = e[0];
            assert_eq!((e.pid, e.range, e.offset, e.mem, e.disk), (m.pid, m.range, m.offset, m.mem, m.disk));
            assert_eq!(e.exe.to_bytes(), m.exe);
            assert_eq!(e.file.as_str(), "/usr/lib/x86_64-linux-gnu/libc.so.6");
            assert_eq!(e.verdict, m.verdict());
            assert_eq!(e.canonical(), r.canonical());
            assert_eq!(e.entry_hash, HashAlg::Sha256.hash(e.canonical()));
            assert!(r.line.starts_with("13 "));
            assert!(r.line.contains(" 7f0000028000-7f00001bd000 28000 sha256:"));
        }
    }

    #[test]
    fn each_bad_field_is_named_with_its_line() {
        let good = sample(0).render(pcr13()).line;
        let fields: Vec<&str> = good.trim_end().split(' ').collect();
        let with = |i: usize, v: &str| {
            let mut f = fields.clone();
            f[i] = v;
            format!("{good}{}\n", f.join(" "))
        };
        let h64 = "ab".repeat(32);
        let cases: Vec<(String, &str, FieldProblem)> = vec![
            (with(0, "24"), "pcr", FieldProblem::OutOfRange { allowed: "0 to 23" }),
            (with(0, "013"), "pcr", FieldProblem::OutOfRange { allowed: "0 to 23" }),
            (with(1, "AB"), "entry_hash", FieldProblem::DigestLength { found: 2, expected: 64 }),
            (with(1, &h64.to_uppercase()), "entry_hash", FieldProblem::NotHex),
            (with(2, "ima-ng"), "tag", FieldProblem::UnknownTag),
            (with(3, "0"), "pid", FieldProblem::OutOfRange { allowed: "1 to 4194304" }),
            (with(3, "042"), "pid", FieldProblem::NotDecimal),
            (with(4, "usr/bin/x"), "exe", FieldProblem::BadPath { at: 0 }),
            (with(4, "/a%41"), "exe", FieldProblem::BadPath { at: 2 }),
            (with(5, "/a%2"), "file", FieldProblem::BadPath { at: 2 }),
            (with(6, "2000-1000"), "range", FieldProblem::BadRange),
            (with(6, "1000-2001"), "range", FieldProblem::BadRange),
            (with(6, "01000-2000"), "range", FieldProblem::NotHex),
            (with(7, "10"), "offset", FieldProblem::BadRange),
            (with(8, "md5:00"), "mem_digest", FieldProblem::UnknownAlgorithm),
            (with(8, &format!("sha1:{}", "00".repeat(20))), "disk_digest", FieldProblem::MixedAlgorithms),
            (with(9, "sha256:00"), "disk_digest", FieldProblem::DigestLength { found: 2, expected: 64 }),
            (with(11, "modified"), "verdict", FieldProblem::VerdictContradicts),
            (with(11, "fine"), "verdict", FieldProblem::UnknownVerdict),
            (format!("{good}{} x\n", good.trim_end()), "line", FieldProblem::Extra),
            (format!("{good}{}\n", fields[..5].join(" ")), "file", FieldProblem::Missing),
            (format!("{good}{}", good.trim_end()), "line", FieldProblem::Unterminated),
            (format!("{good}{}\n", good.trim_end().replacen(' ', "  ", 1)), "entry_hash", FieldProblem::Empty),
        ];
        for (text, field, problem) in cases {
            let e = parse(text.as_bytes()).unwrap_err();
            assert_eq!((e.line, e.entry, e.field, &e.problem), (2, 1, field, &problem), "{text}");
            assert!(e.to_string().starts_with("hvm list line 2 (entry 1), field "), "{e}");
        }
        let long = format!("{}\n", "1".repeat(MAX_LINE));
        assert!(matches!(parse(long.as_bytes()).unwrap_err().problem, FieldProblem::LineTooLong { .. }));
    }

    #[test]
    fn entries_are_numbered_from_where_the_input_starts() {
        let text = format!("{}{}", sample(0).render(pcr13()).line, sample(0).render(pcr13()).line);
        let bad = format!("{text}garbage\n");
        let e = Entries::new(bad.as_bytes(), 40).collect::<Result<Vec<_>, _>>().unwrap_err();
        assert_eq!((e.line, e.entry), (3, 42));
        assert!(parse(b"").unwrap().is_empty());
    }
}
