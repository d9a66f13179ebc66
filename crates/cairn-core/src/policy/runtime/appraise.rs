//! Appraising a measurement list against a runtime policy and a quoted PCR 10, in one pass.
//!
//! The rules follow Keylime's verifier (`process_measurement_list`), entry by entry:
//! an entry for another PCR fails; a violation entry is skipped (or fails, if configured); the
//! logged template hash must equal `ima.log_hash_alg` over the template data (else the fields were
//! altered); `ima`/`ima-ng` paths need an allowed digest unless excluded; `ima-sig`/`ima-modsig`
//! entries with a signature pass when it verifies with a tenant or learned key, and otherwise fall
//! back to the digest list; `ima-buf` entries carrying a key pass by the `keyrings` digests and
//! teach that key to the keyring, other buffers go by the `ima-buf` digests. Without a policy only
//! the structural checks and the PCR replay apply. Every failing entry is reported.

use std::collections::BTreeSet;
use std::fmt;

use crate::alg::{Digest, HashAlg};
use crate::ima::entry::{ImaEntry, Template};
use crate::ima::field::{Blob, FileDigest};
use crate::ima::log::{Entries, LogError};
use crate::ima::replay::{BankSet, Extension, ReplayConfig, ReplayState, Replayer, Step, IMA_PCR};
use crate::policy::runtime::digests::{DigestList, DigestMap};
use crate::policy::runtime::document::RuntimePolicy;
use crate::policy::runtime::keys::{Keyrings, PublicKey, SignatureError};

/// How to appraise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppraisalConfig {
    /// PCR every entry must name.
    pub pcr: u32,
    /// Fail on violation (ToMToU / open-writers) entries; Keylime's shipped default does not.
    pub fail_on_violations: bool,
    /// Appraise as a two-thread pipeline (one parses and hashes entries, the other judges them and
    /// runs the PCR extend chain), for inputs of at least [`PARALLEL_MIN_BYTES`] (a whole log at first contact; a
    /// verifier's incremental rounds stay on one thread). The outcome is the same either way.
    pub two_threads: bool,
}

impl Default for AppraisalConfig {
    fn default() -> Self {
        AppraisalConfig { pcr: IMA_PCR, fail_on_violations: false, two_threads: false }
    }
}

/// What the verifier keeps between rounds: the replay position and the keys learned so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppraisalState {
    /// Replay position and running PCR values.
    pub replay: ReplayState,
    /// Keys learned from `ima-buf` key entries, by keyring.
    pub learned: Keyrings,
}

impl AppraisalState {
    /// The state before the first entry, replaying `banks`.
    pub fn new(banks: BankSet) -> AppraisalState {
        AppraisalState { replay: ReplayState::new(banks), learned: Keyrings::default() }
    }
}

/// Why an entry failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The path (or keyring / buffer name) is not in the policy.
    NotInPolicy,
    /// The path is listed, but not with this digest.
    DigestMismatch {
        /// Digests the policy allows (hex).
        expected: Vec<String>,
        /// Digest measured (hex).
        actual: String,
    },
    /// A signature was present and did not verify, and no digest list could vouch instead.
    BadSignature(SignatureError),
    /// The entry names another PCR.
    WrongPcr {
        /// The PCR it names.
        pcr: u32,
    },
    /// The logged template hash does not match the entry's fields.
    TemplateHashMismatch {
        /// Template hash as logged (hex).
        logged: String,
        /// Algorithm it was checked with.
        alg: HashAlg,
    },
    /// A violation entry, with violations configured to fail.
    Violation,
    /// A template Cairn cannot judge.
    UnknownTemplate,
    /// An `ima-buf` digest is not the hash of its buffer.
    BufferDigestMismatch,
}

impl FailureReason {
    /// The failure event id Keylime gives the same failure.
    pub fn keylime_event_id(&self) -> &'static str {
        match self {
            FailureReason::NotInPolicy => "ima.validation.ima-ng.not_in_allowlist",
            FailureReason::DigestMismatch { .. } => "ima.validation.ima-ng.runtime_policy_hash",
            FailureReason::BadSignature(_) => "ima.validator.ima-sig.invalid_signature",
            FailureReason::WrongPcr { .. } => "ima.validation.ima_pcr",
            FailureReason::TemplateHashMismatch { .. } => "ima.validation.ima_hash",
            FailureReason::Violation => "ima.validation.tomtou",
            FailureReason::UnknownTemplate => "ima.parser.entry",
            FailureReason::BufferDigestMismatch => "ima.validation.ima-buf.buffer_digest",
        }
    }
}

/// One failing entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFailure {
    /// Index of the entry in the whole log.
    pub entry: u64,
    /// Template name.
    pub template: String,
    /// Path, or keyring / buffer name.
    pub path: String,
    /// Why it failed.
    pub reason: FailureReason,
}

impl fmt::Display for EntryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} ({} {:?}): ", self.entry, self.template, self.path)?;
        match &self.reason {
            FailureReason::NotInPolicy => write!(f, "not in the policy"),
            FailureReason::DigestMismatch { expected, actual } => {
                write!(f, "digest {actual} is not one of [{}]", expected.join(", "))
            }
            FailureReason::BadSignature(e) => write!(f, "bad signature: {e}"),
            FailureReason::WrongPcr { pcr } => write!(f, "extends PCR {pcr}"),
            FailureReason::TemplateHashMismatch { logged, alg } => {
                write!(f, "logged template hash {logged} is not the {alg} of the entry's fields")
            }
            FailureReason::Violation => write!(f, "measurement violation"),
            FailureReason::UnknownTemplate => write!(f, "unknown template"),
            FailureReason::BufferDigestMismatch => write!(f, "buffer digest does not match the buffer"),
        }
    }
}

/// The PCR 10 check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcrOutcome {
    /// No quoted value was given.
    NotChecked,
    /// The first `entries` entries of the log (counting from the start of the whole log)
    /// replay to the quoted value.
    Matched {
        /// Length of the matching prefix.
        entries: u64,
    },
    /// No prefix replays to the quoted value.
    NoPrefixMatches {
        /// The quoted value.
        quoted: Digest,
        /// The bank's value after the whole input (`None` if the bank could not be replayed).
        computed: Option<Digest>,
    },
}

/// Result of an appraisal.
#[derive(Clone, Debug)]
pub struct Appraisal {
    /// Entries read from this input.
    pub entries: u64,
    /// Every failing entry, in log order.
    pub failures: Vec<EntryFailure>,
    /// The PCR check.
    pub pcr: PcrOutcome,
    /// Replay state after the whole input.
    pub end: ReplayState,
    /// Where the next round resumes: at the matched prefix when a quote was checked, else the end.
    pub next: AppraisalState,
}

impl Appraisal {
    /// True when no entry failed and the PCR (if checked) matched.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && !matches!(self.pcr, PcrOutcome::NoPrefixMatches { .. })
    }

    /// Keylime failure event ids of all failures.
    pub fn keylime_event_ids(&self) -> BTreeSet<&'static str> {
        let mut ids: BTreeSet<_> = self.failures.iter().map(|f| f.reason.keylime_event_id()).collect();
        if matches!(self.pcr, PcrOutcome::NoPrefixMatches { .. }) {
            ids.insert("ima.pcr_mismatch");
        }
        ids
    }
}

/// Appraises `input` (the entries after `state`) against `policy` and, if given, the quoted PCR
/// value (its algorithm picks the bank, which `state` must track).
pub fn appraise(
    policy: Option<&RuntimePolicy>,
    state: &AppraisalState,
    input: &[u8],
    quoted: Option<&Digest>,
    config: &AppraisalConfig,
) -> Result<Appraisal, LogError> {
    if config.two_threads && input.len() >= PARALLEL_MIN_BYTES {
        return appraise_two_threads(policy, state, input, quoted, config);
    }
    let mut replayer = replayer(policy, config);
    let mut replay = state.replay;
    let mut judge = Judge { policy, learned: state.learned.clone(), config, failures: Vec::new() };
    let is_match = |r: &ReplayState| quoted.is_some_and(|q| r.holds(q));
    let mut matched = is_match(&replay).then(|| AppraisalState { replay, learned: judge.learned.clone() });
    let mut entries = 0;
    let mut list = Entries::new(input, replay.next_entry());
    loop {
        // Borrowed where it was parsed: an entry is a few hundred bytes.
        let item = list.next();
        let entry = match item {
            Some(Ok(ref e)) => e,
            Some(Err(e)) => return Err(e),
            None => break,
        };
        let index = replay.next_entry();
        // Looked up before the replay hashes the entry, so that fetching the policy record from
        // memory overlaps the hashing instead of following it.
        let listed = judge.look_up_file(entry);
        let step = replayer.extend(&mut replay, entry);
        entries += 1;
        judge.entry(index, entry, step, listed);
        if matched.is_none() && is_match(&replay) {
            matched = Some(AppraisalState { replay, learned: judge.learned.clone() });
        }
    }
    let pcr = pcr_outcome(quoted, matched.as_ref(), &replay);
    let next = matched.unwrap_or(AppraisalState { replay, learned: judge.learned });
    Ok(Appraisal { entries, failures: judge.failures, pcr, end: replay, next })
}

/// The replayer an appraisal uses: the configured PCR, template hashes checked with the policy's
/// `ima.log_hash_alg` (SHA-1 without a policy).
fn replayer(policy: Option<&RuntimePolicy>, config: &AppraisalConfig) -> Replayer {
    let log_hash_alg = policy.map_or(HashAlg::Sha1, |p| p.log_hash_alg);
    Replayer::new(ReplayConfig { pcr: config.pcr, template_hash_alg: Some(log_hash_alg) })
}

/// The PCR outcome of a pass that matched the quote at `matched` (if it did) and ended at `end`.
fn pcr_outcome(quoted: Option<&Digest>, matched: Option<&AppraisalState>, end: &ReplayState) -> PcrOutcome {
    match (quoted, matched) {
        (None, _) => PcrOutcome::NotChecked,
        (Some(_), Some(m)) => PcrOutcome::Matched { entries: m.replay.next_entry() },
        (Some(q), None) => PcrOutcome::NoPrefixMatches { quoted: *q, computed: end.value(q.alg()) },
    }
}

/// Inputs at least this long are appraised on two threads when [`AppraisalConfig::two_threads`] asks.
pub const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// Prepared entries handed to the extend thread at a time.
const CHUNK: usize = 2048;

/// [`appraise`] as a two-stage pipeline: this thread parses each entry and rebuilds and hashes its
/// template data ([`Replayer::prepare`]); the second thread takes the prepared entries in order, looks
/// each up in the policy, judges it, applies its extension to the running PCR values
/// ([`Replayer::apply`]) and notes the first prefix that reaches the quote — the one-thread loop's
/// steps in the one-thread order, so learned keys, failures and the state kept are the same.
fn appraise_two_threads(
    policy: Option<&RuntimePolicy>,
    state: &AppraisalState,
    input: &[u8],
    quoted: Option<&Digest>,
    config: &AppraisalConfig,
) -> Result<Appraisal, LogError> {
    let mut replayer = replayer(policy, config);
    let start = state.replay;
    let banks = start.tracked();
    let learned = state.learned.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(ImaEntry<'_>, Extension, Step)>>(4);
    std::thread::scope(|scope| {
        let judging = scope.spawn(move || {
            let mut judge = Judge { policy, learned, config, failures: Vec::new() };
            let mut replay = start;
            let is_match = |r: &ReplayState| quoted.is_some_and(|q| r.holds(q));
            let mut matched = is_match(&replay).then(|| AppraisalState { replay, learned: judge.learned.clone() });
            let mut entries = 0u64;
            for chunk in rx {
                for (entry, ext, step) in &chunk {
                    let index = replay.next_entry();
                    let listed = judge.look_up_file(entry);
                    Replayer::apply(&mut replay, ext);
                    entries += 1;
                    judge.entry(index, entry, *step, listed);
                    if matched.is_none() && is_match(&replay) {
                        matched = Some(AppraisalState { replay, learned: judge.learned.clone() });
                    }
                }
            }
            (replay, matched, judge, entries)
        });
        let mut list = Entries::new(input, start.next_entry());
        let mut chunk = Vec::with_capacity(CHUNK);
        let parsed = loop {
            let entry = match list.next() {
                Some(Ok(e)) => e,
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            };
            let (ext, step) = replayer.prepare(banks, &entry);
            chunk.push((entry, ext, step));
            if chunk.len() == CHUNK && tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err() {
                break Ok(());
            }
        };
        if !chunk.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        let (end, matched, judge, entries) = match judging.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        parsed?;
        let pcr = pcr_outcome(quoted, matched.as_ref(), &end);
        let next = matched.unwrap_or(AppraisalState { replay: end, learned: judge.learned });
        Ok(Appraisal { entries, failures: judge.failures, pcr, end, next })
    })
}

struct Judge<'p, 'c> {
    policy: Option<&'p RuntimePolicy>,
    learned: Keyrings,
    config: &'c AppraisalConfig,
    failures: Vec<EntryFailure>,
}

/// A file's entry in the policy's digest list, looked up ahead of judging it.
#[derive(Clone, Copy)]
struct Listed<'p>(Option<DigestList<'p>>);

impl<'p> Judge<'p, '_> {
    /// The policy's digests for a file template's path (`None`: no policy, or not a file).
    fn look_up_file(&self, e: &ImaEntry<'_>) -> Option<Listed<'p>> {
        let policy = self.policy?;
        match &e.template {
            Template::Ima { path, .. }
            | Template::ImaNg { path, .. }
            | Template::ImaSig { path, .. }
            | Template::ImaModsig { path, .. } => Some(Listed(policy.digests.get(path))),
            Template::ImaBuf { .. } | Template::Unknown => None,
        }
    }

    fn entry(&mut self, index: u64, e: &ImaEntry<'_>, step: Step, listed: Option<Listed<'p>>) {
        if e.pcr != self.config.pcr {
            self.fail(index, e, FailureReason::WrongPcr { pcr: e.pcr });
        }
        if e.template_hash.is_violation() {
            if self.config.fail_on_violations {
                self.fail(index, e, FailureReason::Violation);
            }
            return;
        }
        if step.template_hash_ok == Some(false) {
            let alg = self.policy.map_or(HashAlg::Sha1, |p| p.log_hash_alg);
            self.fail(index, e, FailureReason::TemplateHashMismatch { logged: e.template_hash.to_hex(), alg });
            return;
        }
        let verdict = match &e.template {
            Template::Ima { digest, path } | Template::ImaNg { digest, path } => {
                self.by_digest(Section::Files, path, digest, listed)
            }
            Template::ImaSig { digest, path, sig } | Template::ImaModsig { digest, path, sig, .. } => {
                self.by_signature(path, digest, sig, listed)
            }
            Template::ImaBuf { digest, name, buf } => self.buffer(name, digest, buf),
            Template::Unknown => Some(FailureReason::UnknownTemplate),
        };
        if let Some(reason) = verdict {
            self.fail(index, e, reason);
        }
    }

    fn fail(&mut self, entry: u64, e: &ImaEntry<'_>, reason: FailureReason) {
        self.failures.push(EntryFailure {
            entry,
            template: String::from_utf8_lossy(e.template_name).into_owned(),
            path: e.path_lossy(),
            reason,
        });
    }

    fn by_digest(
        &self,
        section: Section,
        path: &[u8],
        digest: &FileDigest<'_>,
        listed: Option<Listed<'p>>,
    ) -> Option<FailureReason> {
        let policy = self.policy?;
        if policy.excludes.matches(path) {
            return None;
        }
        let map: &DigestMap = match section {
            Section::Files => &policy.digests,
            Section::Keyrings => &policy.keyrings,
            Section::Buffers => &policy.ima_buf,
        };
        let found = match (section, listed) {
            (Section::Files, Some(Listed(found))) => found,
            _ => map.get(path),
        };
        let allowed = match found {
            None => return Some(FailureReason::NotInPolicy),
            Some(list) => list,
        };
        if allowed.contains(digest.as_bytes()) {
            None
        } else {
            Some(FailureReason::DigestMismatch {
                expected: allowed.iter().map(|a| a.to_hex()).collect(),
                actual: digest.to_hex(),
            })
        }
    }

    fn by_signature(
        &self,
        path: &[u8],
        digest: &FileDigest<'_>,
        sig: &Blob<'_>,
        listed: Option<Listed<'p>>,
    ) -> Option<FailureReason> {
        let tenant = self.policy.map(|p| &p.verification_keys);
        let have_keys = tenant.is_some_and(|k| !k.is_empty()) || !self.learned.is_empty();
        let mut sig_error = None;
        if !sig.is_empty() && have_keys {
            if self.policy.is_some_and(|p| p.excludes.matches(path)) {
                return None;
            }
            let bytes = sig.to_vec();
            let result = match tenant.map(|k| k.verify(&bytes, digest)) {
                Some(Ok(())) => Ok(()),
                Some(Err(SignatureError::UnknownKey(_))) | None => self.learned.verify(&bytes, digest),
                Some(Err(e)) => Err(e),
            };
            match result {
                Ok(()) => return None,
                Err(e) => sig_error = Some(e),
            }
        }
        if self.policy.is_some() {
            return self.by_digest(Section::Files, path, digest, listed);
        }
        sig_error.map(FailureReason::BadSignature)
    }

    fn buffer(&mut self, name: &[u8], digest: &FileDigest<'_>, buf: &Blob<'_>) -> Option<FailureReason> {
        let bytes = buf.to_vec();
        let hash_alg = std::str::from_utf8(digest.algo_name()).ok().and_then(HashAlg::from_name);
        if hash_alg.is_some_and(|h| h.hash(&bytes).as_bytes() != digest.as_bytes()) {
            return Some(FailureReason::BufferDigestMismatch);
        }
        let Some(key) = PublicKey::from_der_any(&bytes) else {
            return self.by_digest(Section::Buffers, name, digest, None);
        };
        if self.policy.is_some_and(|p| p.ignores_keyring(name)) {
            return None;
        }
        let verdict = self.by_digest(Section::Keyrings, name, digest, None);
        if verdict.is_none() {
            self.learned.add(&String::from_utf8_lossy(name), key);
        }
        verdict
    }
}

#[derive(Clone, Copy)]
enum Section {
    Files,
    Keyrings,
    Buffers,
}
