//! The reference database: digest → (package, version, path), and the update feed, in one SQLite
//! file of its own (`cairn refdb build` writes it; the level computation reads it).
//!
//! Files are keyed by `(alg, digest)` so a lookup is one index probe. Adding a package version that
//! is already there replaces its files, so building again from the same `.deb` is idempotent.
//! Feeds merge as [`cairn_core::levels::Feed`] merges (newest of both, union of security versions),
//! so importing the same index twice, or the security and updates suites in either order, agree.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use cairn_core::levels::{DebVersion, Feed, PackageFile, PackageUpdates, ReferenceDigests, UpdateFeed};
use cairn_core::{Digest, HashAlg};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::StoreError;
use crate::migrate::{open_migrated, REFDB_MIGRATIONS};

/// A package version whose files are added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefPackage {
    /// Package name (`unknown` for files no package owns).
    pub name: String,
    /// Version as the package states it.
    pub version: String,
    /// Architecture (empty when unknown).
    pub arch: String,
    /// Where it was read from (a `.deb` file name, a root file system).
    pub origin: String,
}

/// One installed file and its digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefFile {
    /// Installed path, with a leading `/`.
    pub path: String,
    /// Its content's digests (one per algorithm).
    pub digests: Vec<Digest>,
}

/// Counts of what a reference database holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefDbStats {
    /// Package versions.
    pub packages: u64,
    /// (alg, digest, package, path) rows.
    pub digests: u64,
    /// Packages the feed mentions.
    pub feed_packages: u64,
}

/// A reference database file.
#[derive(Debug)]
pub struct RefDb {
    conn: Mutex<Connection>,
}


impl RefDb {
    /// Opens (creating if needed) the reference database at `path`.
    pub fn open(path: &Path) -> Result<RefDb, StoreError> {
        let conn = open_migrated(path, REFDB_MIGRATIONS)?;
        Ok(RefDb { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Adds a package version and its files in one transaction, replacing the files of the same
    /// (name, version, arch) if it was added before.
    pub fn add_package(&self, pkg: &RefPackage, files: &[RefFile]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(StoreError::query("starting a package"))?;
        tx.execute(
            "DELETE FROM ref_packages WHERE name = ?1 AND version = ?2 AND arch = ?3",
            params![pkg.name, pkg.version, pkg.arch],
        )
        .map_err(StoreError::query("replacing a package"))?;
        tx.execute(
            "INSERT INTO ref_packages (name, version, arch, origin) VALUES (?1, ?2, ?3, ?4)",
            params![pkg.name, pkg.version, pkg.arch, pkg.origin],
        )
        .map_err(StoreError::query("inserting a package"))?;
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO ref_files (alg, digest, package_id, path) VALUES (?1, ?2, ?3, ?4)")
                .map_err(StoreError::query("preparing file inserts"))?;
            for f in files {
                for d in &f.digests {
                    ins.execute(params![d.alg().name(), d.as_bytes(), id, f.path])
                        .map_err(StoreError::query("inserting a file digest"))?;
                }
            }
        }
        tx.commit().map_err(StoreError::query("committing a package"))
    }

    /// Every package file with this digest (empty when unknown).
    pub fn lookup(&self, digest: &Digest) -> Result<Vec<PackageFile>, StoreError> {
        let conn = self.conn()?;
        let mut q = conn
            .prepare_cached(
                "SELECT p.name, p.version, f.path FROM ref_files f JOIN ref_packages p ON p.id = f.package_id
                 WHERE f.alg = ?1 AND f.digest = ?2 ORDER BY p.name, p.version, f.path",
            )
            .map_err(StoreError::query("preparing a lookup"))?;
        let rows = q
            .query_map(params![digest.alg().name(), digest.as_bytes()], |r| {
                Ok(PackageFile { package: r.get(0)?, version: r.get(1)?, path: r.get(2)? })
            })
            .map_err(StoreError::query("looking up a digest"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::query("reading a lookup"))
    }

    /// SQLite's `data_version`: changes whenever another connection (e.g. `cairn refdb build` or
    /// `feed import` in another process) commits to the file, so a long-lived reader knows when its
    /// cached answers are stale.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn()?.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(StoreError::query("reading data_version"))
    }

    /// The algorithms files were hashed with.
    pub fn algorithms(&self) -> Result<Vec<HashAlg>, StoreError> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        for alg in HashAlg::ALL {
            let found: Option<i64> = conn
                .query_row("SELECT 1 FROM ref_files WHERE alg = ?1 LIMIT 1", [alg.name()], |r| r.get(0))
                .optional()
                .map_err(StoreError::query("listing algorithms"))?;
            if found.is_some() {
                out.push(alg);
            }
        }
        Ok(out)
    }

    /// Merges a feed into the stored one; returns how many packages it named.
    pub fn import_feed(&self, feed: &Feed) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(StoreError::query("starting a feed import"))?;
        for (name, u) in &feed.packages {
            let stored = feed_entry(&tx, name)?;
            let mut merged = stored.unwrap_or_default();
            merged.merge(u.clone());
            tx.execute(
                "INSERT INTO feed_packages (package, newest) VALUES (?1, ?2)
                 ON CONFLICT(package) DO UPDATE SET newest = excluded.newest",
                params![name, merged.newest.as_ref().map(ToString::to_string)],
            )
            .map_err(StoreError::query("writing a feed entry"))?;
            for s in &u.security {
                tx.execute("INSERT OR IGNORE INTO feed_security (package, version) VALUES (?1, ?2)", params![name, s.as_str()])
                    .map_err(StoreError::query("writing a security version"))?;
            }
        }
        tx.commit().map_err(StoreError::query("committing a feed import"))?;
        Ok(feed.packages.len())
    }

    /// Forgets the stored feed (before importing a fresh one that should replace it).
    pub fn clear_feed(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute_batch("DELETE FROM feed_security; DELETE FROM feed_packages;")
            .map_err(StoreError::query("clearing the feed"))
    }

    /// What the stored feed says about `package`.
    pub fn feed_entry(&self, package: &str) -> Result<Option<PackageUpdates>, StoreError> {
        feed_entry(&*self.conn()?, package)
    }

    /// Counts.
    pub fn stats(&self) -> Result<RefDbStats, StoreError> {
        let conn = self.conn()?;
        let count = |sql: &str| -> Result<u64, StoreError> {
            let n: i64 = conn.query_row(sql, [], |r| r.get(0)).map_err(StoreError::query("counting"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(RefDbStats {
            packages: count("SELECT count(*) FROM ref_packages")?,
            digests: count("SELECT count(*) FROM ref_files")?,
            feed_packages: count("SELECT count(*) FROM feed_packages")?,
        })
    }
}

fn parse_version(package: &str, field: &str, v: &str) -> Result<DebVersion, StoreError> {
    DebVersion::parse(v).map_err(|e| StoreError::CorruptReference { what: format!("feed entry {package:?} {field}: {e}") })
}

fn feed_entry(conn: &Connection, package: &str) -> Result<Option<PackageUpdates>, StoreError> {
    let newest: Option<Option<String>> = conn
        .query_row("SELECT newest FROM feed_packages WHERE package = ?1", [package], |r| r.get(0))
        .optional()
        .map_err(StoreError::query("reading a feed entry"))?;
    let Some(newest) = newest else { return Ok(None) };
    let mut u = PackageUpdates::default();
    if let Some(n) = newest {
        u.offer_newest(parse_version(package, "newest", &n)?);
    }
    let mut q = conn
        .prepare_cached("SELECT version FROM feed_security WHERE package = ?1")
        .map_err(StoreError::query("preparing security versions"))?;
    let versions = q
        .query_map([package], |r| r.get::<_, String>(0))
        .map_err(StoreError::query("reading security versions"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::query("reading security versions"))?;
    for v in versions {
        u.add_security(parse_version(package, "security", &v)?);
    }
    Ok(Some(u))
}

impl ReferenceDigests for RefDb {
    type Error = StoreError;
    fn files(&self, digest: &Digest) -> Result<Vec<PackageFile>, StoreError> {
        self.lookup(digest)
    }
}

impl UpdateFeed for RefDb {
    type Error = StoreError;
    fn updates(&self, package: &str) -> Result<Option<PackageUpdates>, StoreError> {
        self.feed_entry(package)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cairn_core::levels::{compute_level, parse_json_feed, BootVerdict, IntegrityLevel, MeasuredDigest, MeasuredFile, Source};

    use super::*;

    fn pkg(name: &str, version: &str) -> RefPackage {
        RefPackage { name: name.into(), version: version.into(), arch: "amd64".into(), origin: format!("{name}.deb") }
    }

    fn file(path: &str, content: &[u8]) -> RefFile {
        RefFile { path: path.into(), digests: vec![HashAlg::Sha1.hash(content), HashAlg::Sha256.hash(content)] }
    }

    #[test]
    fn lookup_by_either_digest_and_replace_on_re_add() {
        let dir = tempfile::tempdir().unwrap();
        let db = RefDb::open(&dir.path().join("ref.sqlite")).unwrap();
        db.add_package(&pkg("sed", "4.9-1"), &[file("/usr/bin/sed", b"sed"), file("/usr/share/doc/x", b"doc")]).unwrap();
        db.add_package(&pkg("sed", "4.9-2"), &[file("/usr/share/doc/x", b"doc")]).unwrap();
        let hit = db.lookup(&HashAlg::Sha1.hash(b"sed")).unwrap();
        assert_eq!(hit, [PackageFile { package: "sed".into(), version: "4.9-1".into(), path: "/usr/bin/sed".into() }]);
        assert_eq!(db.lookup(&HashAlg::Sha256.hash(b"sed")).unwrap(), hit);
        assert_eq!(db.lookup(&HashAlg::Sha256.hash(b"doc")).unwrap().len(), 2);
        assert!(db.lookup(&HashAlg::Sm3_256.hash(b"sed")).unwrap().is_empty());
        // Re-adding a version replaces its files.
        db.add_package(&pkg("sed", "4.9-1"), &[file("/usr/bin/sed", b"sed")]).unwrap();
        assert_eq!(db.lookup(&HashAlg::Sha256.hash(b"doc")).unwrap().len(), 1);
        assert_eq!(db.stats().unwrap(), RefDbStats { packages: 2, digests: 4, feed_packages: 0 });
        assert_eq!(db.algorithms().unwrap(), [HashAlg::Sha1, HashAlg::Sha256]);
    }

    #[test]
    fn feeds_merge_and_drive_the_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.sqlite");
        let db = RefDb::open(&path).unwrap();
        db.add_package(&pkg("sed", "4.9-1"), &[file("/usr/bin/sed", b"sed")]).unwrap();
        db.import_feed(&parse_json_feed(br#"{"packages": {"sed": {"newest": "4.9-3"}}}"#).unwrap()).unwrap();
        let m = [MeasuredFile {
            digest: MeasuredDigest::Known(HashAlg::Sha256.hash(b"sed")),
            path: "/usr/bin/sed".into(),
            source: Source::Ima { entry: 1 },
        }];
        let level = |db: &RefDb| compute_level(&BootVerdict::Trusted, &m, db, db).unwrap().level;
        assert_eq!(level(&db), IntegrityLevel::ImaPkgNotSecurityUpdates);
        db.import_feed(&parse_json_feed(br#"{"packages": {"sed": {"security": ["4.9-2"]}}}"#).unwrap()).unwrap();
        drop(db);
        // Stored across a reopen, and merged: newest stays 4.9-3, 4.9-2 is a security version.
        let db = RefDb::open(&path).unwrap();
        let e = db.feed_entry("sed").unwrap().unwrap();
        assert_eq!(e.newest.unwrap().as_str(), "4.9-3");
        assert_eq!(e.security.len(), 1);
        assert_eq!(level(&db), IntegrityLevel::ImaPkgSecurityUpdates);
        db.clear_feed().unwrap();
        assert_eq!(level(&db), IntegrityLevel::ImaAllOk);
    }

    #[test]
    fn data_version_tells_a_reader_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.sqlite");
        let reader = RefDb::open(&path).unwrap();
        let before = reader.data_version().unwrap();
        assert_eq!(reader.data_version().unwrap(), before, "nothing changed");
        let writer = RefDb::open(&path).unwrap();
        writer.add_package(&pkg("sed", "4.9-1"), &[file("/usr/bin/sed", b"sed")]).unwrap();
        assert_ne!(reader.data_version().unwrap(), before, "a commit by another connection shows");
    }
}
