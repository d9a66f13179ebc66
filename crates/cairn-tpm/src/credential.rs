//! TPM2_ActivateCredential: proving to a registrar that an AK lives in the same TPM as an EK.
//!
//! The registrar encrypts a secret to the EK, bound to the AK's name (MakeCredential); only this
//! TPM can recover it, and only if the named AK is loaded here. The inputs arrive as TPM wire
//! bytes (TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, size prefixes included) and are parsed with
//! cairn-core's bounded reader before reaching the TPM. The AK is authorised by its (empty)
//! password, the EK by a PolicySecret(endorsement) session.

use cairn_core::codec::Reader;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{EncryptedSecret, IdObject};

use crate::ak::Ak;
use crate::ek::Ek;
use crate::error::{Target, TpmError};
use crate::tpm::{ek_policy_session, flush_session, Tpm};

/// Largest TPM2B_ID_OBJECT body (TPMS_ID_OBJECT: an HMAC and an encrypted digest).
const MAX_ID_OBJECT: usize = 2 + 64 + 2 + 64;
/// Largest TPM2B_ENCRYPTED_SECRET body (one RSA-4096 block or an ECC point).
const MAX_ENCRYPTED_SECRET: usize = 512;

/// Reads a whole buffer that must be exactly one TPM2B of at most `max` bytes.
fn tpm2b_body<'a>(bytes: &'a [u8], max: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
    let mut r = Reader::new(bytes);
    let body = r.tpm2b(max, what).map_err(|source| TpmError::Parse { what, source })?;
    r.finish(what).map_err(|source| TpmError::Parse { what, source })?;
    Ok(body)
}

impl Tpm {
    /// Recovers the secret a registrar bound to `ak`'s name and encrypted to `ek`.
    pub fn activate_credential(
        &mut self,
        ak: &Ak,
        ek: &Ek,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let op = "TPM2_ActivateCredential";
        if !ek.kind.is_low_range() {
            return Err(TpmError::Unsupported(format!("activating a credential with the {}", ek.kind)));
        }
        let blob = tpm2b_body(credential_blob, MAX_ID_OBJECT, "TPM2B_ID_OBJECT")?;
        let blob = IdObject::try_from(blob).map_err(TpmError::cmd(op, Target::None))?;
        let secret = tpm2b_body(secret, MAX_ENCRYPTED_SECRET, "TPM2B_ENCRYPTED_SECRET")?;
        let secret = EncryptedSecret::try_from(secret).map_err(TpmError::cmd(op, Target::None))?;
        let (ek_obj, ek_transient) = self.load_ek(ek)?;
        let result = self.with_persistent(ak.handle, |ctx, ak_obj| {
            let session = ek_policy_session(ctx)?;
            let out = ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                    ctx.activate_credential(ak_obj.into(), ek_obj.into(), blob, secret)
                })
                .map_err(TpmError::cmd(op, Target::Handle(ak.handle)));
            flush_session(ctx, session);
            out
        });
        self.release_ek(ek_obj, ek_transient);
        Ok(result?.value().to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_inputs_are_bounded_and_exact() {
        assert_eq!(tpm2b_body(&[0, 2, 7, 8], 4, "x").unwrap(), &[7, 8]);
        assert!(matches!(tpm2b_body(&[0, 2, 7, 8, 9], 4, "x"), Err(TpmError::Parse { .. })));
        assert!(matches!(tpm2b_body(&[0, 5, 1, 2, 3, 4, 5], 4, "x"), Err(TpmError::Parse { .. })));
        assert!(matches!(tpm2b_body(&[0, 3, 1], 4, "x"), Err(TpmError::Parse { .. })));
    }
}
