//! API versions: `/v2.x/` path prefixes and the `GET /version` negotiation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Keylime REST API version `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
}

impl ApiVersion {
    /// Versions Cairn serves, oldest first (Keylime 2.0–2.5; 2.6 changes push-mode endpoints only).
    pub const SUPPORTED: [ApiVersion; 6] = [
        ApiVersion { major: 2, minor: 0 },
        ApiVersion { major: 2, minor: 1 },
        ApiVersion { major: 2, minor: 2 },
        ApiVersion { major: 2, minor: 3 },
        ApiVersion { major: 2, minor: 4 },
        ApiVersion { major: 2, minor: 5 },
    ];
    /// The newest supported version.
    pub const CURRENT: ApiVersion = ApiVersion { major: 2, minor: 5 };

    /// Parses a path segment such as `v2.1`.
    pub fn from_path_segment(s: &str) -> Option<ApiVersion> {
        s.strip_prefix('v')?.parse().ok()
    }

    /// The highest version both sides support.
    pub fn negotiate(theirs: &[ApiVersion]) -> Option<ApiVersion> {
        theirs.iter().filter(|v| ApiVersion::SUPPORTED.contains(v)).max().copied()
    }

    /// Whether Cairn serves this version.
    pub fn is_supported(self) -> bool {
        ApiVersion::SUPPORTED.contains(&self)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('.').ok_or_else(|| format!("{s:?} is not MAJOR.MINOR"))?;
        let p = |x: &str| x.parse::<u8>().map_err(|_| format!("{s:?} is not MAJOR.MINOR"));
        Ok(ApiVersion { major: p(a)?, minor: p(b)? })
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `GET /version` on the registrar and verifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceVersion {
    /// The version the service prefers.
    pub current_version: ApiVersion,
    /// Every version it serves.
    pub supported_versions: Vec<ApiVersion>,
}

/// `GET /version` on the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentVersion {
    /// The version the agent speaks.
    pub supported_version: ApiVersion,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_negotiation() {
        assert_eq!(ApiVersion::from_path_segment("v2.1"), Some(ApiVersion { major: 2, minor: 1 }));
        assert_eq!(ApiVersion::from_path_segment("2.1"), None);
        let theirs: Vec<ApiVersion> = ["2.0", "2.2", "3.0"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(ApiVersion::negotiate(&theirs), Some(ApiVersion { major: 2, minor: 2 }));
        assert_eq!(serde_json::to_string(&ApiVersion::CURRENT).unwrap(), "\"2.5\"");
    }
}
