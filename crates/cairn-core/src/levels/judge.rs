//! Computing a host's level from its boot verdict, its measured files, a reference database and an
//! update feed (the rule is stated in the [module docs](crate::levels)).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::alg::{Digest, HashAlg};
use crate::ima::{FileHashAlg, ImaEntry, Template};
use crate::levels::debversion::DebVersion;
use crate::levels::feed::{PackageUpdates, UpdateStatus};
use crate::levels::level::IntegrityLevel;

/// Whether the host booted as its policies expect (the quote verified, measured boot passed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootVerdict {
    /// Quote and boot checks passed.
    Trusted,
    /// They failed; the reason is shown as the level's cause.
    Untrusted {
        /// Why, in words.
        reason: String,
    },
}

/// Where a measured file was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "list")]
pub enum Source {
    /// An IMA measurement list entry.
    Ima {
        /// Its index in the list.
        entry: u64,
    },
    /// The hypervisor measurement list (on-disk digest of a measured executable).
    Hypervisor,
}

/// A digest as measured: one of the algorithms reference databases hold, or another one (such as
/// IMA's md5), which no reference database can know.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MeasuredDigest {
    /// A digest a reference database can hold.
    Known(Digest),
    /// An algorithm Cairn does not compute.
    Unsupported {
        /// The algorithm as logged.
        algo: String,
        /// The digest, hex.
        hex: String,
    },
}

impl MeasuredDigest {
    /// `alg:hex`, as IMA writes it.
    pub fn to_text(&self) -> String {
        match self {
            MeasuredDigest::Known(d) => format!("{}:{}", d.alg(), d.to_hex()),
            MeasuredDigest::Unsupported { algo, hex } => format!("{algo}:{hex}"),
        }
    }
}

/// One measured file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasuredFile {
    /// Its digest.
    pub digest: MeasuredDigest,
    /// Its path as reported.
    pub path: String,
    /// Which list reported it.
    pub source: Source,
}

/// The files an IMA list measured: every file-measurement entry, skipping violations (their
/// digest is zero: the runtime policy judges them), `boot_aggregate` (not a file), `ima-buf`
/// buffers (keys, command lines) and templates Cairn does not decode.
pub fn ima_files(entries: &[ImaEntry<'_>], first_index: u64) -> Vec<MeasuredFile> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (digest, path) = match &e.template {
            Template::Ima { digest, path }
            | Template::ImaNg { digest, path }
            | Template::ImaSig { digest, path, .. }
            | Template::ImaModsig { digest, path, .. } => (digest, *path),
            Template::ImaBuf { .. } | Template::Unknown => continue,
        };
        if e.template_hash.is_violation() || path == b"boot_aggregate" {
            continue;
        }
        let alg = match digest.alg() {
            Some(FileHashAlg::Sha1) => Some(HashAlg::Sha1),
            Some(FileHashAlg::Sha256) => Some(HashAlg::Sha256),
            Some(FileHashAlg::Sha384) => Some(HashAlg::Sha384),
            Some(FileHashAlg::Sha512) => Some(HashAlg::Sha512),
            Some(FileHashAlg::Sm3) => Some(HashAlg::Sm3_256),
            Some(FileHashAlg::Md5) | None => None,
        };
        let digest = match alg.and_then(|a| Digest::from_bytes(a, digest.as_bytes()).ok()) {
            Some(d) => MeasuredDigest::Known(d),
            None => MeasuredDigest::Unsupported {
                algo: String::from_utf8_lossy(digest.algo_name()).into_owned(),
                hex: digest.to_hex(),
            },
        };
        out.push(MeasuredFile {
            digest,
            path: String::from_utf8_lossy(path).into_owned(),
            source: Source::Ima { entry: first_index + i as u64 },
        });
    }
    out
}

/// A file a reference database knows: which package version installs it, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageFile {
    /// Package name.
    pub package: String,
    /// Package version as recorded (normally a Debian version).
    pub version: String,
    /// Installed path.
    pub path: String,
}

/// Digest → the package files with that content (a reference database).
pub trait ReferenceDigests {
    /// Why a lookup failed (not "unknown": that is an empty answer).
    type Error;
    /// Every package file with this digest; empty when unknown.
    fn files(&self, digest: &Digest) -> Result<Vec<PackageFile>, Self::Error>;
}

/// Package → what the update feed says about it.
pub trait UpdateFeed {
    /// Why a lookup failed.
    type Error;
    /// The feed's entry for `package`, if any.
    fn updates(&self, package: &str) -> Result<Option<PackageUpdates>, Self::Error>;
}

/// Why a host is below `ima_all_ok`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// The boot or quote failed.
    BootUntrusted {
        /// Why.
        reason: String,
    },
    /// A measured digest is in no reference database.
    DigestNotFound {
        /// `alg:hex`.
        digest: String,
        /// The path measured.
        path: String,
        /// Where it was reported.
        source: Source,
    },
    /// A package has a newer version with a security fix.
    SecurityUpdate {
        /// The package.
        package: String,
        /// The version the measured files belong to.
        installed: String,
        /// The oldest newer version with a security fix.
        fixed_in: String,
        /// The newest version.
        newest: String,
        /// Measured paths from it.
        paths: Vec<String>,
    },
    /// A package has a newer version, without a security fix.
    Update {
        /// The package.
        package: String,
        /// The version the measured files belong to.
        installed: String,
        /// The newest version.
        newest: String,
        /// Measured paths from it.
        paths: Vec<String>,
    },
}

impl Reason {
    /// The level this reason holds the host to.
    pub fn level(&self) -> IntegrityLevel {
        match self {
            Reason::BootUntrusted { .. } => IntegrityLevel::BootUntrusted,
            Reason::DigestNotFound { .. } => IntegrityLevel::ImaDigestNotFound,
            Reason::SecurityUpdate { .. } => IntegrityLevel::ImaPkgSecurityUpdates,
            Reason::Update { .. } => IntegrityLevel::ImaPkgNotSecurityUpdates,
        }
    }
}

/// A host's level and every reason it is below `ima_all_ok`, worst first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    /// The level.
    pub level: IntegrityLevel,
    /// Measured files judged.
    pub files: usize,
    /// Distinct digests looked up.
    pub digests: usize,
    /// Every reason, worst first (those with `level() == level` are the causes).
    pub reasons: Vec<Reason>,
}

impl LevelReport {
    /// The reasons that set the level.
    pub fn causes(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| r.level() == self.level)
    }
}

/// The verdict for one digest: the most favourable of its package files.
#[derive(Clone)]
enum DigestVerdict {
    Unknown,
    Package { package: String, installed: String, status: UpdateStatus },
}

fn rank(s: &UpdateStatus) -> u8 {
    match s {
        UpdateStatus::Security { .. } => 0,
        UpdateStatus::Update { .. } => 1,
        UpdateStatus::Current => 2,
    }
}

/// Computes a host's level. Lookups are made once per distinct digest and once per package.
pub fn compute_level<R, F>(
    boot: &BootVerdict,
    measured: &[MeasuredFile],
    refdb: &R,
    feed: &F,
) -> Result<LevelReport, R::Error>
where
    R: ReferenceDigests,
    F: UpdateFeed<Error = R::Error>,
{
    let mut reasons = Vec::new();
    if let BootVerdict::Untrusted { reason } = boot {
        reasons.push(Reason::BootUntrusted { reason: reason.clone() });
    }
    let mut verdicts: HashMap<&MeasuredDigest, DigestVerdict> = HashMap::new();
    let mut feeds: HashMap<String, Option<PackageUpdates>> = HashMap::new();
    // (package, installed) → (status, paths measured), sorted by package for stable reports.
    let mut packages: BTreeMap<(String, String), (UpdateStatus, Vec<String>)> = BTreeMap::new();
    let mut unknown = Vec::new();
    for m in measured {
        let verdict = match verdicts.get(&m.digest) {
            Some(v) => v.clone(),
            None => {
                let v = judge_digest(&m.digest, refdb, feed, &mut feeds)?;
                verdicts.insert(&m.digest, v.clone());
                v
            }
        };
        match verdict {
            DigestVerdict::Unknown => unknown.push(Reason::DigestNotFound {
                digest: m.digest.to_text(),
                path: m.path.clone(),
                source: m.source,
            }),
            DigestVerdict::Package { package, installed, status } => {
                let e = packages.entry((package, installed)).or_insert_with(|| (status, Vec::new()));
                if !e.1.contains(&m.path) {
                    e.1.push(m.path.clone());
                }
            }
        }
    }
    reasons.extend(unknown);
    let mut security = Vec::new();
    let mut updates = Vec::new();
    for ((package, installed), (status, paths)) in packages {
        match status {
            UpdateStatus::Security { fixed_in, newest } => security.push(Reason::SecurityUpdate {
                package,
                installed,
                fixed_in: fixed_in.to_string(),
                newest: newest.to_string(),
                paths,
            }),
            UpdateStatus::Update { newest } => {
                updates.push(Reason::Update { package, installed, newest: newest.to_string(), paths })
            }
            UpdateStatus::Current => {}
        }
    }
    reasons.extend(security);
    reasons.extend(updates);
    let level = reasons.first().map_or(IntegrityLevel::ImaAllOk, Reason::level);
    Ok(LevelReport { level, files: measured.len(), digests: verdicts.len(), reasons })
}

fn judge_digest<R, F>(
    digest: &MeasuredDigest,
    refdb: &R,
    feed: &F,
    feeds: &mut HashMap<String, Option<PackageUpdates>>,
) -> Result<DigestVerdict, R::Error>
where
    R: ReferenceDigests,
    F: UpdateFeed<Error = R::Error>,
{
    let MeasuredDigest::Known(d) = digest else { return Ok(DigestVerdict::Unknown) };
    let mut best: Option<DigestVerdict> = None;
    for f in refdb.files(d)? {
        let updates = match feeds.get(&f.package) {
            Some(u) => u.clone(),
            None => {
                let u = feed.updates(&f.package)?;
                feeds.insert(f.package.clone(), u.clone());
                u
            }
        };
        let installed = DebVersion::parse(&f.version).ok();
        let status = updates.map_or(UpdateStatus::Current, |u| u.status(installed.as_ref()));
        let better = match &best {
            Some(DigestVerdict::Package { status: s, .. }) => rank(&status) > rank(s),
            _ => true,
        };
        if better {
            best = Some(DigestVerdict::Package { package: f.package, installed: f.version, status });
        }
    }
    Ok(best.unwrap_or(DigestVerdict::Unknown))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::levels::feed::{parse_json, Feed};

    struct Mem {
        files: HashMap<Digest, Vec<PackageFile>>,
        feed: Feed,
    }

    impl ReferenceDigests for Mem {
        type Error = Infallible;
        fn files(&self, d: &Digest) -> Result<Vec<PackageFile>, Infallible> {
            Ok(self.files.get(d).cloned().unwrap_or_default())
        }
    }

    impl UpdateFeed for Mem {
        type Error = Infallible;
        fn updates(&self, p: &str) -> Result<Option<PackageUpdates>, Infallible> {
            Ok(self.feed.packages.get(p).cloned())
        }
    }

    fn content(name: &str) -> Digest {
        HashAlg::Sha256.hash(name.as_bytes())
    }

    fn db() -> Mem {
        let mut files = HashMap::new();
        for (pkg, ver, path) in [
            ("sed", "4.9-1", "/usr/bin/sed"),
            ("grep", "3.8-5", "/usr/bin/grep"),
            ("hostname", "3.23+nmu1", "/usr/bin/hostname"),
            ("hostname", "3.23+nmu1", "/usr/bin/hostname-copy"),
        ] {
            files.insert(content(path), vec![PackageFile { package: pkg.into(), version: ver.into(), path: path.into() }]);
        }
        // One file shipped unchanged by an old and a current version of a package.
        let shared = vec![
            PackageFile { package: "sed".into(), version: "4.9-1".into(), path: "/usr/share/sed/x".into() },
            PackageFile { package: "sed".into(), version: "4.9-2".into(), path: "/usr/share/sed/x".into() },
        ];
        files.insert(content("/usr/share/sed/x"), shared);
        let feed = parse_json(br#"{"packages": {"sed": {"newest": "4.9-2", "security": ["4.9-2"]}, "grep": {"newest": "3.8-6"}}}"#).unwrap();
        Mem { files, feed }
    }

    fn measured(paths: &[&str]) -> Vec<MeasuredFile> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| MeasuredFile {
                digest: MeasuredDigest::Known(content(p)),
                path: (*p).to_string(),
                source: Source::Ima { entry: i as u64 + 1 },
            })
            .collect()
    }

    fn level(boot: &BootVerdict, paths: &[&str]) -> LevelReport {
        let m = db();
        compute_level(boot, &measured(paths), &m, &m).unwrap()
    }

    #[test]
    fn each_rule_in_order() {
        let ok = BootVerdict::Trusted;
        assert_eq!(level(&ok, &["/usr/bin/hostname"]).level, IntegrityLevel::ImaAllOk);
        assert_eq!(level(&ok, &[]).level, IntegrityLevel::ImaAllOk);
        assert_eq!(level(&ok, &["/usr/bin/hostname", "/usr/bin/grep"]).level, IntegrityLevel::ImaPkgNotSecurityUpdates);
        assert_eq!(level(&ok, &["/usr/bin/grep", "/usr/bin/sed"]).level, IntegrityLevel::ImaPkgSecurityUpdates);
        let r = level(&ok, &["/usr/bin/sed", "/tmp/evil"]);
        assert_eq!(r.level, IntegrityLevel::ImaDigestNotFound);
        let bad = BootVerdict::Untrusted { reason: "quote signature".into() };
        let r2 = level(&bad, &["/usr/bin/hostname"]);
        assert_eq!(r2.level, IntegrityLevel::BootUntrusted);
        assert_eq!(r2.causes().count(), 1);
    }

    #[test]
    fn reasons_name_digest_path_and_package() {
        let r = level(&BootVerdict::Trusted, &["/usr/bin/sed", "/tmp/evil", "/usr/bin/grep", "/usr/bin/sed"]);
        assert_eq!(r.files, 4);
        assert_eq!(r.digests, 3);
        let causes: Vec<_> = r.causes().collect();
        assert_eq!(
            causes,
            [&Reason::DigestNotFound {
                digest: format!("sha256:{}", content("/tmp/evil").to_hex()),
                path: "/tmp/evil".into(),
                source: Source::Ima { entry: 2 }
            }]
        );
        assert_eq!(
            r.reasons[1],
            Reason::SecurityUpdate {
                package: "sed".into(),
                installed: "4.9-1".into(),
                fixed_in: "4.9-2".into(),
                newest: "4.9-2".into(),
                paths: vec!["/usr/bin/sed".into()],
            }
        );
        assert_eq!(r.reasons[2].level(), IntegrityLevel::ImaPkgNotSecurityUpdates);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["level"], "ima_digest_not_found");
        assert_eq!(j["reasons"][0]["kind"], "digest_not_found");
        assert_eq!(j["reasons"][0]["source"], serde_json::json!({"list": "ima", "entry": 2}));
    }

    #[test]
    fn a_file_unchanged_in_a_current_version_is_current() {
        assert_eq!(level(&BootVerdict::Trusted, &["/usr/share/sed/x"]).level, IntegrityLevel::ImaAllOk);
    }

    #[test]
    fn ima_entries_become_files_without_aggregate_violations_or_buffers() {
        let zero = "0".repeat(40);
        let log = format!(
            "10 {zero} ima-ng sha1:{zero} boot_aggregate\n\
             10 {zero} ima-ng sha256:{} /usr/bin/sed\n\
             10 {} ima-ng sha256:{} /usr/bin/grep\n\
             10 {} ima-ng md5:00112233445566778899aabbccddeeff /old\n",
            content("/usr/bin/sed").to_hex(),
            "1".repeat(40),
            content("/usr/bin/grep").to_hex(),
            "2".repeat(40),
        );
        let entries = crate::ima::parse(log.as_bytes()).unwrap();
        let files = ima_files(&entries, 0);
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].path, "/usr/bin/grep");
        assert_eq!(files[0].source, Source::Ima { entry: 2 });
        assert_eq!(files[1].digest.to_text(), "md5:00112233445566778899aabbccddeeff");
        let m = db();
        let r = compute_level(&BootVerdict::Trusted, &files, &m, &m).unwrap();
        assert_eq!(r.level, IntegrityLevel::ImaDigestNotFound);
    }
}
