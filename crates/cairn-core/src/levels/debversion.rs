//! Debian package versions (`[epoch:]upstream[-revision]`) and their order, as Debian Policy §5.6.12
//! and dpkg define it.
//!
//! Epochs compare as integers; upstream versions, then revisions, compare left to right in
//! alternating runs of non-digits and digits. Non-digit runs compare character by character where
//! `~` sorts before everything (even the end of the run), the end before any other character, and
//! letters before non-letters; digit runs compare as numbers (of any length: `1.00000000000000000001`
//! does not overflow). Two spellings that compare equal (`1.0` and `1.00`, `0:1` and `1`) are equal:
//! [`PartialEq`] follows the order, so a `BTreeMap` keyed by versions agrees with dpkg.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A version string that is not a Debian version.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{version:?} is not a Debian version: {why}")]
pub struct VersionError {
    /// The text.
    pub version: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// A Debian package version; keeps its text for display.
#[derive(Clone)]
pub struct DebVersion {
    text: String,
    epoch: u64,
    /// Byte range of the upstream part in `text`.
    upstream: (usize, usize),
    /// Byte range of the revision in `text` (empty when there is none, which sorts as `0`).
    revision: (usize, usize),
}

impl DebVersion {
    /// Parses `[epoch:]upstream[-revision]`.
    pub fn parse(text: &str) -> Result<DebVersion, VersionError> {
        let err = |why| VersionError { version: text.to_string(), why };
        if text.is_empty() {
            return Err(err("empty"));
        }
        if text.bytes().any(|b| b.is_ascii_whitespace() || !b.is_ascii_graphic()) {
            return Err(err("contains whitespace or non-ASCII characters"));
        }
        let (epoch, rest_start) = match text.find(':') {
            Some(i) => {
                let e = text.get(..i).unwrap_or_default();
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the epoch (before ':') must be a number"));
                }
                (e.parse::<u64>().map_err(|_| err("the epoch is too large"))?, i + 1)
            }
            None => (0, 0),
        };
        let rest = text.get(rest_start..).unwrap_or_default();
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => ((rest_start, rest_start + i), (rest_start + i + 1, text.len())),
            None => ((rest_start, text.len()), (text.len(), text.len())),
        };
        let up = text.get(upstream.0..upstream.1).unwrap_or_default();
        let rev = text.get(revision.0..revision.1).unwrap_or_default();
        if up.is_empty() {
            return Err(err("the upstream version is empty"));
        }
        if !up.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            return Err(err("the upstream version must start with a digit"));
        }
        if !up.bytes().all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b)) {
            return Err(err("the upstream version may hold only alphanumerics and . + ~ - :"));
        }
        if up.contains(':') {
            return Err(err("more than one ':'"));
        }
        if rest.contains('-') && rev.is_empty() {
            return Err(err("the revision (after the last '-') is empty"));
        }
        if !rev.bytes().all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b)) {
            return Err(err("the revision may hold only alphanumerics and . + ~"));
        }
        Ok(DebVersion { text: text.to_string(), epoch, upstream, revision })
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The epoch (0 when absent).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The upstream version.
    pub fn upstream(&self) -> &str {
        self.text.get(self.upstream.0..self.upstream.1).unwrap_or_default()
    }

    /// The Debian revision (empty when absent).
    pub fn revision(&self) -> &str {
        self.text.get(self.revision.0..self.revision.1).unwrap_or_default()
    }
}

/// Weight of a character in a non-digit run: `~` < end of run < letters < everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: compares one upstream version or revision with another.
fn compare_part(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit run, character by character.
        loop {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            match weight(ca).cmp(&weight(cb)) {
                Ordering::Equal => {}
                other => return other,
            }
            i += usize::from(ca.is_some());
            j += usize::from(cb.is_some());
        }
        // Digit run, as a number: skip leading zeros, then longer is larger, then lexicographic.
        let run = |s: &[u8], mut k: usize| {
            while s.get(k) == Some(&b'0') {
                k += 1;
            }
            let start = k;
            while s.get(k).is_some_and(u8::is_ascii_digit) {
                k += 1;
            }
            (s.get(start..k).unwrap_or_default().to_vec(), k)
        };
        let (na, ni) = run(a, i);
        let (nb, nj) = run(b, j);
        match na.len().cmp(&nb.len()).then_with(|| na.cmp(&nb)) {
            Ordering::Equal => {}
            other => return other,
        }
        i = ni;
        j = nj;
    }
    Ordering::Equal
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream().as_bytes(), other.upstream().as_bytes()))
            .then_with(|| compare_part(self.revision().as_bytes(), other.revision().as_bytes()))
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

impl FromStr for DebVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DebVersion::parse(s)
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DebVersion({})", self.text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> DebVersion {
        DebVersion::parse(s).unwrap()
    }

    #[test]
    fn splits_epoch_upstream_revision() {
        let x = v("1:2.30-1ubuntu2");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (1, "2.30", "1ubuntu2"));
        let x = v("3.23+nmu1");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (0, "3.23+nmu1", ""));
        // The revision is after the *last* hyphen; the upstream part may hold hyphens.
        let x = v("1.2-rc3-4");
        assert_eq!((x.upstream(), x.revision()), ("1.2-rc3", "4"));
        assert_eq!(x.to_string(), "1.2-rc3-4");
    }

    #[test]
    fn tilde_sorts_before_everything_policy_example() {
        // Debian Policy §5.6.12: "~~, ~~a, ~, the empty part, a".
        let order = ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert!(v("1.0~rc1") < v("1.0"));
        assert!(v("1.0-1~bpo1") < v("1.0-1"));
    }

    #[test]
    fn epochs_win_over_everything() {
        assert!(v("1:0.1") > v("2.0"));
        assert!(v("2:1.0") > v("1:9.9"));
        assert_eq!(v("0:1.0"), v("1.0"));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("1.0"), v("1.00"));
        assert!(v("1.00000000000000000000002") > v("1.00000000000000000000001"));
        assert!(v("99999999999999999999999999") > v("9999999999999999999999999"));
    }

    #[test]
    fn letters_before_non_letters_and_revisions_last() {
        assert!(v("1.0a") < v("1.0+"));
        assert!(v("1.0a") < v("1.0."));
        assert!(v("1.0") < v("1.0+deb12u1"));
        assert!(v("4.9-1") < v("4.9-1+deb12u1"));
        assert!(v("4.9-1+deb12u1") < v("4.9-2"));
        assert!(v("1.0-1") < v("1.0-1.1"));
        // No revision is the same as revision "0" and less than revision "1".
        assert_eq!(v("1.0"), v("1.0-0"));
        assert!(v("1.0") < v("1.0-1"));
    }

    #[test]
    fn agrees_with_dpkg_compare_versions() {
        // Pairs from dpkg's own tests, each result as `dpkg --compare-versions` gives it.
        use Ordering::{Equal as Eq_, Greater as Gt, Less as Lt};
        let cases = [
            ("0", Lt, "1"),
            ("1.2.3~beta", Lt, "1.2.3"),
            ("1a", Lt, "1b"),
            ("0:1.0", Lt, "1:0.9"),
            ("2.9", Lt, "2.10"),
            ("7.6p2-4", Gt, "7.6-0"),
            ("1.0.3-3", Gt, "1.0-1"),
            ("1.3", Gt, "1.2.2-2"),
            ("0-pre", Lt, "0-pree"),
            ("1.1.6r-1", Lt, "1.1.6r2-2"),
            ("2.6b-2", Lt, "2.6b2-1"),
            ("98.1-pre2-b6-2", Gt, "98.1p5-1"),
            ("0.4a6-2", Gt, "0.4-1"),
            ("1:3.0.5-2", Lt, "1:3.0.5.1"),
            ("10.11.1.3-2", Eq_, "10.11.1.3-2"),
        ];
        for (a, want, b) in cases {
            assert_eq!(v(a).cmp(&v(b)), want, "{a} vs {b}");
            assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_version_naming_why() {
        for (bad, why) in [
            ("", "empty"),
            ("a1.0", "must start with a digit"),
            ("x:1.0", "epoch"),
            (":1.0", "epoch"),
            ("1.0-", "revision"),
            ("1 0", "whitespace"),
            ("1.0_1", "alphanumerics"),
            ("1:2:3", "more than one"),
            ("1.0-a_b", "revision may hold"),
        ] {
            let e = DebVersion::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }
}
