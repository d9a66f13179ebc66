//! Process selectors: shell-style globs over an executable's path.
//!
//! `*` matches any run of bytes (slashes included) and `?` any one byte; nothing else is special.
//! A pattern with a `/` is matched against the whole path; one without, against the file name —
//! so `qemu-system-*` selects `/usr/bin/qemu-system-x86_64` wherever it is installed.

/// One selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector(String);

impl Selector {
    /// A selector; refuses an empty pattern.
    pub fn new(pattern: &str) -> Option<Selector> {
        (!pattern.trim().is_empty()).then(|| Selector(pattern.trim().to_owned()))
    }

    /// The pattern.
    pub fn pattern(&self) -> &str {
        &self.0
    }

    /// Whether the executable at `path` is selected.
    pub fn matches(&self, path: &[u8]) -> bool {
        let p = self.0.as_bytes();
        if p.contains(&b'/') {
            glob(p, path)
        } else {
            let name = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
            glob(p, name)
        }
    }
}

/// Iterative glob match with backtracking to the last `*` (linear in practice, no recursion).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let q = Selector::new("qemu-system-*").unwrap();
        assert!(q.matches(b"/usr/bin/qemu-system-x86_64"));
        assert!(q.matches(b"/opt/q/qemu-system-aarch64"));
        assert!(!q.matches(b"/usr/bin/qemu-img"));
        let s = Selector::new("swtpm").unwrap();
        assert!(s.matches(b"/usr/bin/swtpm") && !s.matches(b"/usr/bin/swtpm_setup"));
        let p = Selector::new("/tmp/*/sl?ep").unwrap();
        assert!(p.matches(b"/tmp/a/b/sleep") && !p.matches(b"/var/tmp/a/sleep") && !p.matches(b"/tmp/a/sleeps"));
        assert!(Selector::new("*").unwrap().matches(b"/x"));
        assert!(Selector::new(" ").is_none());
    }
}
