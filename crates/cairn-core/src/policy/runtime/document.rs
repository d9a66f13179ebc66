//! Keylime's runtime policy JSON (format version 1), accepted unchanged, and its compiled form.
//!
//! The JSON is parsed once into [`RuntimePolicy`]: digests become bytes in [`DigestMap`] tables
//! keyed by path (O(1) per entry, one cache miss), the exclude regexes one anchored [`Excludes`] set, the verification keys a
//! [`Keyrings`]. Missing sections default to empty, so Keylime's minimal policies also load.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use crate::alg::HashAlg;
pub use crate::policy::runtime::digests::{AllowedDigest, DigestList, DigestMap};
use crate::policy::runtime::excludes::Excludes;
use crate::policy::runtime::keys::{Keyrings, PublicKey};
use crate::policy::runtime::PolicyError;

/// Name of the keyring holding the tenant's verification keys.
pub const TENANT_KEYRING: &str = "tenant_keyring";

/// `meta` of a runtime policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PolicyMeta {
    /// Format version (1).
    #[serde(default)]
    pub version: u64,
    /// Which tool generated it (Keylime's RUNTIME_POLICY_GENERATOR).
    #[serde(default)]
    pub generator: u64,
    /// Free-form timestamp.
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct ImaSection {
    #[serde(default)]
    ignored_keyrings: Vec<String>,
    #[serde(default)]
    log_hash_alg: Option<String>,
    #[serde(default)]
    dm_policy: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    meta: PolicyMeta,
    #[serde(default)]
    release: u64,
    #[serde(default)]
    digests: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    keyrings: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    ima: ImaSection,
    #[serde(default, rename = "ima-buf")]
    ima_buf: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "verification-keys")]
    verification_keys: String,
}

/// A runtime policy compiled for evaluation.
#[derive(Clone, Debug)]
pub struct RuntimePolicy {
    /// `meta`.
    pub meta: PolicyMeta,
    /// `release`.
    pub release: u64,
    /// `digests`: path → allowed file digests (incl. `boot_aggregate`).
    pub digests: DigestMap,
    /// `keyrings`: keyring → allowed digests of keys measured into it.
    pub keyrings: DigestMap,
    /// `ima-buf`: buffer name → allowed buffer digests.
    pub ima_buf: DigestMap,
    /// `excludes`.
    pub excludes: Excludes,
    /// `ima.ignored_keyrings` (`*` = all).
    pub ignored_keyrings: Vec<String>,
    /// `ima.log_hash_alg`: the algorithm of the logged template hashes.
    pub log_hash_alg: HashAlg,
    /// `verification-keys`, as the tenant keyring.
    pub verification_keys: Keyrings,
}

impl RuntimePolicy {
    /// A policy with nothing allowed (Keylime's EMPTY_RUNTIME_POLICY).
    pub fn empty() -> RuntimePolicy {
        RuntimePolicy {
            meta: PolicyMeta { version: 1, generator: 1, timestamp: None },
            release: 0,
            digests: DigestMap::default(),
            keyrings: DigestMap::default(),
            ima_buf: DigestMap::default(),
            excludes: Excludes::default(),
            ignored_keyrings: Vec::new(),
            log_hash_alg: HashAlg::Sha1,
            verification_keys: Keyrings::default(),
        }
    }

    /// Parses Keylime's runtime policy JSON.
    pub fn from_json(text: &str) -> Result<RuntimePolicy, PolicyError> {
        let doc: Document = serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        if doc.meta.version > 1 {
            return Err(PolicyError::UnsupportedVersion(doc.meta.version));
        }
        if doc.ima.dm_policy.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(PolicyError::Unsupported("ima.dm_policy (device-mapper policies)"));
        }
        let log_hash_alg = match doc.ima.log_hash_alg.as_deref() {
            None => HashAlg::Sha1,
            Some(name) => HashAlg::from_name(name).ok_or_else(|| PolicyError::BadLogHashAlg(name.to_string()))?,
        };
        Ok(RuntimePolicy {
            meta: doc.meta,
            release: doc.release,
            digests: digest_map("digests", doc.digests)?,
            keyrings: digest_map("keyrings", doc.keyrings)?,
            ima_buf: digest_map("ima-buf", doc.ima_buf)?,
            excludes: Excludes::new(&doc.excludes)?,
            ignored_keyrings: doc.ima.ignored_keyrings,
            log_hash_alg,
            verification_keys: verification_keys(&doc.verification_keys)?,
        })
    }

    /// True when keys measured into `keyring` are to be ignored.
    pub fn ignores_keyring(&self, keyring: &[u8]) -> bool {
        self.ignored_keyrings.iter().any(|k| k == "*" || k.as_bytes() == keyring)
    }
}

/// A section of path → hex digests, compiled, in path order (see [`DigestMap`] for why that
/// order). A key repeated in the JSON keeps its last value, as when Keylime reads it.
fn digest_map(section: &'static str, m: BTreeMap<String, Vec<String>>) -> Result<DigestMap, PolicyError> {
    let mut out = DigestMap::with_capacity(m.len());
    let mut list = Vec::new();
    for (path, values) in m {
        list.clear();
        for value in values {
            let d = AllowedDigest::from_hex(&value)
                .ok_or_else(|| PolicyError::BadDigest { section, path: path.clone(), value: value.clone() })?;
            list.push(d);
        }
        out.set(path.as_bytes(), &list)?;
    }
    Ok(out)
}

#[derive(Deserialize)]
struct KeyList {
    #[serde(default)]
    pubkeys: Vec<String>,
    #[serde(default)]
    keyids: Vec<u32>,
}

/// `verification-keys`: a JSON string holding `{"pubkeys": [b64 DER SPKI], "keyids": [u32]}`,
/// possibly encoded twice (as Keylime stores it).
fn verification_keys(text: &str) -> Result<Keyrings, PolicyError> {
    let mut rings = Keyrings::default();
    if text.trim().is_empty() {
        return Ok(rings);
    }
    let bad = |d: String| PolicyError::BadVerificationKeys(d);
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if let serde_json::Value::String(inner) = &value {
        value = serde_json::from_str(inner).map_err(|e| bad(e.to_string()))?;
    }
    if value.is_null() {
        return Ok(rings);
    }
    let list: KeyList = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    for (i, b64) in list.pubkeys.iter().enumerate() {
        let der = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| bad(format!("key {i}: {e}")))?;
        let mut key = PublicKey::from_spki(&der).map_err(|e| bad(format!("key {i}: {e}")))?;
        if let Some(id) = list.keyids.get(i).copied().filter(|id| *id != 0) {
            key.keyid = id;
        }
        rings.add(TENANT_KEYRING, key);
    }
    Ok(rings)
}
