//! The `excludes` list: Python regular expressions applied with `re.match`, i.e. anchored at the
//! start of the path but not at its end.
//!
//! All patterns are compiled once into one [`regex::bytes::RegexSet`], each wrapped as `^(?:…)`,
//! so a lookup is a single pass over the path whatever the number of patterns. Python's `\Z` is
//! translated to `\z`; constructs the `regex` crate lacks (look-around, back-references) are
//! refused with the offending pattern named, never silently ignored.

use regex::bytes::RegexSet;

use crate::policy::runtime::PolicyError;

/// Largest compiled size allowed for the exclude set.
const SIZE_LIMIT: usize = 64 << 20;

/// Compiled exclude patterns.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    set: Option<RegexSet>,
    patterns: Vec<String>,
}

impl Excludes {
    /// Compiles Keylime exclude patterns.
    pub fn new(patterns: &[String]) -> Result<Excludes, PolicyError> {
        let patterns: Vec<String> = patterns.iter().filter(|p| !p.is_empty()).cloned().collect();
        if patterns.is_empty() {
            return Ok(Excludes::default());
        }
        let anchored: Vec<String> = patterns.iter().map(|p| format!("^(?:{})", translate(p))).collect();
        match regex::bytes::RegexSetBuilder::new(&anchored).size_limit(SIZE_LIMIT).build() {
            Ok(set) => Ok(Excludes { set: Some(set), patterns }),
            Err(_) => Err(first_bad(&patterns, &anchored)),
        }
    }

    /// Parses Keylime's exclude-list text: one pattern per line, blank lines skipped.
    pub fn from_text(text: &str) -> Result<Excludes, PolicyError> {
        let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        Excludes::new(&lines)
    }

    /// True when some pattern matches the start of `path`.
    pub fn matches(&self, path: &[u8]) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path))
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

fn translate(p: &str) -> String {
    p.replace("\\Z", "\\z")
}

fn first_bad(patterns: &[String], anchored: &[String]) -> PolicyError {
    for (index, (p, a)) in patterns.iter().zip(anchored).enumerate() {
        if let Err(e) = regex::bytes::Regex::new(a) {
            return PolicyError::BadExclude { index, pattern: p.clone(), detail: e.to_string() };
        }
    }
    PolicyError::BadExclude { index: 0, pattern: String::new(), detail: "the set is too large".into() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn anchored_at_start_only() {
        let e = Excludes::new(&["/tmp/.*".into(), "boot_agg".into()]).unwrap();
        assert!(e.matches(b"/tmp/x"));
        assert!(e.matches(b"boot_aggregate"));
        assert!(!e.matches(b"/var/tmp/x"));
        assert!(!Excludes::default().matches(b"/tmp"));
    }

    #[test]
    fn alternation_stays_anchored_and_bad_patterns_are_named() {
        let e = Excludes::new(&["/a|/b".into()]).unwrap();
        assert!(!e.matches(b"/x/b"));
        assert!(e.matches(b"/b/x"));
        let err = Excludes::new(&["ok".into(), "/(?=x)".into()]).unwrap_err();
        assert!(matches!(err, PolicyError::BadExclude { index: 1, .. }));
    }
}
