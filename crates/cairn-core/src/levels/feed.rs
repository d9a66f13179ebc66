//! The update feed: per package, the newest version and the versions that fix a security issue —
//! read from Cairn's JSON feed or from the `Packages` index of a release's security or updates suite.
//!
//! What a feed says about a package is [`PackageUpdates`]; what that means for an installed version
//! is [`UpdateStatus`]: a *security update* is pending when some security version is newer than the
//! installed one, an *update* when only the newest version is. Feeds merge monotonically (the newest
//! of both, the union of security versions), so importing the security and updates suites in either
//! order, or a feed twice, gives the same answer.
//!
//! The JSON feed (documented in `docs/refdb.md`):
//! ```json
//! {"packages": {"sed": {"newest": "4.9-2", "security": ["4.9-1+deb12u1"]}, "grep": {"newest": "3.8-5+deb12u1"}}}
//! ```
//! `newest` and `security` are both optional (an entry needs one of them); other top-level keys
//! (`format`, `generated`, `source`) are informational; unknown keys inside an entry are errors, so a
//! misspelt `securty` cannot silently drop a security fix.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::levels::deb822;
use crate::levels::debversion::{DebVersion, VersionError};

/// A feed that cannot be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FeedError {
    /// Not JSON of the feed's shape.
    #[error("not a Cairn update feed: {0}")]
    Json(#[from] serde_json::Error),
    /// A package entry is unusable.
    #[error("package {package:?}: {why}")]
    Entry {
        /// The package.
        package: String,
        /// What is wrong.
        why: String,
    },
    /// A `Packages` index line is not deb822.
    #[error("Packages index: {0}")]
    Syntax(#[from] deb822::Deb822Error),
    /// A `Packages` stanza lacks a field or has a bad version.
    #[error("Packages index stanza at line {line}: {why}")]
    Stanza {
        /// Line of the stanza.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// What a feed says about one package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageUpdates {
    /// The newest version known (security versions count too).
    pub newest: Option<DebVersion>,
    /// Versions that fix a security issue, ascending, without duplicates.
    pub security: Vec<DebVersion>,
}

impl PackageUpdates {
    /// Adds what `other` says: the newer of the two newest, the union of security versions.
    pub fn merge(&mut self, other: PackageUpdates) {
        if let Some(n) = other.newest {
            self.offer_newest(n);
        }
        for s in other.security {
            self.add_security(s);
        }
    }

    /// Records a security version (also a candidate for the newest).
    pub fn add_security(&mut self, v: DebVersion) {
        if let Err(i) = self.security.binary_search(&v) {
            self.security.insert(i, v.clone());
        }
        self.offer_newest(v);
    }

    /// Records a version as available; keeps the newest.
    pub fn offer_newest(&mut self, v: DebVersion) {
        if self.newest.as_ref().is_none_or(|n| *n < v) {
            self.newest = Some(v);
        }
    }

    /// What is pending for a host running `installed` (`None`: a version that could not be read,
    /// which is treated as older than every version the feed knows).
    pub fn status(&self, installed: Option<&DebVersion>) -> UpdateStatus {
        let newer = |v: &DebVersion| installed.is_none_or(|i| v > i);
        if let Some(fixed_in) = self.security.iter().find(|v| newer(v)) {
            let newest = self.newest.clone().unwrap_or_else(|| fixed_in.clone());
            return UpdateStatus::Security { fixed_in: fixed_in.clone(), newest };
        }
        match &self.newest {
            Some(n) if newer(n) => UpdateStatus::Update { newest: n.clone() },
            _ => UpdateStatus::Current,
        }
    }
}

/// What a feed means for one installed package version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateStatus {
    /// Nothing newer is known.
    Current,
    /// A newer version exists; none of the newer ones fixes a security issue.
    Update {
        /// The newest version.
        newest: DebVersion,
    },
    /// A newer version fixes a security issue.
    Security {
        /// The oldest security version newer than the installed one.
        fixed_in: DebVersion,
        /// The newest version.
        newest: DebVersion,
    },
}

/// A whole feed: package name → what it says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// Per package.
    pub packages: BTreeMap<String, PackageUpdates>,
}

impl Feed {
    /// Adds another feed's knowledge.
    pub fn merge(&mut self, other: Feed) {
        for (name, u) in other.packages {
            self.packages.entry(name).or_default().merge(u);
        }
    }
}

#[derive(Deserialize, Serialize)]
struct JsonFeed {
    packages: BTreeMap<String, JsonEntry>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    #[serde(default)]
    newest: Option<String>,
    #[serde(default)]
    security: Vec<String>,
}

fn check_name(name: &str) -> Result<(), FeedError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(FeedError::Entry { package: name.to_string(), why: "not a package name".into() });
    }
    Ok(())
}

/// Reads Cairn's JSON feed.
pub fn parse_json(bytes: &[u8]) -> Result<Feed, FeedError> {
    let doc: JsonFeed = serde_json::from_slice(bytes)?;
    let mut feed = Feed::default();
    for (name, e) in doc.packages {
        check_name(&name)?;
        let ver = |field: &str, s: &str| {
            DebVersion::parse(s).map_err(|e: VersionError| FeedError::Entry { package: name.clone(), why: format!("{field}: {e}") })
        };
        if e.newest.is_none() && e.security.is_empty() {
            return Err(FeedError::Entry { package: name, why: "needs \"newest\" or \"security\"".into() });
        }
        let mut u = PackageUpdates::default();
        if let Some(n) = &e.newest {
            u.offer_newest(ver("newest", n)?);
        }
        for s in &e.security {
            u.add_security(ver("security", s)?);
        }
        feed.packages.entry(name).or_default().merge(u);
    }
    Ok(feed)
}

/// Writes a feed as Cairn's JSON (what [`parse_json`] reads back).
pub fn to_json(feed: &Feed) -> serde_json::Value {
    let packages: BTreeMap<&str, JsonEntry> = feed
        .packages
        .iter()
        .map(|(n, u)| {
            let e = JsonEntry {
                newest: u.newest.as_ref().map(ToString::to_string),
                security: u.security.iter().map(ToString::to_string).collect(),
            };
            (n.as_str(), e)
        })
        .collect();
    serde_json::json!({ "packages": packages })
}

/// Which suite of a release a `Packages` index comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// `<release>-security` (Debian's security archive, Ubuntu's `-security` pocket): every
    /// version in it fixes a security issue.
    Security,
    /// `<release>-updates` (or a point release): newer versions without a security claim.
    Updates,
}

impl Suite {
    /// The suite a file name tells (`…bookworm-security_main_binary-amd64_Packages`,
    /// `…noble-updates…`), if it tells one.
    pub fn from_file_name(name: &str) -> Option<Suite> {
        let n = name.to_ascii_lowercase();
        if n.contains("security") {
            Some(Suite::Security)
        } else if n.contains("updates") {
            Some(Suite::Updates)
        } else {
            None
        }
    }
}

impl FromStr for Suite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "security" => Ok(Suite::Security),
            "updates" => Ok(Suite::Updates),
            other => Err(format!("unknown suite {other:?} (security or updates)")),
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Suite::Security => "security",
            Suite::Updates => "updates",
        })
    }
}

/// Reads a Debian `Packages` index (decompressed): every stanza's `Package` at `Version` is
/// available, and from the security suite it is a security version.
pub fn parse_packages_index(text: &str, suite: Suite) -> Result<Feed, FeedError> {
    let mut feed = Feed::default();
    for s in deb822::parse(text)? {
        let bad = |why: String| FeedError::Stanza { line: s.line, why };
        let name = s.get("Package").ok_or_else(|| bad("no Package field".into()))?;
        check_name(name).map_err(|e| bad(e.to_string()))?;
        let version = s.get("Version").ok_or_else(|| bad(format!("{name}: no Version field")))?;
        let v = DebVersion::parse(version).map_err(|e| bad(format!("{name}: {e}")))?;
        let u = feed.packages.entry(name.to_string()).or_default();
        match suite {
            Suite::Security => u.add_security(v),
            Suite::Updates => u.offer_newest(v),
        }
    }
    Ok(feed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap()
    }

    #[test]
    fn status_tells_security_from_plain_updates() {
        let u = parse_json(br#"{"packages": {"sed": {"newest": "4.9-3", "security": ["4.9-1+deb12u1"]}}}"#).unwrap();
        let sed = &u.packages["sed"];
        assert_eq!(sed.status(Some(&v("4.9-1"))), UpdateStatus::Security { fixed_in: v("4.9-1+deb12u1"), newest: v("4.9-3") });
        assert_eq!(sed.status(Some(&v("4.9-1+deb12u1"))), UpdateStatus::Update { newest: v("4.9-3") });
        assert_eq!(sed.status(Some(&v("4.9-3"))), UpdateStatus::Current);
        assert_eq!(sed.status(Some(&v("5.0-1"))), UpdateStatus::Current);
        assert!(matches!(sed.status(None), UpdateStatus::Security { .. }));
    }

    #[test]
    fn security_versions_count_as_newest_and_merging_is_order_free() {
        let a = parse_json(br#"{"format": "cairn-update-feed/1", "packages": {"x": {"security": ["2.0-1"]}}}"#).unwrap();
        let b = parse_packages_index("Package: x\nVersion: 1.5-1\n\nPackage: y\nVersion: 1:1.0\n", Suite::Updates).unwrap();
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(b.clone());
        ba.merge(a.clone());
        assert_eq!(ab, ba);
        assert_eq!(ab.packages["x"].newest, Some(v("2.0-1")));
        assert_eq!(ab.packages["y"].status(Some(&v("1.0"))), UpdateStatus::Update { newest: v("1:1.0") });
        // Round trip through JSON.
        assert_eq!(parse_json(to_json(&ab).to_string().as_bytes()).unwrap(), ab);
    }

    #[test]
    fn bad_feeds_name_the_package_and_field() {
        let e = parse_json(br#"{"packages": {"sed": {"newest": "x1"}}}"#).unwrap_err().to_string();
        assert!(e.contains("sed") && e.contains("newest"), "{e}");
        let e = parse_json(br#"{"packages": {"sed": {"securty": ["1"]}}}"#).unwrap_err().to_string();
        assert!(e.contains("securty"), "{e}");
        let e = parse_json(br#"{"packages": {"sed": {}}}"#).unwrap_err().to_string();
        assert!(e.contains("sed"), "{e}");
        let e = parse_packages_index("Package: a\nVersion: 1\n\nPackage: b\n", Suite::Security).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("b: no Version"), "{e}");
    }

    #[test]
    fn suites_from_apt_list_file_names() {
        let f = "mirror.example_debian-security_dists_bookworm-security_main_binary-amd64_Packages.xz";
        assert_eq!(Suite::from_file_name(f), Some(Suite::Security));
        assert_eq!(Suite::from_file_name("archive_dists_noble-updates_main_binary-amd64_Packages"), Some(Suite::Updates));
        assert_eq!(Suite::from_file_name("Packages.gz"), None);
    }
}
