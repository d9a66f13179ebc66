//! The verifier's judgement of a hypervisor measurement list in one round.
//!
//! Given the replay state kept from the last round, the list from that entry on, and the PCR value a
//! verified quote proved, [`judge`]:
//! 1. checks the list starts where the state stands;
//! 2. parses and replays it (each logged entry hash must be the hash of its fields, each entry must
//!    name the configured PCR);
//! 3. fails every entry whose in-memory digest differs from its on-disk digest, naming the process,
//!    the mapping and both digests — whether or not the quote covers it yet, since the agent itself
//!    reports the change;
//! 4. requires a prefix of the list to replay to the quoted value.
//!
//! The next state is the matched prefix, and only when nothing failed, so failing entries are judged
//! again next round. [`HvmJudgement::files`] lists the (file, whole-file digest) pairs of the
//! entries the quote proved this round, for lookups in a reference database.

use thiserror::Error;

use crate::alg::Digest;
use crate::pcr::PcrIndex;

use super::entry::{MapRange, Pid};
use super::list::HvmError;
use super::replay::{Replayer, ReplayState};

/// One reason the hypervisor measurement step failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HvmFailure {
    /// The hvm PCR was asked for but the quote does not carry it in the replayed bank.
    #[error("hvm: PCR {pcr} is not in the quote")]
    PcrNotQuoted {
        /// The PCR.
        pcr: PcrIndex,
    },
    /// The agent uses another PCR than the verifier was told to check.
    #[error("hvm: the agent extends PCR {agent}, but this node's hvm PCR is {expected}")]
    PcrConfig {
        /// The PCR configured at the verifier.
        expected: PcrIndex,
        /// The PCR the agent reported.
        agent: u8,
    },
    /// The list does not start where the verifier's replay stands.
    #[error("hvm: expected the list from entry {expected}, got it from {actual}")]
    PositionMismatch {
        /// Entry the replay resumes at.
        expected: u64,
        /// Entry the list starts at.
        actual: u64,
    },
    /// A line does not parse.
    #[error("{0}")]
    Malformed(HvmError),
    /// An entry names another PCR.
    #[error("hvm entry {entry}: extends PCR {pcr}, not PCR {expected}")]
    WrongPcr {
        /// The entry.
        entry: u64,
        /// Its PCR.
        pcr: PcrIndex,
        /// The configured PCR.
        expected: PcrIndex,
    },
    /// A logged entry hash is not the hash of its fields.
    #[error("hvm entry {entry}: logged entry hash {logged} is not the hash of its fields ({computed}): the list was altered")]
    EntryHash {
        /// The entry.
        entry: u64,
        /// Logged.
        logged: Digest,
        /// Computed.
        computed: Digest,
    },
    /// Code in memory differs from the file it was mapped from.
    #[error("{0}")]
    CodeModified(Box<ModifiedCode>),
    /// No prefix of the list replays to the quoted PCR.
    #[error("hvm: the list does not replay to the quoted PCR {pcr} {quoted} (whole list gives {computed})")]
    PcrMismatch {
        /// The PCR.
        pcr: PcrIndex,
        /// Its quoted value.
        quoted: Digest,
        /// The value after the whole list.
        computed: Digest,
    },
}

impl HvmFailure {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            HvmFailure::PcrNotQuoted { .. } => "hvm_pcr_not_quoted",
            HvmFailure::PcrConfig { .. } => "hvm_pcr_config",
            HvmFailure::PositionMismatch { .. } => "hvm_position_mismatch",
            HvmFailure::Malformed(_) => "hvm_list_malformed",
            HvmFailure::WrongPcr { .. } => "hvm_wrong_pcr",
            HvmFailure::EntryHash { .. } => "hvm_entry_hash",
            HvmFailure::CodeModified(_) => "hvm_code_modified",
            HvmFailure::PcrMismatch { .. } => "hvm_pcr_mismatch",
        }
    }
}

/// A mapping whose code in memory is not the file's.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "hvm entry {entry}: pid {pid} ({exe}) maps {file} at {range} (file offset {offset:#x}): \
     in memory {mem:?}, on disk {disk:?}"
)]
pub struct ModifiedCode {
    /// The entry.
    pub entry: u64,
    /// The process.
    pub pid: Pid,
    /// Its executable (escaped path).
    pub exe: String,
    /// The mapped file (escaped path).
    pub file: String,
    /// The mapping.
    pub range: MapRange,
    /// Its file offset.
    pub offset: u64,
    /// In-memory digest.
    pub mem: Digest,
    /// On-disk digest.
    pub disk: Digest,
}

/// A file seen mapped executable, with its whole-file digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeenFile {
    /// The path, escaped as in the list ([`super::entry::unescape`] gives its bytes).
    pub path: String,
    /// The whole file's digest.
    pub digest: DigestKey,
}

/// A digest usable as a sort key (`alg:hex`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DigestKey(pub String);

impl DigestKey {
    /// The key of `d`.
    pub fn of(d: &Digest) -> DigestKey {
        DigestKey(format!("{}:{}", d.alg().name(), d.to_hex()))
    }
}

/// One round's input.
#[derive(Clone, Copy, Debug)]
pub struct HvmRound<'a> {
    /// The configured PCR.
    pub pcr: PcrIndex,
    /// The list from entry `from`.
    pub list: &'a [u8],
    /// The entry the list starts at.
    pub from: u64,
    /// The quoted value of `pcr` in the state's bank (from a verified quote).
    pub quoted: &'a Digest,
}

/// The outcome of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmJudgement {
    /// Every failure; empty means the step passed.
    pub failures: Vec<HvmFailure>,
    /// The state to resume from next round: the matched prefix when the step passed, else `None`
    /// (keep the old state).
    pub next: Option<ReplayState>,
    /// (file, whole-file digest) of the entries the quote proved this round, sorted, deduplicated.
    pub files: Vec<SeenFile>,
    /// Entries read this round.
    pub entries: u64,
}

/// Judges one round's list. See the module documentation.
pub fn judge(state: &ReplayState, round: &HvmRound<'_>) -> HvmJudgement {
    let mut out = HvmJudgement { failures: Vec::new(), next: None, files: Vec::new(), entries: 0 };
    if round.from != state.next_entry() {
        out.failures.push(HvmFailure::PositionMismatch { expected: state.next_entry(), actual: round.from });
        return out;
    }
    let replayer = Replayer::new(round.pcr);
    let mut end = *state;
    let matched = match replayer.replay_to_quote(&mut end, round.list, round.quoted) {
        Ok(m) => m,
        Err(e) => {
            out.failures.push(HvmFailure::Malformed(e));
            return out;
        }
    };
    out.entries = matched.entries;
    out.failures.extend(
        matched.wrong_pcr.iter().map(|w| HvmFailure::WrongPcr { entry: w.entry, pcr: w.pcr, expected: round.pcr }),
    );
    out.failures.extend(
        matched.hash_mismatches.iter().map(|h| HvmFailure::EntryHash { entry: h.entry, logged: h.logged, computed: h.computed }),
    );
    let proven = matched.matched.map_or(state.next_entry(), |m| m.next_entry());
    let mut files = std::collections::BTreeSet::new();
    // The list parsed once already; walking it again borrows the same bytes.
    let walk = Replayer::for_each(round.list, round.from, |index, e| {
        if e.mem != e.disk {
            out.failures.push(HvmFailure::CodeModified(Box::new(ModifiedCode {
                entry: index,
                pid: e.pid,
                exe: e.exe.as_str().to_owned(),
                file: e.file.as_str().to_owned(),
                range: e.range,
                offset: e.offset,
                mem: e.mem,
                disk: e.disk,
            })));
        }
        if index < proven {
            files.insert(SeenFile { path: e.file.as_str().to_owned(), digest: DigestKey::of(&e.file_digest) });
        }
    });
    if let Err(e) = walk {
        out.failures.push(HvmFailure::Malformed(e));
    }
    out.files = files.into_iter().collect();
    match matched.matched {
        Some(m) if out.failures.is_empty() => out.next = Some(m),
        Some(_) => {}
        None => out.failures.push(HvmFailure::PcrMismatch { pcr: round.pcr, quoted: *round.quoted, computed: matched.end.value() }),
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alg::HashAlg;
    use crate::hvm::entry::Measurement;

    fn m(pid: u32, tampered: bool) -> Measurement {
        let disk = HashAlg::Sha256.hash(&pid.to_be_bytes());
        Measurement {
            pid: Pid::new(pid).unwrap(),
            exe: b"/usr/bin/qemu-system-x86_64".to_vec(),
            file: b"/usr/bin/qemu-system-x86_64".to_vec(),
            range: MapRange::new(0x5555_0000_0000, 0x5555_0040_0000).unwrap(),
            offset: 0x2000,
            mem: if tampered { HashAlg::Sha256.hash(b"patched") } else { disk },
            disk,
            file_digest: HashAlg::Sha256.hash(b"qemu"),
        }
    }

    fn pcr() -> PcrIndex {
        PcrIndex::new(13).unwrap()
    }

    fn value_of(list: &str) -> Digest {
        let mut s = ReplayState::new(HashAlg::Sha256);
        Replayer::new(pcr()).replay(&mut s, list.as_bytes()).unwrap();
        s.value()
    }

    #[test]
    fn a_clean_list_passes_and_names_its_files() {
        let list = format!("{}{}", m(10, false).render(pcr()).line, m(11, false).render(pcr()).line);
        let quoted = value_of(&list);
        let start = ReplayState::new(HashAlg::Sha256);
        let j = judge(&start, &HvmRound { pcr: pcr(), list: list.as_bytes(), from: 0, quoted: &quoted });
        assert!(j.failures.is_empty(), "{:?}", j.failures);
        assert_eq!(j.next.unwrap().next_entry(), 2);
        assert_eq!(j.files.len(), 1);
        assert_eq!(j.files[0].path, "/usr/bin/qemu-system-x86_64");
        assert_eq!(j.files[0].digest, DigestKey::of(&HashAlg::Sha256.hash(b"qemu")));
    }

    #[test]
    fn modified_code_fails_naming_process_mapping_and_digests() {
        let first = m(10, false).render(pcr()).line;
        let list = format!("{first}{}", m(12, true).render(pcr()).line);
        let quoted = value_of(&list);
        let mut state = ReplayState::new(HashAlg::Sha256);
        Replayer::new(pcr()).replay(&mut state, first.as_bytes()).unwrap();
        let rest = &list[first.len()..];
        let j = judge(&state, &HvmRound { pcr: pcr(), list: rest.as_bytes(), from: 1, quoted: &quoted });
        assert_eq!(j.failures.len(), 1, "{:?}", j.failures);
        assert_eq!(j.failures[0].check(), "hvm_code_modified");
        let text = j.failures[0].to_string();
        for part in ["hvm entry 1", "pid 12", "/usr/bin/qemu-system-x86_64", "555500000000-555500400000", "offset 0x2000", "sha256:"] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        assert!(j.next.is_none());
    }

    #[test]
    fn wrong_position_unreplayable_list_and_garbage_are_failures() {
        let list = m(10, false).render(pcr()).line;
        let quoted = value_of(&list);
        let start = ReplayState::new(HashAlg::Sha256);
        let checks = |j: HvmJudgement| j.failures.iter().map(HvmFailure::check).collect::<Vec<_>>();
        let j = judge(&start, &HvmRound { pcr: pcr(), list: list.as_bytes(), from: 3, quoted: &quoted });
        assert_eq!(checks(j), ["hvm_position_mismatch"]);
        let other = HashAlg::Sha256.hash(b"other");
        let j = judge(&start, &HvmRound { pcr: pcr(), list: list.as_bytes(), from: 0, quoted: &other });
        assert_eq!(checks(j), ["hvm_pcr_mismatch"]);
        let j = judge(&start, &HvmRound { pcr: pcr(), list: b"13 zz\n", from: 0, quoted: &quoted });
        assert_eq!(checks(j), ["hvm_list_malformed"]);
        let forged = list.replacen(" 10 ", " 11 ", 1);
        let j = judge(&start, &HvmRound { pcr: pcr(), list: forged.as_bytes(), from: 0, quoted: &quoted });
        assert_eq!(checks(j), ["hvm_entry_hash", "hvm_pcr_mismatch"]);
    }
}
