//! The TPM's key derivation functions (TPM 2.0 Part 1 §11.4.10): KDFa and KDFe.
//!
//! KDFa is SP 800-108 counter mode with HMAC: block i = HMAC(key, [i]₃₂ ‖ label ‖ 00 ‖ contextU ‖
//! contextV ‖ [bits]₃₂), concatenated and cut to `bits`. KDFe is the SP 800-56A concatenation
//! KDF: block i = H([i]₃₂ ‖ Z ‖ label ‖ 00 ‖ partyU ‖ partyV). Labels are given without their
//! terminating NUL; it is always added, as the TPM does. When `bits` is not a multiple of 8 the
//! surplus high bits of the first byte are cleared (the TPM's convention).

use aws_lc_rs::hmac;

use crate::alg::{HashAlg, Hasher};

use super::CredentialError;

/// Largest output accepted (more than any key or seed a TPM derives).
const MAX_BITS: u32 = 8 * 1024;

/// aws-lc-rs HMAC for a TPM hash.
pub(crate) fn hmac_alg(hash: HashAlg) -> Result<hmac::Algorithm, CredentialError> {
    Ok(match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
        HashAlg::Sm3_256 => return Err(CredentialError::UnsupportedHash(hash)),
    })
}

/// HMAC over the concatenation of `parts`.
pub(crate) fn hmac_parts(hash: HashAlg, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CredentialError> {
    let key = hmac::Key::new(hmac_alg(hash)?, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    Ok(ctx.sign().as_ref().to_vec())
}

fn output_len(bits: u32) -> Result<usize, CredentialError> {
    if bits == 0 || bits > MAX_BITS {
        return Err(CredentialError::KdfLength { bits, max: MAX_BITS });
    }
    Ok(bits.div_ceil(8) as usize)
}

fn mask_leading(out: &mut [u8], bits: u32) {
    if bits % 8 != 0 {
        if let Some(first) = out.first_mut() {
            *first &= (1u8 << (bits % 8)) - 1;
        }
    }
}

/// KDFa(hash, key, label, contextU, contextV, bits).
pub fn kdfa(hash: HashAlg, key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Result<Vec<u8>, CredentialError> {
    let len = output_len(bits)?;
    let hkey = hmac::Key::new(hmac_alg(hash)?, key);
    let mut out = Vec::with_capacity(len + hash.len());
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&hkey);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        ctx.update(&[0]);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter += 1;
    }
    out.truncate(len);
    mask_leading(&mut out, bits);
    Ok(out)
}

/// KDFe(hash, Z, label, partyUInfo, partyVInfo, bits).
pub fn kdfe(hash: HashAlg, z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Result<Vec<u8>, CredentialError> {
    let len = output_len(bits)?;
    if hash == HashAlg::Sm3_256 {
        return Err(CredentialError::UnsupportedHash(hash));
    }
    let mut out = Vec::with_capacity(len + hash.len());
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut h = Hasher::new(hash);
        h.update(&counter.to_be_bytes());
        h.update(z);
        h.update(label.as_bytes());
        h.update(&[0]);
        h.update(party_u);
        h.update(party_v);
        out.extend_from_slice(h.finish().as_bytes());
        counter += 1;
    }
    out.truncate(len);
    mask_leading(&mut out, bits);
    Ok(out)
}
