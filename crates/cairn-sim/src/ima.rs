//! The simulated IMA logs: one shared sequence of measurements every agent walks through, so
//! ten thousand agents cost one log in memory.
//!
//! Agent logs are prefixes of the [`Universe`] (a synthetic `ima-ng` log whose runtime policy
//! allows every entry), plus, once something unknown was measured on that agent, its own lines.
//! PCR 10 (sha256 bank) after n shared entries is precomputed, so growing a log is an index bump.
//! A measurement of an unknown file is a real `ima-ng` line whose template hash and PCR 10
//! extension follow the kernel's rules, so the verifier judges it like any other.

use cairn_core::ima::entry::Template;
use cairn_core::ima::synth;
use cairn_core::ima::FileDigest;
use cairn_core::{Digest, HashAlg};

use crate::error::SimError;

/// The bank simulated quotes use.
pub const BANK: HashAlg = HashAlg::Sha256;

/// The shared measurement sequence.
#[derive(Debug)]
pub struct Universe {
    text: Vec<u8>,
    /// Byte offset of line i (and one past the end).
    starts: Vec<usize>,
    /// PCR 10 after the first i entries.
    pcr10: Vec<Digest>,
    /// A Keylime runtime policy allowing every entry.
    pub policy_json: String,
}

impl Universe {
    /// `n` entries (boot_aggregate first).
    pub fn generate(n: usize) -> Result<Universe, SimError> {
        let s = synth::generate(n.max(1));
        let mut starts = Vec::with_capacity(s.entries + 1);
        let mut pcr10 = Vec::with_capacity(s.entries + 1);
        let mut pcr = BANK.zero();
        pcr10.push(pcr);
        starts.push(0);
        let entries = cairn_core::ima::parse(&s.log).map_err(|e| SimError::Keys(format!("synthetic IMA log: {e}")))?;
        let mut scratch = Vec::new();
        for e in entries {
            let data = e.template_data(&mut scratch).ok_or_else(|| SimError::Keys("synthetic IMA entry without template data".into()))?;
            pcr = BANK.extend(&pcr, BANK.hash(data).as_bytes());
            pcr10.push(pcr);
        }
        for (i, b) in s.log.iter().enumerate() {
            if *b == b'\n' {
                starts.push(i + 1);
            }
        }
        if starts.len() != pcr10.len() {
            return Err(SimError::Keys("synthetic IMA log: line and entry counts differ".into()));
        }
        Ok(Universe { text: s.log, starts, pcr10, policy_json: s.policy_json })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.pcr10.len() - 1
    }

    /// Whether it has no entries (never: boot_aggregate is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// PCR 10 after the first `n` entries.
    pub fn pcr10(&self, n: usize) -> Digest {
        self.pcr10.get(n.min(self.len())).copied().unwrap_or(BANK.zero())
    }

    /// Lines `from..to` as text.
    pub fn lines(&self, from: usize, to: usize) -> &[u8] {
        let (a, b) = (from.min(to).min(self.len()), to.min(self.len()));
        match (self.starts.get(a), self.starts.get(b)) {
            (Some(&x), Some(&y)) => self.text.get(x..y).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// One agent's log beyond the shared prefix.
#[derive(Clone, Debug)]
pub struct AgentLog {
    /// Entries of the universe measured so far.
    pub shared: usize,
    /// Fractional growth carried between ticks.
    pub carry: f64,
    /// Lines measured only here (unknown files), appended after `shared`.
    pub own: Vec<String>,
    /// PCR 10 over the own lines, on top of the shared prefix.
    pub own_pcr10: Option<Digest>,
}

impl AgentLog {
    /// A log with the first `n` shared entries.
    pub fn new(n: usize) -> AgentLog {
        AgentLog { shared: n, carry: 0.0, own: Vec::new(), own_pcr10: None }
    }

    /// Entries in all.
    pub fn len(&self) -> usize {
        self.shared + self.own.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// PCR 10 now.
    pub fn pcr10(&self, u: &Universe) -> Digest {
        self.own_pcr10.unwrap_or_else(|| u.pcr10(self.shared))
    }

    /// Grows by `rate × seconds` shared entries (only while nothing of its own was measured: the
    /// shared prefix must stay a prefix).
    pub fn grow(&mut self, u: &Universe, entries: f64) {
        if !self.own.is_empty() {
            return;
        }
        self.carry += entries;
        let whole = self.carry.floor();
        self.carry -= whole;
        // `whole` is small and non-negative: the cast keeps its value.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let add = whole as usize;
        self.shared = (self.shared + add).min(u.len());
    }

    /// Measures a file the policy does not know (`path`, its content digest from `seed`).
    pub fn measure_unknown(&mut self, u: &Universe, path: &str, seed: &[u8]) -> Result<(), SimError> {
        let digest = BANK.hash(seed);
        let fd = FileDigest::new(b"sha256", digest.as_bytes(), "d-ng").map_err(|source| SimError::Parse { what: "file digest", source })?;
        let mut data = Vec::new();
        if !(Template::ImaNg { digest: fd, path: path.as_bytes() }.encode(&mut data)) {
            return Err(SimError::Keys(format!("cannot encode an ima-ng entry for {path}")));
        }
        let thash = HashAlg::Sha1.hash(&data);
        let pcr = self.pcr10(u);
        self.own_pcr10 = Some(BANK.extend(&pcr, BANK.hash(&data).as_bytes()));
        self.own.push(format!("10 {} ima-ng sha256:{} {}\n", thash.to_hex(), digest.to_hex(), path));
        Ok(())
    }

    /// The text of entries `from..` (the `ima_ml_entry` reply); past the end, the whole log as
    /// Keylime's agent answers.
    pub fn text_from(&self, u: &Universe, from: usize) -> (usize, String) {
        let from = if from > self.len() { 0 } else { from };
        let mut out = String::new();
        if from < self.shared {
            out.push_str(&String::from_utf8_lossy(u.lines(from, self.shared)));
        }
        for l in self.own.iter().skip(from.saturating_sub(self.shared)) {
            out.push_str(l);
        }
        (from, out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_core::ima::replay::{replay, BankSet};

    #[test]
    fn every_prefix_replays_to_its_pcr10_and_unknown_files_extend_it() {
        let u = Universe::generate(40).unwrap();
        let mut log = AgentLog::new(5);
        log.grow(&u, 2.5);
        log.grow(&u, 0.5);
        assert_eq!(log.len(), 8);
        let (_, text) = log.text_from(&u, 0);
        let (state, _) = replay(text.as_bytes(), BankSet::of(&[BANK])).unwrap();
        assert_eq!(state.value(BANK).unwrap(), log.pcr10(&u));
        log.measure_unknown(&u, "/tmp/unknown", b"x").unwrap();
        log.grow(&u, 10.0);
        assert_eq!(log.len(), 9, "a diverged log stops taking shared entries");
        let (_, text) = log.text_from(&u, 0);
        let (state, _) = replay(text.as_bytes(), BankSet::of(&[BANK])).unwrap();
        assert_eq!(state.value(BANK).unwrap(), log.pcr10(&u));
        let (from, tail) = log.text_from(&u, 7);
        assert_eq!((from, tail.lines().count()), (7, 2));
        assert_eq!(log.text_from(&u, 100).0, 0);
    }
}
