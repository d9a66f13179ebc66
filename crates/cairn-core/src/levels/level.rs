//! The five integrity levels, worst first, with the names schedulers and the API use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How far a host can be trusted, ordered: `BootUntrusted < … < ImaAllOk`, so "run only on hosts at
/// level ≥ L" is a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityLevel {
    /// The quote or measured boot failed: nothing the host reports can be trusted.
    BootUntrusted,
    /// Booted as expected, but ran a file whose digest no reference database knows.
    ImaDigestNotFound,
    /// Every file is known, but one belongs to a package with a newer version that fixes a
    /// security issue.
    ImaPkgSecurityUpdates,
    /// Every file is known and no security update is pending, but a newer version exists.
    ImaPkgNotSecurityUpdates,
    /// Every file is known and belongs to the newest version of its package.
    ImaAllOk,
}

impl IntegrityLevel {
    /// Every level, worst first.
    pub const ALL: [IntegrityLevel; 5] = [
        IntegrityLevel::BootUntrusted,
        IntegrityLevel::ImaDigestNotFound,
        IntegrityLevel::ImaPkgSecurityUpdates,
        IntegrityLevel::ImaPkgNotSecurityUpdates,
        IntegrityLevel::ImaAllOk,
    ];

    /// The name used in JSON, the API and placement queries.
    pub fn name(self) -> &'static str {
        match self {
            IntegrityLevel::BootUntrusted => "boot_untrusted",
            IntegrityLevel::ImaDigestNotFound => "ima_digest_not_found",
            IntegrityLevel::ImaPkgSecurityUpdates => "ima_pkg_security_updates",
            IntegrityLevel::ImaPkgNotSecurityUpdates => "ima_pkg_not_security_updates",
            IntegrityLevel::ImaAllOk => "ima_all_ok",
        }
    }
}

impl fmt::Display for IntegrityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the five levels.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown integrity level {0:?} (expected one of boot_untrusted, ima_digest_not_found, ima_pkg_security_updates, ima_pkg_not_security_updates, ima_all_ok)")]
pub struct UnknownLevel(pub String);

impl FromStr for IntegrityLevel {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IntegrityLevel::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ordered_worst_first_and_named_as_in_json() {
        for w in IntegrityLevel::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for l in IntegrityLevel::ALL {
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
            assert_eq!(l.name().parse::<IntegrityLevel>().unwrap(), l);
            assert_eq!(serde_json::from_str::<IntegrityLevel>(&format!("\"{}\"", l.name())).unwrap(), l);
        }
        assert!("ima_ok".parse::<IntegrityLevel>().unwrap_err().to_string().contains("ima_ok"));
    }
}
