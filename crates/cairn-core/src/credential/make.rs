//! TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 §12.6), for the registrar.
//!
//! A seed is protected to the EK (RSA: OAEP with the EK's nameAlg and label "IDENTITY";
//! ECC: one-pass ECDH with an ephemeral key, seed = KDFe over the shared x-coordinate), then the
//! credential is encrypted under KDFa(seed, "STORAGE", AK name) with the EK's symmetric algorithm
//! (AES-CFB, IV 0) and authenticated by HMAC under KDFa(seed, "INTEGRITY") over the ciphertext
//! and the AK name. Only the TPM holding the EK, with the named AK loaded, can undo it.
//!
//! Randomness comes from the caller (`fill`), so the construction is deterministic given its
//! random bytes; only RSA-OAEP's own padding randomness is drawn inside aws-lc-rs.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_192, AES_256};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{self, OaepPublicEncryptingKey, PublicEncryptingKey};

use crate::alg::{AlgId, HashAlg};
use crate::codec::PutBe;
use crate::crypto::spki;
use crate::tpm::public::attrs;
use crate::tpm::{EccCurve, Public, PublicKey};

use super::blob::MadeCredential;
use super::kdf::{hmac_parts, kdfa, kdfe};
use super::name::ObjectName;
use super::CredentialError;

/// Ephemeral scalars drawn before giving up (a P-256 draw is out of range with p ≈ 2⁻³²).
const MAX_SCALAR_TRIES: usize = 8;

/// A source of random bytes: fills the buffer or fails.
pub type Fill<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<(), CredentialError>;

/// The operating system's randomness through aws-lc-rs; pass it as `fill`.
pub fn os_random(buf: &mut [u8]) -> Result<(), CredentialError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CredentialError::Random)
}

/// TPM2_MakeCredential: protects `credential` (at most the EK nameAlg's digest size) to `ek`
/// (a TPM2B_PUBLIC of a restricted decryption key), bound to `ak_name`.
pub fn make_credential(ek: &Public, ak_name: &ObjectName, credential: &[u8], fill: Fill<'_>) -> Result<MadeCredential, CredentialError> {
    let hash = ek.name_alg;
    if credential.len() > hash.len() {
        return Err(CredentialError::SecretTooLarge { len: credential.len(), max: hash.len() });
    }
    if !ek.has_attributes(attrs::RESTRICTED | attrs::DECRYPT) {
        return Err(CredentialError::NotAStorageKey);
    }
    let sym_bits = symmetric_bits(ek)?;
    let (seed, encrypted_secret) = match &ek.key {
        PublicKey::Rsa { .. } => rsa_seed(ek, hash, fill)?,
        PublicKey::Ecc { curve, x, y } => ecc_seed(*curve, x, y, hash, fill)?,
        PublicKey::Symmetric(_) => return Err(CredentialError::UnsupportedEk { reason: "a symmetric object cannot be an EK" }),
    };
    let id_object = protect(hash, sym_bits, &seed, ak_name, credential)?;
    Ok(MadeCredential::from_bodies(&id_object, &encrypted_secret))
}

/// AES key size of the EK's TPMT_SYM_DEF_OBJECT (which must be AES-CFB).
fn symmetric_bits(ek: &Public) -> Result<u16, CredentialError> {
    match ek.params.symmetric {
        Some((AlgId::AES, bits @ (128 | 192 | 256), AlgId::CFB)) => Ok(bits),
        Some((AlgId::AES, _, AlgId::CFB)) => Err(CredentialError::UnsupportedEk { reason: "AES key size is not 128, 192 or 256" }),
        Some(_) => Err(CredentialError::UnsupportedEk { reason: "its symmetric algorithm is not AES-CFB" }),
        None => Err(CredentialError::NotAStorageKey),
    }
}

/// The TPMS_ID_OBJECT for `seed` (TPM2B_ID_OBJECT body): TPM2B(outerHMAC) ‖ encIdentity.
pub(crate) fn protect(hash: HashAlg, sym_bits: u16, seed: &[u8], name: &ObjectName, credential: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let name = name.as_bytes();
    let sym_key = kdfa(hash, seed, "STORAGE", name, &[], u32::from(sym_bits))?;
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    enc_identity.put_tpm2b(credential);
    aes_cfb_encrypt(&sym_key, &mut enc_identity)?;
    let hmac_key = kdfa(hash, seed, "INTEGRITY", &[], &[], 8 * hash.len() as u32)?;
    let outer_hmac = hmac_parts(hash, &hmac_key, &[&enc_identity, name])?;
    let mut out = Vec::with_capacity(2 + outer_hmac.len() + enc_identity.len());
    out.put_tpm2b(&outer_hmac);
    out.extend_from_slice(&enc_identity);
    Ok(out)
}

fn aes_cfb_encrypt(key: &[u8], data: &mut [u8]) -> Result<(), CredentialError> {
    let alg = match key.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return Err(CredentialError::Crypto { op: "AES key size" }),
    };
    let key = UnboundCipherKey::new(alg, key).map_err(|_| CredentialError::Crypto { op: "AES key" })?;
    let key = EncryptingKey::cfb128(key).map_err(|_| CredentialError::Crypto { op: "AES-CFB key" })?;
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from([0u8; 16])))
        .map_err(|_| CredentialError::Crypto { op: "AES-CFB encryption" })?;
    Ok(())
}

/// RSA: a random seed of the nameAlg's size, OAEP-encrypted with label "IDENTITY\0".
fn rsa_seed(ek: &Public, hash: HashAlg, fill: Fill<'_>) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let oaep = match hash {
        HashAlg::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
        HashAlg::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
        HashAlg::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
        HashAlg::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
        HashAlg::Sm3_256 => return Err(CredentialError::UnsupportedHash(hash)),
    };
    let der = spki::to_spki_der(&ek.key)?;
    let key = PublicEncryptingKey::from_der(&der).map_err(|_| CredentialError::Crypto { op: "RSA EK public key" })?;
    let key = OaepPublicEncryptingKey::new(key).map_err(|_| CredentialError::Crypto { op: "RSA EK public key" })?;
    let mut seed = vec![0u8; hash.len()];
    fill(&mut seed)?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(oaep, &seed, &mut out, Some(b"IDENTITY\0"))
        .map_err(|_| CredentialError::Crypto { op: "RSA-OAEP encryption" })?
        .len();
    out.truncate(n);
    Ok((seed, out))
}

/// ECC: ephemeral ECDH on the EK's curve; seed = KDFe(Z.x, "IDENTITY", ephemeral x, EK x); the
/// encrypted secret is the ephemeral point as TPMS_ECC_POINT.
fn ecc_seed(curve: EccCurve, ek_x: &[u8], ek_y: &[u8], hash: HashAlg, fill: Fill<'_>) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let alg = match curve {
        EccCurve::NistP256 => &agreement::ECDH_P256,
        EccCurve::NistP384 => &agreement::ECDH_P384,
        EccCurve::Sm2P256 => return Err(CredentialError::UnsupportedEk { reason: "ECDH on SM2 is not supported" }),
    };
    let len = curve.coordinate_len();
    let mut scalar = vec![0u8; len];
    let mut private = None;
    for _ in 0..MAX_SCALAR_TRIES {
        fill(&mut scalar)?;
        if let Ok(k) = PrivateKey::from_private_key(alg, &scalar) {
            private = Some(k);
            break;
        }
    }
    let private = private.ok_or(CredentialError::Random)?;
    ecc_seed_with(&private, alg, len, ek_x, ek_y, hash)
}

fn ecc_seed_with(
    private: &PrivateKey,
    alg: &'static agreement::Algorithm,
    len: usize,
    ek_x: &[u8],
    ek_y: &[u8],
    hash: HashAlg,
) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let ephemeral = private.compute_public_key().map_err(|_| CredentialError::Crypto { op: "ECDH public key" })?;
    let point = ephemeral.as_ref();
    let (eph_x, eph_y) = (point.get(1..1 + len), point.get(1 + len..1 + 2 * len));
    let (Some(eph_x), Some(eph_y)) = (eph_x, eph_y) else { return Err(CredentialError::Crypto { op: "ECDH public key" }) };
    let mut peer = Vec::with_capacity(1 + 2 * len);
    peer.push(0x04);
    peer.extend_from_slice(ek_x);
    peer.extend_from_slice(ek_y);
    let z = agreement::agree(private, UnparsedPublicKey::new(alg, &peer), CredentialError::Crypto { op: "ECDH with the EK" }, |z| Ok(z.to_vec()))?;
    let seed = kdfe(hash, &z, "IDENTITY", eph_x, ek_x, 8 * hash.len() as u32)?;
    let mut encrypted = Vec::with_capacity(4 + 2 * len);
    encrypted.put_tpm2b(eph_x);
    encrypted.put_tpm2b(eph_y);
    Ok((seed, encrypted))
}
