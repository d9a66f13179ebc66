//! The agent's TPM identity — EK, EK certificate, AK — and its uuid.
//!
//! The EK is the TPM's (persisted or re-created from the TCG template, so always the same); the
//! AK is persisted at a handle and found again after a restart; the uuid is configured, derived
//! from the EK, or generated once and kept in the state directory. So a restarted agent presents
//! the same (uuid, EK, AK) and re-registers the same identity, which a registrar accepts.
//!
//! The AK and EK public areas are also written to `ak.pub` and `ek.pub` (TPM2B_PUBLIC) in the
//! state directory, for operators and tests to check quotes with.

use std::fs;
use std::path::Path;

use cairn_core::crypto::spki::{pem_encode, to_spki_der};
use cairn_core::tpm::Public;
use cairn_core::HashAlg;
use cairn_tpm::{Ak, AkSpec, Ek};

use crate::error::AgentError;
use crate::keys::write_public;
use crate::tpm_owner::TpmOwner;

/// File holding a generated uuid.
pub const UUID_FILE: &str = "uuid";
/// File holding the AK's TPM2B_PUBLIC.
pub const AK_PUB_FILE: &str = "ak.pub";
/// File holding the EK's TPM2B_PUBLIC.
pub const EK_PUB_FILE: &str = "ek.pub";
/// Longest uuid Keylime's registrar stores.
const MAX_UUID: usize = 80;

/// How the agent's uuid is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UuidSource {
    /// hex(SHA-256(EK public key, SubjectPublicKeyInfo PEM)) — Keylime's `hash_ek`.
    HashEk,
    /// A random uuid, generated once and kept in `state_dir/uuid`.
    Generate,
    /// This one.
    Literal(String),
}

impl UuidSource {
    /// `hash_ek`, `generate`, or a literal of 1–80 characters from `[A-Za-z0-9_.-]`.
    pub fn parse(s: &str) -> Result<UuidSource, String> {
        match s {
            "hash_ek" => Ok(UuidSource::HashEk),
            "generate" => Ok(UuidSource::Generate),
            other => check_uuid(other).map(|()| UuidSource::Literal(other.to_owned())),
        }
    }
}

fn check_uuid(s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if s.is_empty() || s.len() > MAX_UUID || !s.chars().all(ok) {
        return Err(format!("{s:?} is not hash_ek, generate, or 1-{MAX_UUID} characters of [A-Za-z0-9_.-]"));
    }
    Ok(())
}

/// What the TPM gives the agent.
#[derive(Clone, Debug)]
pub struct TpmIdentity {
    /// The EK.
    pub ek: Ek,
    /// Its certificate as stored in NV, if any.
    pub ek_cert: Option<Vec<u8>>,
    /// The AK.
    pub ak: Ak,
    /// The EK, parsed.
    pub ek_public: Public,
    /// The AK, parsed.
    pub ak_public: Public,
}

impl TpmIdentity {
    /// Reads the EK and its certificate, loads or creates the AK (one TPM job), and records both
    /// public areas in `state_dir`.
    pub async fn load(owner: &TpmOwner, spec: AkSpec, state_dir: &Path) -> Result<TpmIdentity, AgentError> {
        let (ek, ek_cert, ak) = owner
            .run(move |tpm| {
                let ek = tpm.ek(spec.ek)?;
                let cert = tpm.ek_certificate(spec.ek)?;
                let ak = tpm.load_or_create_ak(spec)?;
                Ok((ek, cert, ak))
            })
            .await?;
        let parse = |what, b: &[u8]| Public::parse_tpm2b(b).map_err(|source| AgentError::Parse { what, source });
        let ek_public = parse("EK TPM2B_PUBLIC", &ek.public)?;
        let ak_public = parse("AK TPM2B_PUBLIC", &ak.public)?;
        write_public(&state_dir.join(AK_PUB_FILE), &ak.public)?;
        write_public(&state_dir.join(EK_PUB_FILE), &ek.public)?;
        Ok(TpmIdentity { ek, ek_cert, ak, ek_public, ak_public })
    }

    /// The EK's Keylime algorithm name (`rsa2048`, `ecc256`).
    pub fn enc_alg(&self) -> String {
        self.ek_public.key_name()
    }

    /// The AK's signature scheme name (`rsassa`, `ecdsa`, …).
    pub fn sign_alg(&self) -> &'static str {
        self.ak_public.signing_scheme().map_or("null", |(s, _)| s.name())
    }

    /// The quote hash (the AK's signing hash).
    pub fn hash_alg(&self) -> HashAlg {
        self.ak.hash
    }

    /// The uuid `source` names for this identity.
    pub fn uuid(&self, source: &UuidSource, state_dir: &Path) -> Result<String, AgentError> {
        match source {
            UuidSource::Literal(s) => Ok(s.clone()),
            UuidSource::HashEk => {
                let der = to_spki_der(&self.ek_public.key).map_err(|source| AgentError::Parse { what: "EK public key", source })?;
                Ok(HashAlg::Sha256.hash(pem_encode("PUBLIC KEY", &der).as_bytes()).to_hex())
            }
            UuidSource::Generate => generated_uuid(state_dir),
        }
    }
}

/// The uuid in `state_dir/uuid`, or a new random (version 4) one written there.
fn generated_uuid(state_dir: &Path) -> Result<String, AgentError> {
    let path = state_dir.join(UUID_FILE);
    if path.exists() {
        let s = fs::read_to_string(&path).map_err(AgentError::io(&path))?;
        let s = s.trim().to_owned();
        check_uuid(&s).map_err(|why| AgentError::Config(format!("{}: {why}", path.display())))?;
        return Ok(s);
    }
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| AgentError::Keys("no randomness for a uuid".into()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let [a0, a1, a2, a3, b0, b1, c0, c1, d0, d1, e0, e1, e2, e3, e4, e5] = b;
    let h = |x: &[u8]| hex::encode(x);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        h(&[a0, a1, a2, a3]),
        h(&[b0, b1]),
        h(&[c0, c1]),
        h(&[d0, d1]),
        h(&[e0, e1, e2, e3, e4, e5])
    );
    write_public(&path, uuid.as_bytes())?;
    Ok(uuid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uuid_sources() {
        assert_eq!(UuidSource::parse("hash_ek"), Ok(UuidSource::HashEk));
        assert_eq!(UuidSource::parse("d432fbb3-d2f1-4a97-9ef7-75bd81c00000"), Ok(UuidSource::Literal("d432fbb3-d2f1-4a97-9ef7-75bd81c00000".into())));
        assert!(UuidSource::parse("").is_err());
        assert!(UuidSource::parse("a/b").is_err());
        assert!(UuidSource::parse(&"a".repeat(81)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let a = generated_uuid(dir.path()).unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert_eq!(generated_uuid(dir.path()).unwrap(), a);
    }
}
