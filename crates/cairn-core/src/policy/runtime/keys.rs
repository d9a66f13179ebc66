//! Keys for IMA signature checks: public keys from SubjectPublicKeyInfo or X.509 certificates,
//! their IMA key ids, keyrings, and verification of `security.ima` digital signatures (v2).
//!
//! A key's id is the last four bytes of SHA-1 over the key as IMA/evmctl see it, which is the
//! content of the SPKI `subjectPublicKey` BIT STRING (PKCS#1 RSAPublicKey, or the uncompressed EC
//! point); a certificate's Subject Key Identifier, when present, gives the id instead (as Keylime
//! does). Only a tiny DER walk is needed, done through [`Reader`].

use std::collections::BTreeMap;

use aws_lc_rs::digest as awsd;
use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use crate::codec::Reader;
use crate::error::ParseError;
use crate::ima::field::{FileDigest, FileHashAlg};

use crate::crypto::der::{self, oid};

use der::{expect, read as tlv};

/// The algorithm of a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA (PKCS#1 v1.5 signatures).
    Rsa,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
    /// ECDSA on NIST P-521.
    P521,
}

/// A public key usable for IMA signatures, with its IMA key id (keyidv2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// keyidv2.
    pub keyid: u32,
    /// Algorithm.
    pub kind: KeyKind,
    /// RSAPublicKey DER, or the uncompressed EC point.
    pub key: Vec<u8>,
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, ParseError> {
        let mut outer = Reader::new(der);
        let mut spki = expect(&mut outer, 0x30, "SubjectPublicKeyInfo")?;
        outer.finish("SubjectPublicKeyInfo")?;
        let mut alg = expect(&mut spki, 0x30, "AlgorithmIdentifier")?;
        let oid = expect(&mut alg, 0x06, "algorithm")?.rest();
        let kind = if oid == oid::RSA_ENCRYPTION {
            KeyKind::Rsa
        } else if oid == oid::EC_PUBLIC_KEY {
            let curve = expect(&mut alg, 0x06, "namedCurve")?.rest();
            match curve {
                c if c == oid::P256 => KeyKind::P256,
                c if c == oid::P384 => KeyKind::P384,
                c if c == oid::P521 => KeyKind::P521,
                _ => return Err(ParseError::text("namedCurve", "unsupported curve")),
            }
        } else {
            return Err(ParseError::text("algorithm", "not an RSA or EC public key"));
        };
        let bits = expect(&mut spki, 0x03, "subjectPublicKey")?.rest();
        let key = match bits.split_first() {
            Some((0, key)) => key.to_vec(),
            _ => return Err(ParseError::text("subjectPublicKey", "bit string with unused bits")),
        };
        let keyid = keyid_of(&key);
        Ok(PublicKey { keyid, kind, key })
    }

    /// Parses a DER X.509 certificate; the key id comes from its Subject Key Identifier if any.
    pub fn from_certificate(der: &[u8]) -> Result<PublicKey, ParseError> {
        let mut outer = Reader::new(der);
        let mut cert = expect(&mut outer, 0x30, "Certificate")?;
        let mut tbs = expect(&mut cert, 0x30, "TBSCertificate")?;
        if tbs.rest().first() == Some(&0xA0) {
            tlv(&mut tbs, "version")?;
        }
        expect(&mut tbs, 0x02, "serialNumber")?;
        expect(&mut tbs, 0x30, "signature")?;
        expect(&mut tbs, 0x30, "issuer")?;
        expect(&mut tbs, 0x30, "validity")?;
        expect(&mut tbs, 0x30, "subject")?;
        let spki_start = tbs.rest();
        expect(&mut tbs, 0x30, "subjectPublicKeyInfo")?;
        let spki_len = spki_start.len().saturating_sub(tbs.remaining());
        let mut key = PublicKey::from_spki(spki_start.get(..spki_len).unwrap_or_default())?;
        while !tbs.is_empty() {
            let (tag, mut content) = tlv(&mut tbs, "TBSCertificate extension field")?;
            if tag == 0xA3 {
                if let Some(id) = skid(&mut content)? {
                    key.keyid = id;
                }
            }
        }
        Ok(key)
    }

    /// Parses a key or certificate as Keylime accepts them in measured keyrings (DER forms).
    pub fn from_der_any(der: &[u8]) -> Option<PublicKey> {
        PublicKey::from_certificate(der).or_else(|_| PublicKey::from_spki(der)).ok()
    }
}

fn skid(ext: &mut Reader<'_>) -> Result<Option<u32>, ParseError> {
    let mut list = expect(ext, 0x30, "extensions")?;
    while !list.is_empty() {
        let mut e = expect(&mut list, 0x30, "extension")?;
        let oid = expect(&mut e, 0x06, "extnID")?.rest();
        if e.rest().first() == Some(&0x01) {
            tlv(&mut e, "critical")?;
        }
        let mut value = expect(&mut e, 0x04, "extnValue")?;
        if oid == oid::SUBJECT_KEY_ID {
            let id = expect(&mut value, 0x04, "subjectKeyIdentifier")?.rest();
            if let Some(tail) = id.len().checked_sub(4).and_then(|s| id.get(s..)) {
                return Ok(Some(tail.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))));
            }
        }
    }
    Ok(None)
}

/// keyidv2: the last four bytes of SHA-1 over the key bytes, big-endian.
pub fn keyid_of(key: &[u8]) -> u32 {
    let d = awsd::digest(&awsd::SHA1_FOR_LEGACY_USE_ONLY, key);
    d.as_ref().iter().skip(16).fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

/// Why a signature did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not an `EVM_IMA_XATTR_DIGSIG` v2 header, or its size field disagrees.
    #[error("malformed signature header")]
    Malformed,
    /// The header's hash algorithm is not the file digest's.
    #[error("signature hash algorithm differs from the file digest's")]
    HashMismatch,
    /// No key with the header's key id.
    #[error("no key with id {0:08x}")]
    UnknownKey(u32),
    /// Hash/key combination not supported.
    #[error("unsupported hash or key algorithm")]
    Unsupported,
    /// The signature is wrong.
    #[error("signature does not verify")]
    Invalid,
}

/// Named sets of keys: the tenant's verification keys and keys learned from `ima-buf` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyrings {
    rings: BTreeMap<String, Vec<PublicKey>>,
}

impl Keyrings {
    /// Adds `key` to keyring `name` (a key with the same id is replaced).
    pub fn add(&mut self, name: &str, key: PublicKey) {
        let ring = self.rings.entry(name.to_string()).or_default();
        ring.retain(|k| k.keyid != key.keyid);
        ring.push(key);
    }

    /// True when no keyring holds a key.
    pub fn is_empty(&self) -> bool {
        self.rings.values().all(Vec::is_empty)
    }

    /// Number of keys in `name`.
    pub fn count(&self, name: &str) -> usize {
        self.rings.get(name).map_or(0, Vec::len)
    }

    fn find(&self, keyid: u32) -> Option<&PublicKey> {
        self.rings.values().flatten().find(|k| k.keyid == keyid)
    }

    /// Verifies an IMA signature (`signature_v2_hdr` ‖ signature) over `digest`, with any key.
    pub fn verify(&self, signature: &[u8], digest: &FileDigest<'_>) -> Result<(), SignatureError> {
        let mut r = Reader::new(signature);
        let (Ok(kind), Ok(version), Ok(hash_algo), Ok(keyid), Ok(size)) =
            (r.u8("type"), r.u8("version"), r.u8("hash_algo"), r.u32_be("keyid"), r.u16_be("sig_size"))
        else {
            return Err(SignatureError::Malformed);
        };
        if !(kind == 3 || kind == 5) || version != 2 || usize::from(size) != r.remaining() {
            return Err(SignatureError::Malformed);
        }
        let file_alg = digest.alg().ok_or(SignatureError::Unsupported)?;
        if file_alg.ima_hash_algo() != hash_algo {
            return Err(SignatureError::HashMismatch);
        }
        let key = self.find(keyid).ok_or(SignatureError::UnknownKey(keyid))?;
        let (alg, dalg) = algorithms(key.kind, file_alg).ok_or(SignatureError::Unsupported)?;
        let d = awsd::Digest::import_less_safe(digest.as_bytes(), dalg).map_err(|_| SignatureError::Unsupported)?;
        UnparsedPublicKey::new(alg, &key.key).verify_digest(&d, r.rest()).map_err(|_| SignatureError::Invalid)
    }
}

fn algorithms(
    kind: KeyKind,
    h: FileHashAlg,
) -> Option<(&'static dyn VerificationAlgorithm, &'static awsd::Algorithm)> {
    let d: &'static awsd::Algorithm = match h {
        FileHashAlg::Sha1 => &awsd::SHA1_FOR_LEGACY_USE_ONLY,
        FileHashAlg::Sha256 => &awsd::SHA256,
        FileHashAlg::Sha384 => &awsd::SHA384,
        FileHashAlg::Sha512 => &awsd::SHA512,
        FileHashAlg::Md5 | FileHashAlg::Sm3 => return None,
    };
    let v: &'static dyn VerificationAlgorithm = match (kind, h) {
        (KeyKind::Rsa, FileHashAlg::Sha1) => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (KeyKind::Rsa, FileHashAlg::Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa, FileHashAlg::Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa, FileHashAlg::Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (KeyKind::P256, FileHashAlg::Sha1) => &sig::ECDSA_P256_SHA1_ASN1,
        (KeyKind::P256, FileHashAlg::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (KeyKind::P256, FileHashAlg::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (KeyKind::P256, FileHashAlg::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
        (KeyKind::P384, FileHashAlg::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (KeyKind::P384, FileHashAlg::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        (KeyKind::P384, FileHashAlg::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
        (KeyKind::P521, FileHashAlg::Sha1) => &sig::ECDSA_P521_SHA1_ASN1,
        (KeyKind::P521, FileHashAlg::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
        (KeyKind::P521, FileHashAlg::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
        (KeyKind::P521, FileHashAlg::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
        _ => return None,
    };
    Some((v, d))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    fn header(keyid: u32, hash_algo: u8, sig: &[u8]) -> Vec<u8> {
        let mut v = vec![3, 2, hash_algo];
        v.extend_from_slice(&keyid.to_be_bytes());
        v.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        v.extend_from_slice(sig);
        v
    }

    #[test]
    fn ecdsa_p256_digsig_verifies_by_keyid() {
        let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let spki = kp.public_key().as_der().unwrap();
        let key = PublicKey::from_spki(spki.as_ref()).unwrap();
        assert_eq!(key.kind, KeyKind::P256);
        assert_eq!(key.keyid, keyid_of(kp.public_key().as_ref()));
        let content = b"#!/bin/sh\necho hello\n";
        let raw_sig = kp.sign(&SystemRandom::new(), content).unwrap();
        let file_digest = awsd::digest(&awsd::SHA256, content);
        let d = FileDigest::new(b"sha256", file_digest.as_ref(), "d-ng").unwrap();
        let mut rings = Keyrings::default();
        rings.add("tenant", key.clone());
        let good = header(key.keyid, 4, raw_sig.as_ref());
        assert_eq!(rings.verify(&good, &d), Ok(()));
        assert_eq!(rings.verify(&header(key.keyid ^ 1, 4, raw_sig.as_ref()), &d), Err(SignatureError::UnknownKey(key.keyid ^ 1)));
        assert_eq!(rings.verify(&header(key.keyid, 6, raw_sig.as_ref()), &d), Err(SignatureError::HashMismatch));
        let mut bad = good.clone();
        let last = bad.len() - 3;
        bad[last] ^= 1;
        assert_eq!(rings.verify(&bad, &d), Err(SignatureError::Invalid));
        assert_eq!(rings.verify(&good[..good.len() - 1], &d), Err(SignatureError::Malformed));
    }

    #[test]
    fn rsa_pkcs1_digsig_verifies() {
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let spki = kp.public_key().as_der().unwrap();
        let key = PublicKey::from_spki(spki.as_ref()).unwrap();
        assert_eq!(key.kind, KeyKind::Rsa);
        let content = b"binary";
        let mut raw = vec![0u8; kp.public_modulus_len()];
        kp.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), content, &mut raw).unwrap();
        let file_digest = awsd::digest(&awsd::SHA256, content);
        let d = FileDigest::new(b"sha256", file_digest.as_ref(), "d-ng").unwrap();
        let mut rings = Keyrings::default();
        rings.add("tenant", key.clone());
        assert_eq!(rings.verify(&header(key.keyid, 4, &raw), &d), Ok(()));
    }

    #[test]
    fn der_walk_refuses_garbage() {
        assert!(PublicKey::from_spki(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(PublicKey::from_spki(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(PublicKey::from_der_any(b"").is_none());
        assert!(PublicKey::from_certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
    }
}
