//! The `excludes` list: Python regular expressions applied with `re.match`, i.e. anchored at the
//! start of the path but not at its end.
//!
//! All patterns are compiled once into one [`regex::bytes::RegexSet`], each wrapped as `^(?:…)`,
//! so a lookup is a single pass over the path whatever the number of patterns. Python's `\Z` is
//! translated to `\z`. Patterns the `regex` crate cannot take (look-around, back-references,
//! which Python's `re` allows) are compiled with `fancy-regex` instead and tried after the set, so
//! a Keylime policy is accepted unchanged; a pattern neither engine accepts is refused with the
//! offending pattern named, never silently ignored.

use regex::bytes::RegexSet;

use crate::policy::runtime::PolicyError;

/// Largest compiled size allowed for the exclude set.
const SIZE_LIMIT: usize = 64 << 20;

/// Compiled exclude patterns.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    set: Option<RegexSet>,
    /// Patterns only a backtracking engine can run.
    fancy: Vec<fancy_regex::Regex>,
    patterns: Vec<String>,
}

impl Excludes {
    /// Compiles Keylime exclude patterns.
    pub fn new(patterns: &[String]) -> Result<Excludes, PolicyError> {
        let patterns: Vec<String> = patterns.iter().filter(|p| !p.is_empty()).cloned().collect();
        if patterns.is_empty() {
            return Ok(Excludes::default());
        }
        let mut simple = Vec::new();
        let mut fancy = Vec::new();
        for (index, p) in patterns.iter().enumerate() {
            let anchored = format!("^(?:{})", translate(p));
            if regex::bytes::Regex::new(&anchored).is_ok() {
                simple.push(anchored);
                continue;
            }
            match fancy_regex::Regex::new(&anchored) {
                Ok(r) => fancy.push(r),
                Err(e) => return Err(PolicyError::BadExclude { index, pattern: p.clone(), detail: e.to_string() }),
            }
        }
        let set = if simple.is_empty() {
            None
        } else {
            let built = regex::bytes::RegexSetBuilder::new(&simple).size_limit(SIZE_LIMIT).build().map_err(|e| {
                PolicyError::BadExclude { index: 0, pattern: String::new(), detail: format!("the set is too large: {e}") }
            })?;
            Some(built)
        };
        Ok(Excludes { set, fancy, patterns })
    }

    /// Parses Keylime's exclude-list text: one pattern per line, blank lines skipped.
    pub fn from_text(text: &str) -> Result<Excludes, PolicyError> {
        let lines: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        Excludes::new(&lines)
    }

    /// True when some pattern matches the start of `path`.
    #[inline]
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.set.is_none() && self.fancy.is_empty() {
            return false;
        }
        self.matches_some(path)
    }

    fn matches_some(&self, path: &[u8]) -> bool {
        if self.set.as_ref().is_some_and(|s| s.is_match(path)) {
            return true;
        }
        if self.fancy.is_empty() {
            return false;
        }
        let text = String::from_utf8_lossy(path);
        // A pattern that exhausts the backtracking limit does not exclude the path: failing closed
        // means the entry is still judged against the digest list.
        self.fancy.iter().any(|r| r.is_match(text.as_ref()).unwrap_or(false))
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

fn translate(p: &str) -> String {
    p.replace("\\Z", "\\z")
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
        let err = Excludes::new(&["ok".into(), "/(unclosed".into()]).unwrap_err();
        assert!(matches!(err, PolicyError::BadExclude { index: 1, .. }));
    }

    #[test]
    fn look_around_and_back_references_work_as_in_python() {
        // Exclude everything under /opt except /opt/keep (negative look-ahead), and doubled names.
        let e = Excludes::new(&["/opt/(?!keep)".into(), r"/srv/(\w+)/\1\.log".into()]).unwrap();
        assert!(e.matches(b"/opt/other/bin"));
        assert!(!e.matches(b"/opt/keep/bin"));
        assert!(e.matches(b"/srv/web/web.log"));
        assert!(!e.matches(b"/srv/web/db.log"));
        assert!(!e.matches(b"/x/opt/other"));
    }
}
