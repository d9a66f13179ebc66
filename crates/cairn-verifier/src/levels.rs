//! Integrity levels on every round: the files each node's quotes proved, looked up in the reference
//! database, give the node's level (`cairn_core::levels` decides; this module feeds it).
//!
//! Levels are computed only when the verifier has a reference database (`refdb` in its
//! configuration). Each node keeps a [`LevelTracker`]: the distinct (digest, path) pairs of the IMA
//! entries its passing rounds replayed — the quote proved them — plus the on-disk digests of its
//! hypervisor measurement list. A round then decides the boot verdict (any failure of the quote, the
//! PCR policy or measured boot is `boot_untrusted`) and the level follows from the files.
//!
//! Lookups go through one fleet-wide [`RefCache`]: every digest and package is read from SQLite once
//! and kept, so a round costs hash lookups, and a round that brought no new file and saw no change
//! of boot verdict or database reuses the node's last report. The cache watches SQLite's
//! `data_version` (at most once a second): when `cairn refdb build` or `cairn refdb feed import`
//! writes the file, every cached answer is dropped and every node's level is computed afresh at its
//! next round.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::attest::Failure;
use cairn_core::hvm::SeenFile;
use cairn_core::levels::{
    compute_level, ima_files, BootVerdict, LevelReport, MeasuredDigest, MeasuredFile, PackageFile, PackageUpdates,
    ReferenceDigests, Source, UpdateFeed,
};
use cairn_core::{Digest, HashAlg};
use cairn_store::{RefDb, StoreError};

/// How often the database's `data_version` is read.
const RECHECK: Duration = Duration::from_secs(1);

/// Reasons kept with a node's level (the rest are counted).
pub const MAX_REASONS: usize = 20;

/// The reference database and the answers read from it so far.
pub struct RefCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    db: RefDb,
    version: i64,
    checked: Instant,
    generation: u64,
    files: HashMap<Digest, Vec<PackageFile>>,
    feed: HashMap<String, Option<PackageUpdates>>,
}

impl std::fmt::Debug for RefCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefCache").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RefCache {
    /// Opens the reference database at `path` (it must exist: an empty new file would make every
    /// host `ima_digest_not_found`).
    pub fn open(path: &Path) -> Result<RefCache, String> {
        if !path.is_file() {
            return Err(format!(
                "reference database {} does not exist (build one with `cairn refdb build`)",
                path.display()
            ));
        }
        let db = RefDb::open(path).map_err(|e| format!("reference database {}: {e}", path.display()))?;
        let version = db.data_version().map_err(|e| e.to_string())?;
        Ok(RefCache {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                db,
                version,
                checked: Instant::now(),
                generation: 0,
                files: HashMap::new(),
                feed: HashMap::new(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever the database was written since the answers cached so far were read.
    pub fn generation(&self) -> u64 {
        let Ok(mut inner) = self.inner.lock() else { return u64::MAX };
        inner.refresh();
        inner.generation
    }

    /// The level of `files` under `boot` (blocking: may read SQLite).
    pub fn level(&self, boot: &BootVerdict, files: &[MeasuredFile]) -> Result<(LevelReport, u64), String> {
        let mut inner = self.inner.lock().map_err(|_| "reference database lock poisoned".to_owned())?;
        inner.refresh();
        let generation = inner.generation;
        let view = CachedView(std::cell::RefCell::new(&mut *inner));
        let report = compute_level(boot, files, &view, &view).map_err(|e| format!("reference database: {e}"))?;
        Ok((report, generation))
    }
}

impl Inner {
    fn refresh(&mut self) {
        if self.checked.elapsed() < RECHECK {
            return;
        }
        self.checked = Instant::now();
        match self.db.data_version() {
            Ok(v) if v != self.version => {
                self.version = v;
                self.generation += 1;
                self.files.clear();
                self.feed.clear();
                tracing::info!(generation = self.generation, "reference database changed; levels are computed afresh");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the reference database's data_version"),
        }
    }
}

/// The cache seen through the two lookup traits `compute_level` asks.
struct CachedView<'a>(std::cell::RefCell<&'a mut Inner>);

impl ReferenceDigests for CachedView<'_> {
    type Error = StoreError;
    fn files(&self, digest: &Digest) -> Result<Vec<PackageFile>, StoreError> {
        let mut inner = self.0.borrow_mut();
        if let Some(hit) = inner.files.get(digest) {
            return Ok(hit.clone());
        }
        let found = inner.db.lookup(digest)?;
        inner.files.insert(*digest, found.clone());
        Ok(found)
    }
}

impl UpdateFeed for CachedView<'_> {
    type Error = StoreError;
    fn updates(&self, package: &str) -> Result<Option<PackageUpdates>, StoreError> {
        let mut inner = self.0.borrow_mut();
        if let Some(hit) = inner.feed.get(package) {
            return Ok(hit.clone());
        }
        let found = inner.db.feed_entry(package)?;
        inner.feed.insert(package.to_owned(), found.clone());
        Ok(found)
    }
}

/// The boot verdict of a round's failures: the quote, the PCR policy or measured boot failing means
/// nothing the node reports can be trusted; runtime failures (IMA, hypervisor) leave boot trusted
/// (the node is failed all the same, and placement skips failed nodes).
pub fn boot_verdict(failures: &[Failure]) -> BootVerdict {
    let boot = failures.iter().find(|f| {
        !matches!(
            f,
            Failure::ImaListMissing
                | Failure::ImaPositionMismatch { .. }
                | Failure::ImaList(_)
                | Failure::ImaEntry(_)
                | Failure::ImaPcrMismatch { .. }
                | Failure::Hvm(_)
                | Failure::VmBatch(_)
                | Failure::VmEvidence { .. }
        )
    });
    match boot {
        Some(f) => BootVerdict::Untrusted { reason: f.to_string() },
        None => BootVerdict::Trusted,
    }
}

/// What the verifier keeps per node for its level.
#[derive(Debug, Default)]
pub struct LevelTracker {
    /// IMA entries whose files are held (the replay position they came from).
    ima_next: u64,
    ima: Vec<MeasuredFile>,
    seen: HashSet<(MeasuredDigest, String)>,
    hvm: Vec<MeasuredFile>,
    hvm_count: usize,
    /// Inputs of the last report: whether any changed since.
    last: Option<(BootVerdict, u64, LevelReport)>,
    dirty: bool,
}

impl LevelTracker {
    /// Adds the files of IMA entries `[start, end)` from `lines` (the ASCII list the agent sent,
    /// starting at entry `start`), skipping entries already held.
    pub fn add_ima(&mut self, lines: &[u8], start: u64, end: u64) {
        if start != self.ima_next {
            // A reboot or a replay started over: the files proved before are not this boot's.
            self.reset_ima();
            if start > 0 {
                return;
            }
        }
        if end <= self.ima_next {
            return;
        }
        let entries = match cairn_core::ima::parse(lines) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "a judged IMA list did not parse again for levels");
                return;
            }
        };
        let skip = usize::try_from(self.ima_next - start).unwrap_or(usize::MAX);
        let take = usize::try_from(end - self.ima_next).unwrap_or(0);
        let slice = entries.get(skip..).unwrap_or(&[]);
        let slice = slice.get(..take.min(slice.len())).unwrap_or(&[]);
        for f in ima_files(slice, self.ima_next) {
            if self.seen.insert((f.digest.clone(), f.path.clone())) {
                self.ima.push(f);
                self.dirty = true;
            }
        }
        self.ima_next = end;
    }

    /// Forgets the IMA files (the node's replay starts over).
    pub fn reset_ima(&mut self) {
        self.ima_next = 0;
        self.ima.clear();
        self.seen.clear();
        self.dirty = true;
    }

    /// Takes the hypervisor list's on-disk digests (the verifier's hvm tracker accumulates them).
    pub fn set_hvm(&mut self, files: &std::collections::BTreeSet<SeenFile>) {
        if files.len() == self.hvm_count {
            return;
        }
        self.hvm_count = files.len();
        self.hvm = files
            .iter()
            .map(|f| MeasuredFile { digest: digest_of_key(&f.digest.0), path: f.path.clone(), source: Source::Hypervisor })
            .collect();
        self.dirty = true;
    }

    /// The node's level now: the last report when nothing it was computed from changed.
    pub async fn level(&mut self, cache: &Arc<RefCache>, boot: BootVerdict) -> Option<LevelReport> {
        let generation = cache.generation();
        if let Some((b, g, report)) = &self.last {
            if !self.dirty && *b == boot && *g == generation {
                return Some(report.clone());
            }
        }
        let mut files = Vec::with_capacity(self.ima.len() + self.hvm.len());
        files.extend(self.ima.iter().cloned());
        files.extend(self.hvm.iter().cloned());
        let (c, b) = (cache.clone(), boot.clone());
        let computed = tokio::task::spawn_blocking(move || c.level(&b, &files)).await;
        match computed {
            Ok(Ok((report, generation))) => {
                self.dirty = false;
                self.last = Some((boot, generation, report.clone()));
                Some(report)
            }
            Ok(Err(why)) => {
                tracing::warn!(reason = %why, "integrity level not computed this round");
                self.last.as_ref().map(|l| l.2.clone())
            }
            Err(e) => {
                tracing::warn!(error = %e, "integrity level task failed");
                None
            }
        }
    }
}

/// `alg:hex` (the hvm list's key) back to a digest; an algorithm Cairn does not compute stays as text.
fn digest_of_key(key: &str) -> MeasuredDigest {
    let (alg, hex) = key.split_once(':').unwrap_or(("", key));
    HashAlg::from_name(alg)
        .and_then(|a| Digest::from_hex(a, hex).ok())
        .map_or_else(|| MeasuredDigest::Unsupported { algo: alg.to_owned(), hex: hex.to_owned() }, MeasuredDigest::Known)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(path: &str, content: &[u8]) -> String {
        let d = HashAlg::Sha256.hash(content);
        let digest = cairn_core::ima::FileDigest::new(b"sha256", d.as_bytes(), "d-ng").unwrap();
        let mut data = Vec::new();
        assert!(cairn_core::ima::Template::ImaNg { digest, path: path.as_bytes() }.encode(&mut data));
        format!("10 {} ima-ng sha256:{} {path}\n", HashAlg::Sha1.hash(&data).to_hex(), d.to_hex())
    }

    #[test]
    fn files_accumulate_once_per_digest_and_path_and_restart_with_the_list() {
        let mut t = LevelTracker::default();
        let first = format!("{}{}", line("/usr/bin/a", b"a"), line("/usr/bin/b", b"b"));
        t.add_ima(first.as_bytes(), 0, 2);
        assert_eq!(t.ima.len(), 2);
        // The next round sends entries from 2 on: a repeat of a is not a new file; c is.
        let next = format!("{}{}", line("/usr/bin/a", b"a"), line("/usr/bin/c", b"c"));
        t.add_ima(next.as_bytes(), 2, 4);
        assert_eq!(t.ima.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["/usr/bin/a", "/usr/bin/b", "/usr/bin/c"]);
        assert_eq!(t.ima[2].source, Source::Ima { entry: 3 });
        // Only the prefix the quote covered counts.
        let more = format!("{}{}", line("/usr/bin/d", b"d"), line("/usr/bin/e", b"e"));
        t.add_ima(more.as_bytes(), 4, 5);
        assert_eq!(t.ima.len(), 4);
        assert_eq!(t.ima_next, 5);
        // The list restarted at 0 (a reboot): the old files go.
        t.add_ima(line("/usr/bin/z", b"z").as_bytes(), 0, 1);
        assert_eq!(t.ima.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["/usr/bin/z"]);
    }

    #[test]
    fn boot_failures_and_runtime_failures_are_told_apart() {
        assert_eq!(boot_verdict(&[]), BootVerdict::Trusted);
        assert_eq!(boot_verdict(&[Failure::ImaListMissing]), BootVerdict::Trusted);
        let b = boot_verdict(&[Failure::ImaListMissing, Failure::NkChanged]);
        assert!(matches!(b, BootVerdict::Untrusted { reason } if reason.contains("NK")));
    }

    #[test]
    fn hvm_keys_turn_back_into_digests() {
        let d = HashAlg::Sha256.hash(b"qemu");
        assert_eq!(digest_of_key(&format!("sha256:{}", d.to_hex())), MeasuredDigest::Known(d));
        assert!(matches!(digest_of_key("md5:00"), MeasuredDigest::Unsupported { .. }));
    }
}
