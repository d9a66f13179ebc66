//! Debian's control-file syntax (deb822): the `control` file of a package and the stanzas of an
//! archive's `Packages` index.
//!
//! A stanza is a run of `Field: value` lines, continued by lines that start with a space or tab;
//! stanzas are separated by blank lines. Field names compare case-insensitively. Lines starting
//! with `#` are comments. Anything else (a line without a colon, a continuation before any field) is
//! rejected with its line number, because a silently skipped stanza would hide an update.

use thiserror::Error;

/// A line that is not deb822.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {why}")]
pub struct Deb822Error {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: &'static str,
}

/// One stanza: its fields in order, borrowed from the text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stanza<'a> {
    /// 1-based line number of its first field.
    pub line: usize,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Stanza<'a> {
    /// The value of `name` (case-insensitive), without surrounding whitespace; for a multi-line
    /// field, its first line.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// Splits `text` into stanzas.
pub fn parse(text: &str) -> Result<Vec<Stanza<'_>>, Deb822Error> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if cur.fields.is_empty() {
                return Err(Deb822Error { line: n, why: "continuation line before any field" });
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Deb822Error { line: n, why: "expected \"Field: value\"" });
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Deb822Error { line: n, why: "bad field name" });
        }
        if cur.fields.is_empty() {
            cur.line = n;
        }
        cur.fields.push((name, value.trim()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_stanzas_fields_and_continuations() {
        let text = "Package: sed\nVersion: 4.9-1\nDescription: GNU stream editor\n sed reads the specified files\n .\n\n\n\
                    # a comment\npackage: grep\nVERSION:3.8-5\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("Package"), Some("sed"));
        assert_eq!(s[0].get("description"), Some("GNU stream editor"));
        assert_eq!((s[1].line, s[1].get("Package"), s[1].get("Version")), (9, Some("grep"), Some("3.8-5")));
        assert_eq!(s[1].get("Architecture"), None);
    }

    #[test]
    fn rejects_lines_that_are_not_fields() {
        assert_eq!(parse("Package: a\nnonsense\n").unwrap_err(), Deb822Error { line: 2, why: "expected \"Field: value\"" });
        assert_eq!(parse(" x\n").unwrap_err().line, 1);
    }
}
