//! One entry of a hypervisor measurement list: its fields, their canonical text, and the entry hash.
//!
//! The agent builds a [`Measurement`] from what it read and renders it with [`Measurement::render`];
//! the verifier parses the same text back into an [`HvmEntry`] ([`super::list`]). Both sides go
//! through this one definition, so the bytes hashed are the bytes parsed.

use std::fmt;

use crate::alg::{Digest, HashAlg};
use crate::pcr::PcrIndex;

/// The format tag, third field of every line (IMA's template name, in spirit).
pub const TAG: &str = "cairn-hvm";
/// The hash of an entry's canonical bytes as logged (the second field).
pub const ENTRY_HASH_ALG: HashAlg = HashAlg::Sha256;
/// Largest process id Linux hands out (PID_MAX_LIMIT).
pub const PID_MAX: u32 = 4_194_304;
/// Longest path (PATH_MAX, including its NUL) before escaping.
pub const PATH_MAX: usize = 4096;
/// Every mapping boundary and file offset is a multiple of this (every Linux page size is).
pub const PAGE_ALIGN: u64 = 4096;

/// A process id, 1 to [`PID_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(u32);

impl Pid {
    /// A pid, if it is in range.
    pub fn new(n: u32) -> Option<Pid> {
        (1..=PID_MAX).contains(&n).then_some(Pid(n))
    }
    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A mapping's virtual address range `[start, end)`, page aligned and non-empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRange {
    start: u64,
    end: u64,
}

impl MapRange {
    /// A range, if `start < end` and both are page aligned.
    pub fn new(start: u64, end: u64) -> Option<MapRange> {
        (start < end && start % PAGE_ALIGN == 0 && end % PAGE_ALIGN == 0).then_some(MapRange { start, end })
    }
    /// First address.
    pub fn start(self) -> u64 {
        self.start
    }
    /// One past the last address.
    pub fn end(self) -> u64 {
        self.end
    }
    /// Length in bytes.
    pub fn len(self) -> u64 {
        self.end - self.start
    }
    /// Never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        false
    }
}

impl fmt::Display for MapRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{:x}", self.start, self.end)
    }
}

/// What the agent concluded: the code in memory is, or is not, the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// In-memory digest = on-disk digest.
    Ok,
    /// They differ: the code was changed in memory (or the file changed under the mapping).
    Modified,
}

impl Verdict {
    /// The verdict two digests call for.
    pub fn of(mem: &Digest, disk: &Digest) -> Verdict {
        if mem == disk {
            Verdict::Ok
        } else {
            Verdict::Modified
        }
    }
    /// Its word in the list.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Modified => "modified",
        }
    }
}

/// A path as the list writes it: `/` first, every byte outside `!`..`~` and every `%` as `%xx`
/// (lower-case hex), every other byte as itself — so a path never holds a space or a newline, and
/// each path has exactly one spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EscapedPath<'a>(&'a str);

impl<'a> EscapedPath<'a> {
    /// Wraps text already checked to be canonical ([`super::list`] does).
    pub(crate) fn new_unchecked(s: &'a str) -> EscapedPath<'a> {
        EscapedPath(s)
    }
    /// The escaped text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
    /// The path's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        unescape(self.0.as_bytes())
    }
}

impl fmt::Display for EscapedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// True for a byte the escaped form writes as itself.
pub(crate) fn literal(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'%'
}

/// The escaped form of a path's bytes.
pub fn escape_path(path: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if literal(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The bytes of an escaped path (malformed escapes are kept as they are; the parser rejects them).
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let pair = s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, pair) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// One parsed line, borrowing from the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmEntry<'a> {
    /// The PCR the agent extended.
    pub pcr: PcrIndex,
    /// The logged entry hash (SHA-256 of the canonical bytes, if the line is honest).
    pub entry_hash: Digest,
    /// The measured process.
    pub pid: Pid,
    /// The process's executable (`/proc/PID/exe`).
    pub exe: EscapedPath<'a>,
    /// The file mapped.
    pub file: EscapedPath<'a>,
    /// The mapping's addresses.
    pub range: MapRange,
    /// The file offset mapped at `range.start`.
    pub offset: u64,
    /// Digest of the mapping's bytes as read from the process's memory.
    pub mem: Digest,
    /// Digest of the same range of the file (zero-filled past its end, as the kernel maps it).
    pub disk: Digest,
    /// Digest of the whole file.
    pub file_digest: Digest,
    /// The agent's verdict (consistent with `mem` and `disk`; the parser checks).
    pub verdict: Verdict,
    /// The hashed bytes: the line from the tag to its end, without the newline.
    pub(crate) canonical: &'a [u8],
}

impl HvmEntry<'_> {
    /// The canonical bytes (the entry hash and every PCR bank's extension are hashes of them).
    pub fn canonical(&self) -> &[u8] {
        self.canonical
    }
    /// What the entry extends into a bank of `alg`: H_alg(canonical bytes).
    pub fn extend_digest(&self, alg: HashAlg) -> Digest {
        alg.hash(self.canonical)
    }
}

/// What the agent measured for one mapping; rendered into a list line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The process.
    pub pid: Pid,
    /// The process's executable path (bytes).
    pub exe: Vec<u8>,
    /// The mapped file's path (bytes).
    pub file: Vec<u8>,
    /// The mapping.
    pub range: MapRange,
    /// Its file offset (page aligned).
    pub offset: u64,
    /// In-memory digest.
    pub mem: Digest,
    /// On-disk digest of the same range.
    pub disk: Digest,
    /// Whole-file digest.
    pub file_digest: Digest,
}

/// A rendered entry: the line and its canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The whole line, newline included.
    pub line: String,
    /// The entry hash logged.
    pub entry_hash: Digest,
    canonical_start: usize,
}

impl Rendered {
    /// The canonical bytes (see [`HvmEntry::canonical`]).
    pub fn canonical(&self) -> &[u8] {
        let end = self.line.len().saturating_sub(1);
        self.line.as_bytes().get(self.canonical_start..end).unwrap_or_default()
    }
    /// What the entry extends into a bank of `alg`.
    pub fn extend_digest(&self, alg: HashAlg) -> Digest {
        alg.hash(self.canonical())
    }
}

fn digest_text(d: &Digest) -> String {
    format!("{}:{}", d.alg().name(), d.to_hex())
}

impl Measurement {
    /// The verdict its digests call for.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.mem, &self.disk)
    }

    /// The canonical bytes: `cairn-hvm <pid> <exe> <file> <start>-<end> <offset> <mem> <disk> <file> <verdict>`.
    pub fn canonical(&self) -> String {
        format!(
            "{TAG} {} {} {} {} {:x} {} {} {} {}",
            self.pid,
            escape_path(&self.exe),
            escape_path(&self.file),
            self.range,
            self.offset,
            digest_text(&self.mem),
            digest_text(&self.disk),
            digest_text(&self.file_digest),
            self.verdict().as_str()
        )
    }

    /// The list line for `pcr`: `<pcr> <entry hash> <canonical bytes>\n`.
    pub fn render(&self, pcr: PcrIndex) -> Rendered {
        let canonical = self.canonical();
        let entry_hash = ENTRY_HASH_ALG.hash(canonical.as_bytes());
        let prefix = format!("{pcr} {} ", entry_hash.to_hex());
        let canonical_start = prefix.len();
        Rendered { line: format!("{prefix}{canonical}\n"), entry_hash, canonical_start }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_to_one_spelling_and_back() {
        let raw = b"/opt/my vm/q\n%\xff\x7f";
        let e = escape_path(raw);
        assert_eq!(e, "/opt/my%20vm/q%0a%25%ff%7f");
        assert_eq!(unescape(e.as_bytes()), raw);
        assert_eq!(escape_path(b"/usr/bin/qemu-system-x86_64"), "/usr/bin/qemu-system-x86_64");
    }

    #[test]
    fn ranges_pids_and_verdicts() {
        assert!(MapRange::new(0x1000, 0x1000).is_none());
        assert!(MapRange::new(0x1000, 0x1800).is_none());
        assert_eq!(MapRange::new(0x1000, 0x3000).unwrap().len(), 0x2000);
        assert!(Pid::new(0).is_none() && Pid::new(PID_MAX + 1).is_none() && Pid::new(1).is_some());
        let a = HashAlg::Sha256.hash(b"a");
        assert_eq!(Verdict::of(&a, &a), Verdict::Ok);
        assert_eq!(Verdict::of(&a, &HashAlg::Sha256.hash(b"b")).as_str(), "modified");
    }
}
