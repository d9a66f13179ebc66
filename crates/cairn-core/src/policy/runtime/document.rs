//! Keylime's runtime policy JSON (format version 1), accepted unchanged, and its compiled form.
//!
//! The JSON is parsed once into [`RuntimePolicy`]: digests become bytes in hash maps keyed by path
//! (O(1) per entry), the exclude regexes one anchored [`Excludes`] set, the verification keys a
//! [`Keyrings`]. Missing sections default to empty, so Keylime's minimal policies also load.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::Deserialize;

use crate::alg::{HashAlg, MAX_DIGEST_LEN};
use crate::policy::runtime::excludes::Excludes;
use crate::policy::runtime::keys::{Keyrings, PublicKey};
use crate::policy::runtime::PolicyError;

/// Name of the keyring holding the tenant's verification keys.
pub const TENANT_KEYRING: &str = "tenant_keyring";

/// A digest allowed by a policy (any length up to 64 bytes; Keylime compares hex only).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedDigest {
    len: u8,
    bytes: [u8; MAX_DIGEST_LEN],
}

impl AllowedDigest {
    /// Parses hex (20–64 bytes, as Keylime's schema allows: 40–128 hex digits).
    pub fn from_hex(s: &str) -> Option<AllowedDigest> {
        let s = s.trim();
        let n = s.len() / 2;
        if s.len() % 2 != 0 || !(20..=MAX_DIGEST_LEN).contains(&n) {
            return None;
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        hex::decode_to_slice(s, bytes.get_mut(..n)?).ok()?;
        Some(AllowedDigest { len: n as u8, bytes })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&self.bytes)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl std::fmt::Debug for AllowedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The digests allowed for one path; the first is stored inline, because almost every path has
/// exactly one and a lookup should touch as little memory as possible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestList {
    first: Option<AllowedDigest>,
    rest: Vec<AllowedDigest>,
}

impl DigestList {
    /// The digests.
    pub fn iter(&self) -> impl Iterator<Item = &AllowedDigest> {
        self.first.iter().chain(self.rest.iter())
    }
    /// Number of digests.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
    /// True when no digest is allowed (the path is listed with an empty list).
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
    /// True when `d` is allowed.
    pub fn contains(&self, d: &[u8]) -> bool {
        self.iter().any(|a| a.as_bytes() == d)
    }
    fn push(&mut self, d: AllowedDigest) {
        if self.iter().any(|a| *a == d) {
            return;
        }
        match self.first {
            None => self.first = Some(d),
            Some(_) => self.rest.push(d),
        }
    }
}

/// A fast multiplicative hash for path lookups. Keys come from the (trusted) policy; the log only
/// looks up, and colliding lookups cannot degrade the table, so a DoS-resistant hash buys nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathHasher(u64);

impl std::hash::Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

type PathBuild = std::hash::BuildHasherDefault<PathHasher>;

/// Path (or keyring / buffer name) → allowed digests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestMap(HashMap<Box<[u8]>, DigestList, PathBuild>);

impl DigestMap {
    /// Allowed digests of `path`, `None` when the path is not listed.
    pub fn get(&self, path: &[u8]) -> Option<&DigestList> {
        self.0.get(path)
    }

    /// Adds a digest for `path`.
    pub fn insert(&mut self, path: &str, d: AllowedDigest) {
        self.0.entry(path.as_bytes().into()).or_default().push(d);
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no path is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn from_json(section: &'static str, m: BTreeMap<String, Vec<String>>) -> Result<DigestMap, PolicyError> {
        let mut out = DigestMap(HashMap::with_capacity_and_hasher(m.len(), PathBuild::default()));
        for (path, list) in m {
            for value in list {
                let d = AllowedDigest::from_hex(&value)
                    .ok_or_else(|| PolicyError::BadDigest { section, path: path.clone(), value: value.clone() })?;
                out.insert(&path, d);
            }
            out.0.entry(path.into_bytes().into_boxed_slice()).or_default();
        }
        Ok(out)
    }
}

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
            digests: DigestMap::from_json("digests", doc.digests)?,
            keyrings: DigestMap::from_json("keyrings", doc.keyrings)?,
            ima_buf: DigestMap::from_json("ima-buf", doc.ima_buf)?,
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
