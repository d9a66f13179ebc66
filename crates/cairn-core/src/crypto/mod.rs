//! Signature verification for TPM keys: RSASSA, RSAPSS, ECDSA and SM2.
//!
//! A [`VerifyingKey`] is prepared once per key (the verifier keeps one per agent) so the per-quote
//! cost is the signature operation alone. RSA and ECDSA go through aws-lc-rs; SM2 through
//! RustCrypto's prehash verifier, because a TPM's SM2 signature is over H(message) with no ZA
//! prefix. RSA-PSS signatures are accepted with either salt length TPMs use (the digest length,
//! or the maximum the key allows); both are valid PSS and neither weakens the check.

pub mod der;
pub mod spki;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use sm2::dsa::signature::hazmat::PrehashVerifier;
use thiserror::Error;

use crate::alg::HashAlg;
use crate::tpm::signature::SignatureValue;
use crate::tpm::{EccCurve, Public, PublicKey, SigScheme, Signature};

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is of a family the key cannot make (an ECDSA signature for an RSA key…).
    #[error("a {key} key cannot make a {scheme} signature")]
    KeyTypeMismatch {
        /// The key, e.g. `rsa2048`.
        key: String,
        /// The signature scheme.
        scheme: SigScheme,
    },
    /// The combination is valid TPM-wise but Cairn cannot check it.
    #[error("cannot verify {scheme} with {hash} on a {key} key")]
    Unsupported {
        /// Scheme.
        scheme: SigScheme,
        /// Hash.
        hash: HashAlg,
        /// Key.
        key: String,
    },
    /// The key bytes are not a valid key for the scheme.
    #[error("the {key} public key is not valid for {scheme}")]
    BadKey {
        /// Key.
        key: String,
        /// Scheme.
        scheme: SigScheme,
    },
    /// The signature does not verify.
    #[error("the {scheme}/{hash} signature does not verify with this key")]
    Invalid {
        /// Scheme.
        scheme: SigScheme,
        /// Hash.
        hash: HashAlg,
    },
}

const PSS256_MAX: RsaParameters = sig::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(sig::RsaPssSaltLength::Max);
const PSS384_MAX: RsaParameters = sig::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(sig::RsaPssSaltLength::Max);
const PSS512_MAX: RsaParameters = sig::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(sig::RsaPssSaltLength::Max);
static PSS256_MAX_S: RsaParameters = PSS256_MAX;
static PSS384_MAX_S: RsaParameters = PSS384_MAX;
static PSS512_MAX_S: RsaParameters = PSS512_MAX;

/// A public key ready to verify TPM signatures.
pub struct VerifyingKey {
    key: PublicKey,
    key_name: String,
    /// The key parsed for its own scheme (or the most likely one), reused for every signature.
    prepared: Option<(SigScheme, HashAlg, Prepared)>,
}

enum Prepared {
    Aws(Vec<ParsedPublicKey>),
    Sm2(Box<sm2::dsa::VerifyingKey>),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").field("key", &self.key_name).finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// From a TPM public area; the key's own scheme is prepared.
    pub fn from_public(p: &Public) -> VerifyingKey {
        let default = p.signing_scheme().or_else(|| default_scheme(&p.key));
        VerifyingKey::new(p.key.clone(), default)
    }

    /// From a bare key (e.g. a PEM file); the usual scheme for its type is prepared.
    pub fn from_key(key: PublicKey) -> VerifyingKey {
        let default = default_scheme(&key);
        VerifyingKey::new(key, default)
    }

    fn new(key: PublicKey, scheme: Option<(SigScheme, HashAlg)>) -> VerifyingKey {
        let key_name = match &key {
            PublicKey::Rsa { n, .. } => format!("rsa{}", strip(n).len() * 8),
            PublicKey::Ecc { curve, .. } => curve.key_name().to_string(),
            PublicKey::Symmetric(_) => "symmetric".into(),
        };
        let prepared = scheme.and_then(|(s, h)| prepare(&key, s, h).ok().map(|p| (s, h, p)));
        VerifyingKey { key, key_name, prepared }
    }

    /// The key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// Keylime-style name, e.g. `rsa2048`.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Verifies `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let (scheme, hash) = (signature.scheme, signature.hash);
        let fresh;
        let prepared = match &self.prepared {
            Some((s, h, p)) if *s == scheme && *h == hash => p,
            _ => {
                fresh = prepare(&self.key, scheme, hash).map_err(|e| self.named(e))?;
                &fresh
            }
        };
        let invalid = SignatureError::Invalid { scheme, hash };
        match (prepared, &signature.value) {
            (Prepared::Aws(keys), SignatureValue::Rsa(s)) => {
                if keys.iter().any(|k| k.verify_sig(message, s).is_ok()) {
                    Ok(())
                } else {
                    Err(invalid)
                }
            }
            (Prepared::Aws(keys), SignatureValue::Ecc { r, s }) => {
                let PublicKey::Ecc { curve, .. } = &self.key else { return Err(invalid) };
                let der = ecdsa_der(r, s, curve.coordinate_len()).ok_or(invalid.clone())?;
                if keys.iter().any(|k| k.verify_sig(message, &der).is_ok()) {
                    Ok(())
                } else {
                    Err(invalid)
                }
            }
            (Prepared::Sm2(k), SignatureValue::Ecc { r, s }) => {
                let (Some(r), Some(s)) = (fixed32(r), fixed32(s)) else { return Err(invalid) };
                let sig = sm2::dsa::Signature::from_scalars(r, s).map_err(|_| invalid.clone())?;
                let e = hash.hash(message);
                k.verify_prehash(e.as_bytes(), &sig).map_err(|_| invalid)
            }
            _ => Err(SignatureError::KeyTypeMismatch { key: self.key_name.clone(), scheme }),
        }
    }

    fn named(&self, e: PrepError) -> SignatureError {
        match e {
            PrepError::Mismatch(scheme) => SignatureError::KeyTypeMismatch { key: self.key_name.clone(), scheme },
            PrepError::Unsupported(scheme, hash) => SignatureError::Unsupported { scheme, hash, key: self.key_name.clone() },
            PrepError::BadKey(scheme) => SignatureError::BadKey { key: self.key_name.clone(), scheme },
        }
    }
}

enum PrepError {
    Mismatch(SigScheme),
    Unsupported(SigScheme, HashAlg),
    BadKey(SigScheme),
}

fn default_scheme(key: &PublicKey) -> Option<(SigScheme, HashAlg)> {
    match key {
        PublicKey::Rsa { .. } => Some((SigScheme::Rsassa, HashAlg::Sha256)),
        PublicKey::Ecc { curve: EccCurve::Sm2P256, .. } => Some((SigScheme::Sm2, HashAlg::Sha256)),
        PublicKey::Ecc { curve: EccCurve::NistP384, .. } => Some((SigScheme::Ecdsa, HashAlg::Sha384)),
        PublicKey::Ecc { .. } => Some((SigScheme::Ecdsa, HashAlg::Sha256)),
        PublicKey::Symmetric(_) => None,
    }
}

fn prepare(key: &PublicKey, scheme: SigScheme, hash: HashAlg) -> Result<Prepared, PrepError> {
    let unsupported = PrepError::Unsupported(scheme, hash);
    match (key, scheme) {
        (PublicKey::Rsa { n, e }, SigScheme::Rsassa | SigScheme::Rsapss) => {
            let params: &[&'static RsaParameters] = match (scheme, hash) {
                (SigScheme::Rsassa, HashAlg::Sha1) => &[&sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY],
                (SigScheme::Rsassa, HashAlg::Sha256) => &[&sig::RSA_PKCS1_2048_8192_SHA256],
                (SigScheme::Rsassa, HashAlg::Sha384) => &[&sig::RSA_PKCS1_2048_8192_SHA384],
                (SigScheme::Rsassa, HashAlg::Sha512) => &[&sig::RSA_PKCS1_2048_8192_SHA512],
                (SigScheme::Rsapss, HashAlg::Sha256) => &[&sig::RSA_PSS_2048_8192_SHA256, &PSS256_MAX_S],
                (SigScheme::Rsapss, HashAlg::Sha384) => &[&sig::RSA_PSS_2048_8192_SHA384, &PSS384_MAX_S],
                (SigScheme::Rsapss, HashAlg::Sha512) => &[&sig::RSA_PSS_2048_8192_SHA512, &PSS512_MAX_S],
                _ => return Err(unsupported),
            };
            let e_bytes = e.to_be_bytes();
            let comps = RsaPublicKeyComponents { n: strip(n), e: strip(&e_bytes) };
            let keys = params
                .iter()
                .map(|p| comps.to_parsed_public_key(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| PrepError::BadKey(scheme))?;
            Ok(Prepared::Aws(keys))
        }
        (PublicKey::Ecc { curve, x, y }, SigScheme::Ecdsa) => {
            let alg: &'static sig::EcdsaVerificationAlgorithm = match (curve, hash) {
                (EccCurve::NistP256, HashAlg::Sha1) => &sig::ECDSA_P256_SHA1_ASN1,
                (EccCurve::NistP256, HashAlg::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                (EccCurve::NistP256, HashAlg::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                (EccCurve::NistP256, HashAlg::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
                (EccCurve::NistP384, HashAlg::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                (EccCurve::NistP384, HashAlg::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                (EccCurve::NistP384, HashAlg::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
                (EccCurve::Sm2P256, _) => return Err(PrepError::Mismatch(scheme)),
                _ => return Err(unsupported),
            };
            let point = [&[0x04u8][..], x, y].concat();
            let k = ParsedPublicKey::new(alg, point).map_err(|_| PrepError::BadKey(scheme))?;
            Ok(Prepared::Aws(vec![k]))
        }
        (PublicKey::Ecc { curve: EccCurve::Sm2P256, x, y }, SigScheme::Sm2) => {
            if hash.len() != 32 {
                return Err(unsupported);
            }
            let point = [&[0x04u8][..], x, y].concat();
            let k = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &point)
                .map_err(|_| PrepError::BadKey(scheme))?;
            Ok(Prepared::Sm2(Box::new(k)))
        }
        _ => Err(PrepError::Mismatch(scheme)),
    }
}

fn strip(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or(&[])
}

fn fixed32(v: &[u8]) -> Option<[u8; 32]> {
    let v = strip(v);
    let mut out = [0u8; 32];
    let start = 32usize.checked_sub(v.len())?;
    out.get_mut(start..)?.copy_from_slice(v);
    Some(out)
}

/// ECDSA-Sig-Value DER from the TPM's r and s.
fn ecdsa_der(r: &[u8], s: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let (r, s) = (strip(r), strip(s));
    if r.len() > field_len || s.len() > field_len || r.is_empty() || s.is_empty() {
        return None;
    }
    let mut ints = Vec::with_capacity(2 * field_len + 8);
    for v in [r, s] {
        let mut c = Vec::with_capacity(v.len() + 1);
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            c.push(0);
        }
        c.extend_from_slice(v);
        der::write(0x02, &c, &mut ints);
    }
    let mut out = Vec::with_capacity(ints.len() + 3);
    der::write(0x30, &ints, &mut out);
    Some(out)
}
