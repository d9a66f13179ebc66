//! Synthetic measurement lists for benchmarks (`cairn bench ima`) and tests: a realistic ASCII
//! `ima-ng` log with SHA-256 file digests and correct template hashes, plus a Keylime runtime policy
//! allowing every entry. Deterministic, so runs compare.

use std::fmt::Write as _;

use crate::alg::HashAlg;
use crate::ima::entry::Template;
use crate::ima::field::FileDigest;

/// A generated log and the policy that accepts all of it.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// `ascii_runtime_measurements` text.
    pub log: Vec<u8>,
    /// Keylime runtime policy JSON listing every path with its digest.
    pub policy_json: String,
    /// Number of entries.
    pub entries: usize,
}

/// Generates `n` entries: `boot_aggregate` first, then files under a few directories.
pub fn generate(n: usize) -> Synthetic {
    let mut log = Vec::with_capacity(n * 140);
    let mut policy = String::with_capacity(n * 110 + 300);
    policy.push_str("{\"meta\":{\"version\":1,\"generator\":3},\"release\":0,\"digests\":{");
    let dirs = ["/usr/bin", "/usr/lib64", "/usr/libexec/cairn", "/etc/synth"];
    let mut scratch = Vec::with_capacity(512);
    for i in 0..n {
        let path = if i == 0 {
            "boot_aggregate".to_string()
        } else {
            format!("{}/file-{i:07}", dirs.get(i % dirs.len()).copied().unwrap_or("/"))
        };
        let file_digest = HashAlg::Sha256.hash(path.as_bytes());
        let Ok(digest) = FileDigest::new(b"sha256", file_digest.as_bytes(), "d-ng") else { continue };
        let template = Template::ImaNg { digest, path: path.as_bytes() };
        scratch.clear();
        template.encode(&mut scratch);
        let thash = HashAlg::Sha1.hash(&scratch);
        let line = format!("10 {} ima-ng sha256:{} {}\n", thash.to_hex(), file_digest.to_hex(), path);
        log.extend_from_slice(line.as_bytes());
        if i > 0 {
            policy.push(',');
        }
        let _ = write!(policy, "\"{path}\":[\"{}\"]", file_digest.to_hex());
    }
    policy.push_str("},\"excludes\":[],\"keyrings\":{},\"ima\":{\"ignored_keyrings\":[],\"log_hash_alg\":\"sha1\",\"dm_policy\":null},\"ima-buf\":{},\"verification-keys\":\"\"}");
    Synthetic { log, policy_json: policy, entries: n }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::ima::replay::{replay, BankSet};

    #[test]
    fn synthetic_log_is_consistent() {
        let s = generate(50);
        let (state, summary) = replay(&s.log, BankSet::of(&[HashAlg::Sha1, HashAlg::Sha256])).unwrap();
        assert_eq!(summary.entries, 50);
        assert!(summary.template_hash_mismatches.is_empty());
        assert_eq!(state.next_entry(), 50);
        assert!(serde_json::from_str::<serde_json::Value>(&s.policy_json).is_ok());
    }
}
