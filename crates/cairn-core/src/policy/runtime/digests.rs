//! Path → allowed digests: the table every measured file is looked up in.
//!
//! A full-digest policy lists every file of a distribution (10^5 paths and more), and every entry
//! of a measurement list is one lookup at an unpredictable place in it, so a lookup costs what its
//! cache misses cost. The table is laid out for one miss. An index of 8-byte slots (open
//! addressing, linear probing, at most 7/8 full) holds a 24-bit tag of each path's hash and the
//! offset of the path's record; the records live in one byte arena, each holding the path and its
//! digests side by side. The index is small enough to stay cached (1 MiB for 100,000 paths), a
//! path is compared only when its tag matches, and then the path and its digests arrive together.
//! Records follow in the order paths were added, which for a JSON policy is path order: files of
//! one directory, which a measurement list tends to name close together, share cache lines.
//!
//! The hash is a fixed multiply–fold hash, not a keyed one: the keys come from the policy, which is
//! trusted, and a lookup never inserts, so paths chosen by a measured machine can only walk the
//! probe sequences the policy built, never make them longer.

use std::fmt;

use crate::alg::MAX_DIGEST_LEN;
use crate::policy::runtime::PolicyError;

/// A digest allowed by a policy (any length up to 64 bytes; Keylime compares hex only).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedDigest {
    len: u8,
    bytes: [u8; MAX_DIGEST_LEN],
}

/// Fewest bytes an allowed digest may have (Keylime's schema: 40 hex digits).
const MIN_DIGEST_LEN: usize = 20;

impl AllowedDigest {
    /// Parses hex (20–64 bytes, as Keylime's schema allows: 40–128 hex digits).
    pub fn from_hex(s: &str) -> Option<AllowedDigest> {
        let s = s.trim().as_bytes();
        let n = s.len() / 2;
        if !(MIN_DIGEST_LEN..=MAX_DIGEST_LEN).contains(&n) {
            return None;
        }
        let mut d = AllowedDigest { len: n as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        crate::ima::hex::decode(s, d.bytes.get_mut(..n)?).ok()?;
        Some(d)
    }

    /// A digest from its bytes (20–64 of them).
    pub fn from_bytes(b: &[u8]) -> Option<AllowedDigest> {
        if !(MIN_DIGEST_LEN..=MAX_DIGEST_LEN).contains(&b.len()) {
            return None;
        }
        let mut d = AllowedDigest { len: b.len() as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        d.bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(d)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&self.bytes)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Debug for AllowedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The digests allowed for one path, as stored in its record: a count, then each digest as a
/// length byte and its bytes.
#[derive(Clone, Copy)]
pub struct DigestList<'a> {
    count: u32,
    /// Starts at the first digest; may run past the last one (into the next record).
    bytes: &'a [u8],
}

impl<'a> DigestList<'a> {
    /// The digests' bytes.
    fn raw(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.bytes;
        (0..self.count).map_while(move |_| {
            let (len, tail) = rest.split_first()?;
            let (d, tail) = tail.split_at_checked(usize::from(*len))?;
            rest = tail;
            Some(d)
        })
    }

    /// The digests.
    pub fn iter(&self) -> impl Iterator<Item = AllowedDigest> + 'a {
        self.raw().filter_map(AllowedDigest::from_bytes)
    }

    /// Number of digests.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no digest is allowed (the path is listed with an empty list).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when `d` is allowed.
    #[inline]
    pub fn contains(&self, d: &[u8]) -> bool {
        // Almost every path has exactly one digest.
        if self.count == 1 {
            if let Some((len, rest)) = self.bytes.split_first() {
                return usize::from(*len) == d.len() && rest.get(..d.len()).is_some_and(|a| same_bytes(a, d));
            }
        }
        self.raw().any(|a| same_bytes(a, d))
    }
}

impl PartialEq for DigestList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.raw().eq(other.raw())
    }
}

impl Eq for DigestList<'_> {}

impl fmt::Debug for DigestList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Slot value of an empty slot.
const EMPTY: u64 = 0;
/// Bits of a slot holding the record offset (plus one, so that no full slot is [`EMPTY`]).
const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// Largest arena the slots can address (1 TiB: far beyond any policy).
const MAX_ARENA: usize = (OFFSET_MASK - 1) as usize;
/// Bytes of a record before its path: path length and digest count, u32 LE each.
const RECORD_HEAD: usize = 8;

/// Path (or keyring / buffer name) → allowed digests.
#[derive(Clone, Default)]
pub struct DigestMap {
    /// Power-of-two many slots (or none): [`EMPTY`], or the tag (top 24 bits of the path's hash)
    /// above the record's offset plus one.
    slots: Vec<u64>,
    /// Records: path length (u32 LE), digest count (u32 LE), path, then each digest as a length
    /// byte and its bytes. A record replaced by a longer one stays behind, unreferenced.
    arena: Vec<u8>,
    /// Paths listed.
    len: usize,
}

impl DigestMap {
    /// An empty map sized for `paths` paths.
    pub fn with_capacity(paths: usize) -> DigestMap {
        DigestMap { slots: vec![EMPTY; slots_for(paths)], arena: Vec::new(), len: 0 }
    }

    /// Allowed digests of `path`, `None` when the path is not listed.
    #[inline]
    pub fn get(&self, path: &[u8]) -> Option<DigestList<'_>> {
        match self.probe(path, path_hash(path)) {
            Probe::Found { offset, .. } => self.record(offset).map(|(_, list)| list),
            Probe::Vacant(_) => None,
        }
    }

    /// Adds a digest for `path` (a digest already allowed is not added twice).
    pub fn insert(&mut self, path: &str, d: AllowedDigest) -> Result<(), PolicyError> {
        let path = path.as_bytes();
        let mut digests: Vec<AllowedDigest> = self.get(path).map(|l| l.iter().collect()).unwrap_or_default();
        if !digests.contains(&d) {
            digests.push(d);
        }
        self.set(path, &digests)
    }

    /// Makes `digests` (duplicates dropped) the digests of `path`, replacing any it had.
    pub fn set(&mut self, path: &[u8], digests: &[AllowedDigest]) -> Result<(), PolicyError> {
        let h = path_hash(path);
        let slot = match self.probe(path, h) {
            Probe::Found { slot, .. } => slot,
            Probe::Vacant(_) if (self.len + 1) * 8 > self.slots.len() * 7 => {
                self.grow();
                match self.probe(path, h) {
                    Probe::Vacant(slot) | Probe::Found { slot, .. } => slot,
                }
            }
            Probe::Vacant(slot) => slot,
        };
        let offset = self.push_record(path, digests)?;
        let Some(s) = self.slots.get_mut(slot) else {
            return Err(PolicyError::TooLarge("the digest table"));
        };
        if *s == EMPTY {
            self.len += 1;
        }
        *s = ((h >> OFFSET_BITS) << OFFSET_BITS) | (offset as u64 + 1);
        Ok(())
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no path is listed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every path and its digests, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], DigestList<'_>)> + '_ {
        self.slots.iter().filter(|s| **s != EMPTY).filter_map(|s| self.record(offset_of(*s)))
    }

    fn push_record(&mut self, path: &[u8], digests: &[AllowedDigest]) -> Result<usize, PolicyError> {
        let too_large = || PolicyError::TooLarge("a path or its digest list");
        let offset = self.arena.len();
        let mut unique: Vec<&AllowedDigest> = Vec::with_capacity(digests.len());
        for d in digests {
            if !unique.contains(&d) {
                unique.push(d);
            }
        }
        let path_len = u32::try_from(path.len()).map_err(|_| too_large())?;
        let count = u32::try_from(unique.len()).map_err(|_| too_large())?;
        let size = RECORD_HEAD + path.len() + unique.iter().map(|d| 1 + d.as_bytes().len()).sum::<usize>();
        if offset.saturating_add(size) > MAX_ARENA {
            return Err(PolicyError::TooLarge("the digest table"));
        }
        self.arena.reserve(size);
        self.arena.extend_from_slice(&path_len.to_le_bytes());
        self.arena.extend_from_slice(&count.to_le_bytes());
        self.arena.extend_from_slice(path);
        for d in unique {
            self.arena.push(d.len);
            self.arena.extend_from_slice(d.as_bytes());
        }
        Ok(offset)
    }

    /// The path and digests of the record at `offset`.
    #[inline]
    fn record(&self, offset: usize) -> Option<(&[u8], DigestList<'_>)> {
        let (path_len, rest) = self.arena.get(offset..)?.split_first_chunk::<4>()?;
        let (count, rest) = rest.split_first_chunk::<4>()?;
        let (path, bytes) = rest.split_at_checked(u32::from_le_bytes(*path_len) as usize)?;
        Some((path, DigestList { count: u32::from_le_bytes(*count), bytes }))
    }

    #[inline]
    fn probe(&self, path: &[u8], h: u64) -> Probe {
        let mask = self.slots.len().wrapping_sub(1);
        let tag = h >> OFFSET_BITS;
        let mut i = h as usize & mask;
        // The table is never full, so an empty slot ends every probe sequence; the bound only
        // guards the loop.
        for _ in 0..self.slots.len() {
            let Some(&s) = self.slots.get(i) else { break };
            if s == EMPTY {
                return Probe::Vacant(i);
            }
            if s >> OFFSET_BITS == tag && self.record(offset_of(s)).is_some_and(|(p, _)| same_bytes(p, path)) {
                return Probe::Found { slot: i, offset: offset_of(s) };
            }
            i = (i + 1) & mask;
        }
        Probe::Vacant(usize::MAX)
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| *s != EMPTY) {
            let Some((path, _)) = self.record(offset_of(s)) else { continue };
            let mut i = path_hash(path) as usize & mask;
            while self.slots.get(i).is_some_and(|t| *t != EMPTY) {
                i = (i + 1) & mask;
            }
            if let Some(t) = self.slots.get_mut(i) {
                *t = s;
            }
        }
    }
}

enum Probe {
    /// The path's slot and record offset.
    Found { slot: usize, offset: usize },
    /// The slot where the path would go.
    Vacant(usize),
}

const MIN_SLOTS: usize = 16;

/// A power of two with room for `paths` at most 7/8 full.
fn slots_for(paths: usize) -> usize {
    (paths.saturating_mul(8) / 7 + 1).next_power_of_two().max(MIN_SLOTS)
}

fn offset_of(slot: u64) -> usize {
    ((slot & OFFSET_MASK) - 1) as usize
}

fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The path hash: eight bytes at a time, each word folded into the state by a 128-bit multiply;
/// the last word is the path's last eight bytes (overlapping the one before), so no byte is
/// copied.
#[inline]
fn path_hash(path: &[u8]) -> u64 {
    const K0: u64 = 0x9E37_79B9_7F4A_7C15;
    const K1: u64 = 0xD6E8_FEB8_6659_FD93;
    let mut h = K0 ^ path.len() as u64;
    match path.last_chunk::<8>() {
        Some(last) => {
            let mut words = path.chunks_exact(8);
            for w in &mut words {
                h = fold(h ^ word(w), K1);
            }
            if !words.remainder().is_empty() {
                h = fold(h ^ u64::from_le_bytes(*last), K1);
            }
        }
        None => {
            let short = path.iter().fold(0u64, |w, b| (w << 8) | u64::from(*b));
            h = fold(h ^ short, K1);
        }
    }
    fold(h, K0)
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
}

/// Byte equality, eight at a time: paths are short, and a call to `memcmp` costs more than
/// comparing them inline.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(la), Some(lb)) => la == lb && a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| word(x) == word(y)),
        _ => a == b,
    }
}

impl PartialEq for DigestMap {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(path, list)| other.get(path) == Some(list))
    }
}

impl Eq for DigestMap {}

impl fmt::Debug for DigestMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(p, l)| (String::from_utf8_lossy(p), l))).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn digest(seed: u8, len: usize) -> AllowedDigest {
        AllowedDigest::from_bytes(&vec![seed; len]).unwrap()
    }

    #[test]
    fn lookups_find_exactly_what_was_inserted() {
        let mut m = DigestMap::default();
        assert!(m.get(b"/usr/bin/a").is_none());
        for i in 0..5000u32 {
            m.insert(&format!("/usr/lib64/file-{i}"), digest(i as u8, 32)).unwrap();
        }
        assert_eq!(m.len(), 5000);
        for i in 0..5000u32 {
            let l = m.get(format!("/usr/lib64/file-{i}").as_bytes()).unwrap();
            assert_eq!(l.len(), 1);
            assert!(l.contains(&[i as u8; 32]));
            assert!(!l.contains(&[i as u8; 20]));
        }
        assert!(m.get(b"/usr/lib64/file-5000").is_none());
        assert!(m.get(b"/usr/lib64/file-").is_none());
        assert!(m.get(b"").is_none());
    }

    #[test]
    fn insert_adds_set_replaces_and_empty_lists_stay_listed() {
        let mut m = DigestMap::with_capacity(2);
        m.insert("/a", digest(1, 32)).unwrap();
        m.insert("/a", digest(2, 20)).unwrap();
        m.insert("/a", digest(1, 32)).unwrap();
        let l = m.get(b"/a").unwrap();
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![digest(1, 32), digest(2, 20)]);
        m.set(b"/a", &[digest(3, 64)]).unwrap();
        assert_eq!(m.get(b"/a").unwrap().iter().collect::<Vec<_>>(), vec![digest(3, 64)]);
        m.set(b"/empty", &[]).unwrap();
        assert!(m.get(b"/empty").unwrap().is_empty());
        assert_eq!(m.len(), 2);
        assert!(format!("{m:?}").contains("/empty"));
    }

    #[test]
    fn equality_ignores_insertion_order_and_replaced_records() {
        let mut a = DigestMap::default();
        let mut b = DigestMap::with_capacity(100);
        a.insert("/x", digest(1, 32)).unwrap();
        a.insert("/y", digest(2, 32)).unwrap();
        b.insert("/y", digest(9, 32)).unwrap();
        b.set(b"/y", &[digest(2, 32)]).unwrap();
        b.insert("/x", digest(1, 32)).unwrap();
        assert_eq!(a, b);
        b.insert("/x", digest(5, 32)).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn allowed_digest_lengths() {
        assert!(AllowedDigest::from_hex(&"ab".repeat(19)).is_none());
        assert!(AllowedDigest::from_hex(&"ab".repeat(65)).is_none());
        assert!(AllowedDigest::from_hex(&"zz".repeat(32)).is_none());
        assert!(AllowedDigest::from_hex(&format!("{}a", "ab".repeat(32))).is_none());
        assert_eq!(AllowedDigest::from_hex(&format!(" {} ", "AB".repeat(32))).unwrap().to_hex(), "ab".repeat(32));
    }

    #[test]
    fn paths_differing_in_one_byte_or_in_length_are_told_apart() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..base.len() {
            let path = &base[..len];
            assert!(same_bytes(path, path));
            assert!(!same_bytes(path, &base[..len + 1]));
            for i in 0..len {
                let mut other = path.to_vec();
                other[i] ^= 1;
                assert!(!same_bytes(path, &other), "len {len} byte {i}");
            }
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..40), any::<u8>(), 20usize..=64, any::<bool>()), 0..300)
        ) {
            let mut ours = DigestMap::default();
            let mut model: HashMap<Vec<u8>, Vec<AllowedDigest>> = HashMap::new();
            for (path, seed, len, replace) in &ops {
                let d = digest(*seed, *len);
                let key = String::from_utf8_lossy(path).into_owned();
                if *replace {
                    ours.set(key.as_bytes(), &[d]).unwrap();
                    model.insert(key.into_bytes(), vec![d]);
                } else {
                    ours.insert(&key, d).unwrap();
                    let list = model.entry(key.into_bytes()).or_default();
                    if !list.contains(&d) {
                        list.push(d);
                    }
                }
            }
            prop_assert_eq!(ours.len(), model.len());
            for (path, list) in &model {
                let found: Vec<AllowedDigest> = ours.get(path).unwrap().iter().collect();
                prop_assert_eq!(&found, list);
            }
            prop_assert!(ours.get(b"\xff-never-a-path").is_none());
        }
    }
}
