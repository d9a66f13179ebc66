//! Keylime's older flat allowlist (`<hex digest>  <path>` per line, as `sha256sum` prints it;
//! `%keyring:<name>` paths go to `keyrings`) and exclude-list text (one regex per line), converted
//! into the same [`RuntimePolicy`] as the JSON format.

use crate::policy::runtime::digests::AllowedDigest;
use crate::policy::runtime::document::RuntimePolicy;
use crate::policy::runtime::excludes::Excludes;
use crate::policy::runtime::PolicyError;

/// Builds a policy from a flat allowlist and an optional exclude list.
pub fn from_flat(allowlist: &str, exclude_list: Option<&str>) -> Result<RuntimePolicy, PolicyError> {
    let mut policy = RuntimePolicy::empty();
    policy.meta.generator = 3;
    for (i, raw) in allowlist.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = i + 1;
        let Some((digest, path)) = line.split_once(char::is_whitespace) else {
            return Err(PolicyError::BadAllowlistLine { line: line_no, detail: "expected a digest and a path" });
        };
        // sha256sum marks binary mode with '*' before the path.
        let path = path.trim_start();
        let path = path.strip_prefix('*').unwrap_or(path);
        let d = AllowedDigest::from_hex(digest)
            .ok_or(PolicyError::BadAllowlistLine { line: line_no, detail: "not a hex digest of 20 to 64 bytes" })?;
        match path.strip_prefix("%keyring:") {
            Some(keyring) => policy.keyrings.insert(keyring, d)?,
            None => policy.digests.insert(&path.replace(' ', "_"), d)?,
        }
    }
    if let Some(text) = exclude_list {
        policy.excludes = Excludes::from_text(text)?;
    }
    Ok(policy)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn flat_allowlist_converts() {
        let text = format!("{}  /usr/bin/a b\n\n{} %keyring:.ima\n", "ab".repeat(32), "cd".repeat(20));
        let p = from_flat(&text, Some("/tmp/.*\n\n")).unwrap();
        assert_eq!(p.digests.get(b"/usr/bin/a_b").unwrap().len(), 1);
        assert_eq!(p.keyrings.get(b".ima").unwrap().iter().next().unwrap().to_hex(), "cd".repeat(20));
        assert!(p.excludes.matches(b"/tmp/x"));
        assert!(matches!(from_flat("zz /x", None), Err(PolicyError::BadAllowlistLine { line: 1, .. })));
    }
}
