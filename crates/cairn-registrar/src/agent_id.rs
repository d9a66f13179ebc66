//! Agent ids as Keylime accepts them: 1–255 characters of letters, digits, `-`, `_` and `.`.
//!
//! Checked once at the edge so logs, SQL parameters and the auth_tag message only ever see a
//! well-formed id.

use std::fmt;

/// Longest agent id accepted.
pub const MAX_AGENT_ID: usize = 255;

/// A checked agent id (usually a UUID).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentId(String);

impl AgentId {
    /// Checks `s`; `None` when it is empty, too long or holds other characters.
    pub fn parse(s: &str) -> Option<AgentId> {
        let ok = !s.is_empty()
            && s.len() <= MAX_AGENT_ID
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        ok.then(|| AgentId(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_refuses_odd_characters() {
        assert!(AgentId::parse("d432fbb3-d2f1-4a97-9ef7-75bd81c00000").is_some());
        assert!(AgentId::parse("node_1.example").is_some());
        for bad in ["", "a/b", "a b", "é", "a;DROP", &"x".repeat(256)] {
            assert!(AgentId::parse(bad).is_none(), "{bad:?}");
        }
    }
}
