//! Integrity levels: how far a host that attested can be trusted, as one of five ordered values a
//! scheduler can compare ("place this VM only on hosts at level ≥ L").
//!
//! ```text
//! boot_untrusted < ima_digest_not_found < ima_pkg_security_updates < ima_pkg_not_security_updates < ima_all_ok
//! ```
//!
//! # The rule
//! Inputs: the boot verdict (the quote verified and measured boot passed, or not); the measured
//! files — every file-measurement entry of the IMA list (see [`ima_files`] for what is skipped) and
//! the on-disk digests of the hypervisor measurement list; a reference database mapping a digest to
//! the package files with that content ([`ReferenceDigests`]); an update feed saying, per package,
//! the newest version and which versions fix a security issue ([`UpdateFeed`]).
//!
//! 1. The boot verdict is untrusted → `boot_untrusted`.
//! 2. Else, some measured digest is in no reference database (or uses an algorithm none holds, like
//!    md5) → `ima_digest_not_found`.
//! 3. Else every digest is known. A digest's package version is the most favourable of its matches
//!    (the same bytes shipped by an old and a current version are as good as the current one's).
//!    Some measured package has a security version newer than its installed version →
//!    `ima_pkg_security_updates`.
//! 4. Else some measured package has a newer version (none of them a security fix) →
//!    `ima_pkg_not_security_updates`.
//! 5. Else → `ima_all_ok`.
//!
//! A package the feed does not mention is current; an installed version that is not a Debian version
//! is older than anything the feed mentions. The level comes with every [`Reason`] that keeps the host
//! below `ima_all_ok`, worst first: the digest, path and list entry of each unknown file, and the
//! package, installed and fixing versions and measured paths of each outdated package.
//!
//! Versions compare as dpkg compares them ([`DebVersion`]).

mod deb822;
mod debversion;
mod feed;
mod judge;
mod level;

pub use deb822::{parse as parse_deb822, Deb822Error, Stanza};
pub use debversion::{DebVersion, VersionError};
pub use feed::{parse_json as parse_json_feed, parse_packages_index, to_json as feed_to_json, Feed, FeedError, PackageUpdates, Suite, UpdateStatus};
pub use judge::{
    compute_level, ima_files, BootVerdict, LevelReport, MeasuredDigest, MeasuredFile, PackageFile, Reason,
    ReferenceDigests, Source, UpdateFeed,
};
pub use level::{IntegrityLevel, UnknownLevel};
