//! Certificate signature algorithms (RFC 4055, RFC 5758) and their verification with aws-lc-rs.
//!
//! Decides which (algorithm, key) pairs a chain may use: RSA PKCS#1 v1.5 with SHA-1/256/384/512,
//! RSA-PSS with MGF1 over the same hash and a salt of the hash length, and ECDSA on P-256/P-384
//! with SHA-256/384/512 (SHA-1 too: old TPM CAs used it). Everything else is reported as
//! unsupported, never silently accepted.

use std::fmt;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use crate::alg::HashAlg;
use crate::codec::Reader;
use crate::error::ParseError;

use super::der::{self, tag};

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const RSA_PREFIX: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
const ECDSA_PREFIX: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04];

/// A certificate's signatureAlgorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 with the hash.
    RsaPkcs1(HashAlg),
    /// RSASSA-PSS, MGF1 with the same hash, salt length in bytes.
    RsaPss {
        /// Message and MGF1 hash.
        hash: HashAlg,
        /// saltLength.
        salt_len: u32,
    },
    /// ECDSA with the hash.
    Ecdsa(HashAlg),
    /// Anything else (dotted OID), kept so it can be reported.
    Other(String),
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureAlgorithm::RsaPkcs1(h) => write!(f, "{h}WithRSAEncryption"),
            SignatureAlgorithm::RsaPss { hash, salt_len } => write!(f, "rsassa-pss/{hash}/salt {salt_len}"),
            SignatureAlgorithm::Ecdsa(h) => write!(f, "ecdsa-with-{h}"),
            SignatureAlgorithm::Other(oid) => write!(f, "{oid}"),
        }
    }
}

fn hash_from_oid(oid: &[u8]) -> Option<HashAlg> {
    Some(match oid {
        [0x2B, 0x0E, 0x03, 0x02, 0x1A] => HashAlg::Sha1,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => HashAlg::Sha256,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => HashAlg::Sha384,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => HashAlg::Sha512,
        _ => return None,
    })
}

/// Reads a hash AlgorithmIdentifier (parameters NULL or absent).
fn read_hash_alg(r: &mut Reader<'_>, field: &'static str) -> Result<Option<HashAlg>, ParseError> {
    let (mut s, _) = der::enter(r, tag::SEQUENCE, field)?;
    let oid = der::expect(&mut s, tag::OID, field)?.content;
    Ok(hash_from_oid(oid))
}

impl SignatureAlgorithm {
    /// Reads an AlgorithmIdentifier used as a signature algorithm.
    pub(crate) fn read(r: &mut Reader<'_>, field: &'static str) -> Result<(SignatureAlgorithm, Vec<u8>), ParseError> {
        let (mut s, raw) = der::enter(r, tag::SEQUENCE, field)?;
        let oid = der::expect(&mut s, tag::OID, field)?.content;
        let alg = match oid {
            [p @ .., last] if p == RSA_PREFIX => match last {
                0x05 => SignatureAlgorithm::RsaPkcs1(HashAlg::Sha1),
                0x0B => SignatureAlgorithm::RsaPkcs1(HashAlg::Sha256),
                0x0C => SignatureAlgorithm::RsaPkcs1(HashAlg::Sha384),
                0x0D => SignatureAlgorithm::RsaPkcs1(HashAlg::Sha512),
                0x0A => read_pss_params(&mut s)?.unwrap_or_else(|| SignatureAlgorithm::Other(der::oid_string(oid))),
                _ => SignatureAlgorithm::Other(der::oid_string(oid)),
            },
            [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01] => SignatureAlgorithm::Ecdsa(HashAlg::Sha1),
            [p @ .., 0x03, last] if p == ECDSA_PREFIX => match last {
                0x02 => SignatureAlgorithm::Ecdsa(HashAlg::Sha256),
                0x03 => SignatureAlgorithm::Ecdsa(HashAlg::Sha384),
                0x04 => SignatureAlgorithm::Ecdsa(HashAlg::Sha512),
                _ => SignatureAlgorithm::Other(der::oid_string(oid)),
            },
            _ => SignatureAlgorithm::Other(der::oid_string(oid)),
        };
        Ok((alg, raw.to_vec()))
    }
}

/// RSASSA-PSS-params; `None` when the MGF is not MGF1 over the message hash.
fn read_pss_params(r: &mut Reader<'_>) -> Result<Option<SignatureAlgorithm>, ParseError> {
    let (mut s, _) = der::enter(r, tag::SEQUENCE, "RSASSA-PSS-params")?;
    let mut hash = Some(HashAlg::Sha1);
    let mut mgf_hash = Some(HashAlg::Sha1);
    let mut salt_len = 20;
    if der::peek_is(&s, 0xA0) {
        let (mut h, _) = der::enter(&mut s, 0xA0, "RSASSA-PSS-params.hashAlgorithm")?;
        hash = read_hash_alg(&mut h, "RSASSA-PSS-params.hashAlgorithm")?;
    }
    if der::peek_is(&s, 0xA1) {
        let (mut m, _) = der::enter(&mut s, 0xA1, "RSASSA-PSS-params.maskGenAlgorithm")?;
        let (mut mgf, _) = der::enter(&mut m, tag::SEQUENCE, "MaskGenAlgorithm")?;
        let oid = der::expect(&mut mgf, tag::OID, "MaskGenAlgorithm.algorithm")?.content;
        mgf_hash = if oid == [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x08] {
            read_hash_alg(&mut mgf, "MaskGenAlgorithm.parameters")?
        } else {
            None
        };
    }
    if der::peek_is(&s, 0xA2) {
        let (mut l, _) = der::enter(&mut s, 0xA2, "RSASSA-PSS-params.saltLength")?;
        salt_len = der::small_uint(&mut l, "RSASSA-PSS-params.saltLength")?;
    }
    Ok(match (hash, mgf_hash) {
        (Some(h), Some(m)) if h == m => Some(SignatureAlgorithm::RsaPss { hash: h, salt_len }),
        _ => None,
    })
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigCheck {
    /// The algorithm/key pair is not one Cairn verifies.
    Unsupported,
    /// The signature is wrong (or the key unusable).
    Invalid,
}

/// Verifies `signature` over `message` with the key in `spki` (DER SubjectPublicKeyInfo).
pub(crate) fn verify(alg: &SignatureAlgorithm, spki: &[u8], message: &[u8], signature: &[u8]) -> Result<(), SigCheck> {
    let (key_alg, curve, key) = split_spki(spki).map_err(|_| SigCheck::Invalid)?;
    let params: &'static dyn VerificationAlgorithm = match (alg, key_alg, curve) {
        (SignatureAlgorithm::RsaPkcs1(h), OID_RSA, _) => match h {
            HashAlg::Sha1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            HashAlg::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            HashAlg::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            HashAlg::Sm3_256 => return Err(SigCheck::Unsupported),
        },
        (SignatureAlgorithm::RsaPss { hash, salt_len }, OID_RSA, _) if *salt_len as usize == hash.len() => match hash {
            HashAlg::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
            HashAlg::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
            HashAlg::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
            _ => return Err(SigCheck::Unsupported),
        },
        (SignatureAlgorithm::Ecdsa(h), OID_EC, Some(OID_P256)) => match h {
            HashAlg::Sha1 => &sig::ECDSA_P256_SHA1_ASN1,
            HashAlg::Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
            HashAlg::Sha384 => &sig::ECDSA_P256_SHA384_ASN1,
            HashAlg::Sha512 => &sig::ECDSA_P256_SHA512_ASN1,
            HashAlg::Sm3_256 => return Err(SigCheck::Unsupported),
        },
        (SignatureAlgorithm::Ecdsa(h), OID_EC, Some(OID_P384)) => match h {
            HashAlg::Sha256 => &sig::ECDSA_P384_SHA256_ASN1,
            HashAlg::Sha384 => &sig::ECDSA_P384_SHA384_ASN1,
            HashAlg::Sha512 => &sig::ECDSA_P384_SHA512_ASN1,
            _ => return Err(SigCheck::Unsupported),
        },
        _ => return Err(SigCheck::Unsupported),
    };
    UnparsedPublicKey::new(params, key).verify(message, signature).map_err(|_| SigCheck::Invalid)
}

/// (algorithm OID, named curve OID for EC keys, key bytes: PKCS#1 RSAPublicKey or EC point).
type SpkiParts<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

fn split_spki(spki: &[u8]) -> Result<SpkiParts<'_>, ParseError> {
    let mut r = Reader::new(spki);
    let (mut s, _) = der::enter(&mut r, tag::SEQUENCE, "SubjectPublicKeyInfo")?;
    let (mut a, _) = der::enter(&mut s, tag::SEQUENCE, "SubjectPublicKeyInfo.algorithm")?;
    let oid = der::expect(&mut a, tag::OID, "SubjectPublicKeyInfo.algorithm")?.content;
    let curve = if der::peek_is(&a, tag::OID) { Some(der::expect(&mut a, tag::OID, "namedCurve")?.content) } else { None };
    let key = der::octet_aligned_bits(&mut s, "subjectPublicKey")?;
    Ok((oid, curve, key))
}
