//! TPM2_ActivateCredential in software, for a simulated EK (ECC P-256).
//!
//! What a TPM does with the registrar's credential: recover the seed by ECDH between the EK and
//! the ephemeral point (KDFe, label "IDENTITY"), check the integrity HMAC over the encrypted
//! credential and the AK's name (KDFa "INTEGRITY"), and decrypt it with AES-128-CFB under KDFa
//! "STORAGE". A credential made for another EK or bound to another AK fails the HMAC check, as
//! on a TPM.

use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use cairn_core::codec::Reader;
use cairn_core::credential::{kdfa, kdfe, MadeCredential, MAX_ENCRYPTED_SECRET, MAX_ID_OBJECT};
use cairn_core::HashAlg;

use crate::identity::Identity;

/// Recovers the credential's secret, or says which step failed.
pub(crate) fn activate(id: &Identity, made: &MadeCredential) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(&made.encrypted_secret);
    let point = r.tpm2b(MAX_ENCRYPTED_SECRET, "encrypted secret").map_err(|e| e.to_string())?;
    let mut p = Reader::new(point);
    let ex = p.tpm2b(32, "ephemeral x").map_err(|e| e.to_string())?;
    let ey = p.tpm2b(32, "ephemeral y").map_err(|e| e.to_string())?;
    let eph = [&[4u8][..], ex, ey].concat();
    let z = agreement::agree(&id.ek_private, UnparsedPublicKey::new(&agreement::ECDH_P256, &eph), "ECDH with the EK failed", |z| {
        Ok(z.to_vec())
    })
    .map_err(str::to_owned)?;
    let seed = kdfe(HashAlg::Sha256, &z, "IDENTITY", ex, &id.ek_x, 256).map_err(|e| e.to_string())?;

    let name = id.ak.name();
    let mut r = Reader::new(&made.id_object);
    let body = r.tpm2b(MAX_ID_OBJECT, "id object").map_err(|e| e.to_string())?;
    let mut r = Reader::new(body);
    let tag = r.tpm2b(64, "integrity HMAC").map_err(|e| e.to_string())?;
    let encrypted = r.rest();
    let hmac_key = kdfa(HashAlg::Sha256, &seed, "INTEGRITY", &[], &[], 256).map_err(|e| e.to_string())?;
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key));
    ctx.update(encrypted);
    ctx.update(&name);
    verify_slices_are_equal(ctx.sign().as_ref(), tag).map_err(|_| "integrity HMAC does not match (another EK or AK)".to_owned())?;
    let sym = kdfa(HashAlg::Sha256, &seed, "STORAGE", &name, &[], 128).map_err(|e| e.to_string())?;
    let key = UnboundCipherKey::new(&AES_128, &sym).and_then(DecryptingKey::cfb128).map_err(|_| "AES key".to_owned())?;
    let mut buf = encrypted.to_vec();
    let plain = key.decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from([0u8; 16]))).map_err(|_| "AES-CFB decryption".to_owned())?;
    let mut r = Reader::new(plain);
    let secret = r.tpm2b(64, "credential").map_err(|e| e.to_string())?.to_vec();
    r.finish("credential").map_err(|e| e.to_string())?;
    Ok(secret)
}
