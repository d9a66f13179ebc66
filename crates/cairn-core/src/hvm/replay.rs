//! Replaying a hypervisor measurement list into one PCR bank, incrementally, and finding the
//! prefix a quote covers — the shape of [`crate::ima::replay`], for the hvm list.
//!
//! Each entry extends the bank with H_bank(canonical bytes); for SHA-256 that is the entry hash
//! the line logs, which is checked on the way. A [`ReplayState`] (next entry index + running
//! value) is what a verifier keeps between rounds, so it asks the agent only for the entries after
//! it. Because the list may run ahead of the quote, [`Replayer::replay_to_quote`] reports the
//! shortest prefix whose running value equals the quoted PCR; the next round resumes there.

use crate::alg::{Digest, HashAlg};
use crate::pcr::PcrIndex;

use super::entry::{HvmEntry, ENTRY_HASH_ALG};
use super::list::{Entries, HvmError};

/// Where a replay stands: the next entry's index and the bank's running value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayState {
    next_entry: u64,
    value: Digest,
}

impl ReplayState {
    /// The state before the first entry: the PCR after a reset (all zeros) in bank `alg`.
    pub fn new(alg: HashAlg) -> ReplayState {
        ReplayState { next_entry: 0, value: alg.zero() }
    }

    /// A state restored from storage: `next_entry` entries replayed, giving `value`.
    pub fn resume(next_entry: u64, value: Digest) -> ReplayState {
        ReplayState { next_entry, value }
    }

    /// Entries replayed so far (= the index of the next one).
    pub fn next_entry(&self) -> u64 {
        self.next_entry
    }

    /// The running value.
    pub fn value(&self) -> Digest {
        self.value
    }

    /// The bank.
    pub fn bank(&self) -> HashAlg {
        self.value.alg()
    }

    /// True when the running value equals `d`.
    pub fn holds(&self, d: &Digest) -> bool {
        self.value == *d
    }

    /// Extends the state with one entry; returns the entry's computed SHA-256 entry hash.
    pub fn extend(&mut self, entry: &HvmEntry<'_>) -> Digest {
        let computed = entry.extend_digest(ENTRY_HASH_ALG);
        let d = if self.bank() == ENTRY_HASH_ALG { computed } else { entry.extend_digest(self.bank()) };
        self.value = self.bank().extend(&self.value, d.as_bytes());
        self.next_entry += 1;
        computed
    }
}

/// An entry whose logged hash is not the hash of its fields: the line was altered after logging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashMismatch {
    /// The entry.
    pub entry: u64,
    /// Logged.
    pub logged: Digest,
    /// Computed from the fields.
    pub computed: Digest,
}

/// An entry naming another PCR than the one replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongPcr {
    /// The entry.
    pub entry: u64,
    /// The PCR it names.
    pub pcr: PcrIndex,
}

/// Outcome of replaying one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixMatch {
    /// The state after the shortest prefix (possibly empty) whose value equals the quote, if any.
    pub matched: Option<ReplayState>,
    /// The state after the whole input.
    pub end: ReplayState,
    /// Entries read.
    pub entries: u64,
    /// Entries whose logged hash does not match their fields.
    pub hash_mismatches: Vec<HashMismatch>,
    /// Entries naming another PCR.
    pub wrong_pcr: Vec<WrongPcr>,
}

/// Replays lists for one PCR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replayer {
    pcr: PcrIndex,
}

impl Replayer {
    /// A replayer for lists extended into `pcr`.
    pub fn new(pcr: PcrIndex) -> Replayer {
        Replayer { pcr }
    }

    /// Replays all of `input` from `state`, which is advanced.
    pub fn replay(&self, state: &mut ReplayState, input: &[u8]) -> Result<PrefixMatch, HvmError> {
        self.run(state, input, None)
    }

    /// Replays `input` (the list from entry `state.next_entry()`) and reports the first prefix at
    /// which the bank equals `quoted`. `state` ends after the whole input.
    pub fn replay_to_quote(&self, state: &mut ReplayState, input: &[u8], quoted: &Digest) -> Result<PrefixMatch, HvmError> {
        self.run(state, input, Some(quoted))
    }

    /// Calls `each` with every entry and its index, as replay does, without replaying.
    pub fn for_each<'a>(
        input: &'a [u8],
        first: u64,
        mut each: impl FnMut(u64, &HvmEntry<'a>),
    ) -> Result<u64, HvmError> {
        let mut n = 0;
        for (i, e) in Entries::new(input, first).enumerate() {
            each(first + i as u64, &e?);
            n += 1;
        }
        Ok(n)
    }

    fn run(&self, state: &mut ReplayState, input: &[u8], quoted: Option<&Digest>) -> Result<PrefixMatch, HvmError> {
        let mut out = PrefixMatch {
            matched: quoted.filter(|q| state.holds(q)).map(|_| *state),
            end: *state,
            entries: 0,
            hash_mismatches: Vec::new(),
            wrong_pcr: Vec::new(),
        };
        for e in Entries::new(input, state.next_entry()) {
            let e = e?;
            let index = state.next_entry();
            if e.pcr != self.pcr {
                out.wrong_pcr.push(WrongPcr { entry: index, pcr: e.pcr });
            }
            let computed = state.extend(&e);
            if computed != e.entry_hash {
                out.hash_mismatches.push(HashMismatch { entry: index, logged: e.entry_hash, computed });
            }
            out.entries += 1;
            if let (None, Some(q)) = (&out.matched, quoted) {
                if state.holds(q) {
                    out.matched = Some(*state);
                }
            }
        }
        out.end = *state;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hvm::entry::{MapRange, Measurement, Pid};

    fn line(n: u8, pcr: u8) -> String {
        let d = HashAlg::Sha256.hash(&[n]);
        Measurement {
            pid: Pid::new(100 + u32::from(n)).unwrap(),
            exe: b"/usr/bin/swtpm".to_vec(),
            file: b"/usr/bin/swtpm".to_vec(),
            range: MapRange::new(0x1000, 0x3000).unwrap(),
            offset: 0x1000,
            mem: d,
            disk: d,
            file_digest: d,
        }
        .render(PcrIndex::new(pcr).unwrap())
        .line
    }

    fn pcr(n: u8) -> PcrIndex {
        PcrIndex::new(n).unwrap()
    }

    #[test]
    fn incremental_replay_equals_whole_replay_in_every_bank() {
        let lines: Vec<String> = (0..5).map(|n| line(n, 13)).collect();
        let all = lines.concat();
        for bank in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
            let r = Replayer::new(pcr(13));
            let mut whole = ReplayState::new(bank);
            r.replay(&mut whole, all.as_bytes()).unwrap();
            let mut step = ReplayState::new(bank);
            r.replay(&mut step, lines[..2].concat().as_bytes()).unwrap();
            let resumed = ReplayState::resume(step.next_entry(), step.value());
            let mut step = resumed;
            r.replay(&mut step, lines[2..].concat().as_bytes()).unwrap();
            assert_eq!(step, whole);
            assert_eq!(whole.next_entry(), 5);
        }
        // The SHA-256 bank is extended with the logged entry hashes themselves.
        let mut v = HashAlg::Sha256.zero();
        for l in &lines {
            let logged = Digest::from_hex(HashAlg::Sha256, l.split(' ').nth(1).unwrap()).unwrap();
            v = HashAlg::Sha256.extend(&v, logged.as_bytes());
        }
        let mut s = ReplayState::new(HashAlg::Sha256);
        Replayer::new(pcr(13)).replay(&mut s, all.as_bytes()).unwrap();
        assert_eq!(s.value(), v);
    }

    #[test]
    fn the_shortest_matching_prefix_is_found_and_a_list_ahead_of_the_quote_is_fine() {
        let lines: Vec<String> = (0..4).map(|n| line(n, 13)).collect();
        let r = Replayer::new(pcr(13));
        let mut at2 = ReplayState::new(HashAlg::Sha256);
        r.replay(&mut at2, lines[..2].concat().as_bytes()).unwrap();
        let mut s = ReplayState::new(HashAlg::Sha256);
        let m = r.replay_to_quote(&mut s, lines.concat().as_bytes(), &at2.value()).unwrap();
        assert_eq!(m.matched, Some(at2));
        assert_eq!((m.entries, m.end.next_entry()), (4, 4));
        let mut s = ReplayState::new(HashAlg::Sha256);
        let zero = HashAlg::Sha256.zero();
        assert_eq!(r.replay_to_quote(&mut s, b"", &zero).unwrap().matched, Some(ReplayState::new(HashAlg::Sha256)));
        let mut s = ReplayState::new(HashAlg::Sha256);
        assert_eq!(r.replay_to_quote(&mut s, lines.concat().as_bytes(), &HashAlg::Sha256.hash(b"x")).unwrap().matched, None);
    }

    #[test]
    fn altered_lines_and_foreign_pcrs_are_reported_by_entry() {
        let good = line(1, 13);
        let altered = good.replacen(" 101 ", " 102 ", 1);
        let text = format!("{good}{altered}{}", line(2, 14));
        let mut s = ReplayState::new(HashAlg::Sha256);
        let m = Replayer::new(pcr(13)).replay(&mut s, text.as_bytes()).unwrap();
        assert_eq!(m.hash_mismatches.iter().map(|h| h.entry).collect::<Vec<_>>(), [1]);
        assert_eq!(m.wrong_pcr, [WrongPcr { entry: 2, pcr: pcr(14) }]);
    }
}
