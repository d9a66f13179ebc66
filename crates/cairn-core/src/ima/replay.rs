//! Replaying a measurement list into PCR banks, incrementally, and finding the prefix a quote covers.
//!
//! The kernel's rules: each entry extends PCR 10 of every bank; the SHA-1 bank receives the
//! template hash as logged, other banks receive H_bank(template data); a violation entry (logged
//! template hash all zeros) extends all-ones of the bank's length instead. A bank whose template
//! data cannot be known (an unknown template in an ASCII log) becomes unavailable from that entry.
//!
//! A [`ReplayState`] (next entry index + running value per bank) is what a verifier keeps between
//! rounds, so an agent can send only the entries after it (Keylime's `ima_ml_entry`). Because the
//! log may run ahead of the quote, [`Replayer::replay_to_quote`] reports the first prefix whose
//! running value equals the quoted PCR, and the state there, which is where the next round resumes.

use crate::alg::{Digest, HashAlg};
use crate::error::ParseError;
use crate::ima::entry::ImaEntry;
use crate::ima::hash;
use crate::ima::log::{Entries, LogError};

/// PCR IMA extends unless its policy says otherwise (CONFIG_IMA_MEASURE_PCR_IDX).
pub const IMA_PCR: u32 = 10;

/// A set of PCR banks to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BankSet(u8);

impl BankSet {
    /// No bank.
    pub const EMPTY: BankSet = BankSet(0);
    /// Every bank Cairn computes.
    pub const ALL: BankSet = BankSet(0b1_1111);

    /// The set holding `algs`.
    pub fn of(algs: &[HashAlg]) -> BankSet {
        BankSet(algs.iter().fold(0, |m, a| m | bit(*a)))
    }
    /// True when `alg` is in the set.
    pub fn contains(self, alg: HashAlg) -> bool {
        self.0 & bit(alg) != 0
    }
    /// The set with `alg` added.
    pub fn with(self, alg: HashAlg) -> BankSet {
        BankSet(self.0 | bit(alg))
    }
    /// The banks, in [`HashAlg::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = HashAlg> {
        HashAlg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

fn bit(a: HashAlg) -> u8 {
    1 << slot(a)
}

fn slot(a: HashAlg) -> usize {
    match a {
        HashAlg::Sha1 => 0,
        HashAlg::Sha256 => 1,
        HashAlg::Sha384 => 2,
        HashAlg::Sha512 => 3,
        HashAlg::Sm3_256 => 4,
    }
}

/// The running value of one bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BankValue {
    /// The value after the entries so far.
    Value(Digest),
    /// Entry `entry`'s template data could not be known, so this bank cannot be replayed further.
    Unavailable {
        /// The entry that made the bank unavailable.
        entry: u64,
    },
}

/// Where a replay stands: the next entry's index and each tracked bank's running PCR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayState {
    next_entry: u64,
    banks: [Option<BankValue>; 5],
}

impl ReplayState {
    /// The state before the first entry (every tracked bank all zeros: PCR 10 after reset).
    pub fn new(banks: BankSet) -> ReplayState {
        let mut s = ReplayState { next_entry: 0, banks: [None; 5] };
        for a in banks.iter() {
            if let Some(b) = s.banks.get_mut(slot(a)) {
                *b = Some(BankValue::Value(a.zero()));
            }
        }
        s
    }

    /// A state restored from storage: `next_entry` entries replayed, with these bank values.
    pub fn resume(next_entry: u64, values: &[Digest]) -> ReplayState {
        let mut s = ReplayState { next_entry, banks: [None; 5] };
        for v in values {
            if let Some(b) = s.banks.get_mut(slot(v.alg())) {
                *b = Some(BankValue::Value(*v));
            }
        }
        s
    }

    /// Number of entries replayed so far (= index of the next one).
    pub fn next_entry(&self) -> u64 {
        self.next_entry
    }

    /// The bank's running value, `None` when the bank is not tracked.
    pub fn bank(&self, alg: HashAlg) -> Option<BankValue> {
        self.banks.get(slot(alg)).copied().flatten()
    }

    /// The bank's running value when tracked and available.
    pub fn value(&self, alg: HashAlg) -> Option<Digest> {
        match self.bank(alg) {
            Some(BankValue::Value(d)) => Some(d),
            _ => None,
        }
    }

    /// True when the bank of `d`'s algorithm is tracked, available and equal to `d` (checked after
    /// every entry against a quoted value, so it compares in place).
    #[inline]
    pub fn holds(&self, d: &Digest) -> bool {
        matches!(self.banks.get(slot(d.alg())), Some(Some(BankValue::Value(v))) if v == d)
    }

    /// The tracked banks (available or not), without allocating.
    pub fn tracked(&self) -> BankSet {
        BankSet(self.banks.iter().enumerate().fold(0, |m, (i, b)| if b.is_some() { m | (1 << i) } else { m }))
    }

    /// The tracked banks.
    pub fn banks(&self) -> BankSet {
        BankSet::of(&HashAlg::ALL.into_iter().filter(|a| self.bank(*a).is_some()).collect::<Vec<_>>())
    }
}

/// How to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayConfig {
    /// The PCR every entry must name.
    pub pcr: u32,
    /// Checks each logged template hash against this hash of the template data (Keylime's
    /// `ima.log_hash_alg`; SHA-1 on every kernel so far). `None` skips the check.
    pub template_hash_alg: Option<HashAlg>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig { pcr: IMA_PCR, template_hash_alg: Some(HashAlg::Sha1) }
    }
}

/// What extending one entry found out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Whether the logged template hash equals the hash of the template data; `None` when it could
    /// not be checked (violation entry, unknown ASCII template, or no check asked for).
    pub template_hash_ok: Option<bool>,
}

/// What one entry extends each bank with, worked out from the entry alone — apart from the running
/// values — so that the per-entry work (template data, its hashes) can run ahead of, or beside, the
/// sequential extend chain ([`Replayer::prepare`], [`Replayer::apply`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension {
    banks: [Ext; 5],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// The bank is not tracked.
    Skip,
    /// Extend with this digest.
    With(Digest),
    /// A violation: extend with all-ones of the bank's length.
    Ones,
    /// The template data cannot be known: the bank becomes unavailable.
    Unavailable,
}

/// Summary of a replay over one input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Entries read from this input.
    pub entries: u64,
    /// Violation (ToMToU / open-writers) entries.
    pub violations: u64,
    /// Entries whose logged template hash does not match their fields: the log was altered.
    pub template_hash_mismatches: Vec<u64>,
}

/// Outcome of replaying against a quoted PCR value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixMatch {
    /// The state after the shortest prefix whose running value equals the quote, if any; the next
    /// incremental round resumes from it.
    pub matched: Option<ReplayState>,
    /// The state after the whole input.
    pub end: ReplayState,
    /// Summary of the whole input.
    pub summary: ReplaySummary,
}

/// Replays entries; holds a scratch buffer so rebuilt template data is never allocated per entry.
#[derive(Debug, Default)]
pub struct Replayer {
    config: ReplayConfig,
    scratch: Vec<u8>,
}

impl Replayer {
    /// A replayer.
    pub fn new(config: ReplayConfig) -> Replayer {
        Replayer { config, scratch: Vec::with_capacity(512) }
    }

    /// Its configuration.
    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Extends every tracked bank of `state` with `entry` (its PCR index is not checked here).
    pub fn extend(&mut self, state: &mut ReplayState, entry: &ImaEntry<'_>) -> Step {
        let (ext, step) = self.prepare(state.tracked(), entry);
        Replayer::apply(state, &ext);
        step
    }

    /// The per-entry half of [`Replayer::extend`]: what `entry` extends each of `banks` with, and
    /// the template-hash check.
    pub fn prepare(&mut self, banks: BankSet, entry: &ImaEntry<'_>) -> (Extension, Step) {
        let mut ext = Extension { banks: [Ext::Skip; 5] };
        if entry.template_hash.is_violation() {
            for (alg, e) in HashAlg::ALL.into_iter().zip(ext.banks.iter_mut()) {
                if banks.contains(alg) {
                    *e = Ext::Ones;
                }
            }
            return (ext, Step { template_hash_ok: None });
        }
        let logged = entry.template_hash.as_bytes();
        let data = entry.template_data(&mut self.scratch);
        // The template-hash check's digest, also what a bank of the same algorithm extends.
        let checked = match (self.config.template_hash_alg, data) {
            (Some(alg), Some(d)) => Some(hash::hash(alg, d)),
            _ => None,
        };
        for (alg, e) in HashAlg::ALL.into_iter().zip(ext.banks.iter_mut()) {
            if !banks.contains(alg) {
                continue;
            }
            *e = match (alg == HashAlg::Sha1).then(|| Digest::from_bytes(alg, logged).ok()).flatten() {
                Some(d) => Ext::With(d),
                None => match data {
                    Some(d) => Ext::With(match checked {
                        Some(c) if c.alg() == alg => c,
                        _ => hash::hash(alg, d),
                    }),
                    None => Ext::Unavailable,
                },
            };
        }
        (ext, Step { template_hash_ok: checked.map(|c| c.as_bytes() == logged) })
    }

    /// The sequential half of [`Replayer::extend`]: applies a prepared entry to the running values.
    #[inline]
    pub fn apply(state: &mut ReplayState, ext: &Extension) {
        let index = state.next_entry;
        state.next_entry += 1;
        for ((alg, bank), e) in HashAlg::ALL.into_iter().zip(state.banks.iter_mut()).zip(ext.banks.iter()) {
            let Some(BankValue::Value(old)) = bank else { continue };
            match e {
                Ext::Skip => {}
                Ext::With(d) => *old = hash::extend(alg, old, d.as_bytes()),
                Ext::Ones => *old = hash::extend(alg, old, alg.ones().as_bytes()),
                Ext::Unavailable => *bank = Some(BankValue::Unavailable { entry: index }),
            }
        }
    }

    /// Checks the entry's PCR against the configuration.
    pub fn check_pcr(&self, entry: &ImaEntry<'_>) -> Result<(), ParseError> {
        if entry.pcr == self.config.pcr {
            Ok(())
        } else {
            Err(ParseError::BadValue { field: "pcr", offset: 0, value: u64::from(entry.pcr), expected: "the IMA PCR" })
        }
    }

    /// Replays all of `input` (ASCII or binary) from `state`, which is advanced.
    pub fn replay(&mut self, state: &mut ReplayState, input: &[u8]) -> Result<ReplaySummary, LogError> {
        Ok(self.run(state, input, None)?.summary)
    }

    /// Replays `input` from `state` and reports the first prefix (possibly empty) at which the
    /// `quoted` bank equals the quoted value. `state` ends after the whole input.
    pub fn replay_to_quote(
        &mut self,
        state: &mut ReplayState,
        input: &[u8],
        quoted: &Digest,
    ) -> Result<PrefixMatch, LogError> {
        self.run(state, input, Some(quoted))
    }

    fn run(&mut self, state: &mut ReplayState, input: &[u8], quoted: Option<&Digest>) -> Result<PrefixMatch, LogError> {
        let mut summary = ReplaySummary::default();
        let mut matched = quoted.filter(|q| state.holds(q)).map(|_| *state);
        let mut entries = Entries::new(input, state.next_entry);
        loop {
            let offset = entries.offset();
            // Borrowed where it was parsed: an entry is a few hundred bytes.
            let item = entries.next();
            let entry = match item {
                Some(Ok(ref e)) => e,
                Some(Err(e)) => return Err(e),
                None => break,
            };
            let index = state.next_entry;
            self.check_pcr(entry).map_err(|source| LogError { entry: index, offset, source })?;
            let step = self.extend(state, entry);
            summary.entries += 1;
            summary.violations += u64::from(entry.template_hash.is_violation());
            if step.template_hash_ok == Some(false) {
                summary.template_hash_mismatches.push(index);
            }
            if let (None, Some(q)) = (&matched, quoted) {
                if state.holds(q) {
                    matched = Some(*state);
                }
            }
        }
        Ok(PrefixMatch { matched, end: *state, summary })
    }
}

/// Replays a whole log from the reset state into `banks` with the default configuration.
pub fn replay(input: &[u8], banks: BankSet) -> Result<(ReplayState, ReplaySummary), LogError> {
    let mut state = ReplayState::new(banks);
    let summary = Replayer::new(ReplayConfig::default()).replay(&mut state, input)?;
    Ok((state, summary))
}
