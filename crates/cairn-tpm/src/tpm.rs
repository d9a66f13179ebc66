//! The [`Tpm`] handle: one ESAPI context, and the small helpers every operation shares.
//!
//! A `Tpm` is meant to be short-lived: open, do the work, drop. swtpm (and a TPM without a
//! resource manager) serves one client at a time, and has only three transient object slots, so
//! every helper here leaves no transient object or session behind, even on error: persistent
//! handles are resolved to ESAPI handles for the duration of one closure and closed after it.
//!
//! Authorisation is by password session with the empty password wherever the TPM allows it
//! (hierarchies, PCRs, AKs): it costs no round trip, where an HMAC session costs two.

use std::str::FromStr;

use tss_esapi::constants::{CapabilityType, SessionType};
use tss_esapi::handles::{AuthHandle, ObjectHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{CapabilityData, SymmetricDefinition};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::Context;

use crate::error::{Target, TpmError};

/// An open connection to a TPM (hardware through `device:`, or swtpm / mssim over TCP).
pub struct Tpm {
    pub(crate) ctx: Context,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tpm")
    }
}

impl Tpm {
    /// Opens the TPM named by a TCTI string: `device:/dev/tpmrm0`,
    /// `swtpm:host=127.0.0.1,port=2321` or `mssim:host=…,port=…`.
    pub fn open(tcti: &str) -> Result<Tpm, TpmError> {
        let open_err = |source| TpmError::Open { tcti: tcti.to_owned(), source };
        let conf = TctiNameConf::from_str(tcti).map_err(open_err)?;
        let ctx = Context::new(conf).map_err(open_err)?;
        Ok(Tpm { ctx })
    }

    /// Whether a persistent object or NV index exists at `handle`.
    pub fn handle_exists(&mut self, handle: u32) -> Result<bool, TpmError> {
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, handle, 1)
            .map_err(TpmError::cmd("TPM2_GetCapability(handles)", Target::Handle(handle)))?;
        Ok(match data {
            CapabilityData::Handles(list) => {
                list.into_inner().first().is_some_and(|h| u32::from(*h) == handle)
            }
            _ => false,
        })
    }

    /// Runs `f` with the ESAPI handle of the persistent object at `handle`, closing it afterwards.
    pub(crate) fn with_persistent<T>(
        &mut self,
        handle: u32,
        f: impl FnOnce(&mut Context, ObjectHandle) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        let tpm_handle = PersistentTpmHandle::new(handle)
            .map_err(|_| TpmError::BadHandle { what: "persistent handle", value: handle })?;
        let mut obj = self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
            .map_err(TpmError::cmd("resolving a persistent handle", Target::Handle(handle)))?;
        let result = f(&mut self.ctx, obj);
        // Closing only frees ESAPI memory; a failure here must not hide the real result.
        let _ = self.ctx.tr_close(&mut obj);
        result
    }
}

/// Starts a policy session satisfying the TCG default EK policy (PolicySecret with the
/// endorsement hierarchy), the authorisation every use of a low-range EK needs.
pub(crate) fn ek_policy_session(ctx: &mut Context) -> Result<AuthSession, TpmError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(TpmError::cmd("TPM2_StartAuthSession(policy)", Target::None))?
        .ok_or_else(|| TpmError::Unexpected {
            op: "TPM2_StartAuthSession",
            detail: "no session handle returned".into(),
        })?;
    let secret = PolicySession::try_from(session)
        .map_err(TpmError::cmd("TPM2_StartAuthSession(policy)", Target::None))
        .and_then(|policy| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.policy_secret(
                    policy,
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })
            .map_err(TpmError::cmd("TPM2_PolicySecret(endorsement)", Target::None))
        });
    match secret {
        Ok(_) => Ok(session),
        Err(e) => {
            flush_session(ctx, session);
            Err(e)
        }
    }
}

/// Flushes a session, ignoring failure (it is cleanup after the real work).
pub(crate) fn flush_session(ctx: &mut Context, session: AuthSession) {
    let _ = ctx.flush_context(SessionHandle::from(session).into());
}

/// Flushes a transient object, ignoring failure (it is cleanup after the real work).
pub(crate) fn flush_object(ctx: &mut Context, obj: ObjectHandle) {
    let _ = ctx.flush_context(obj);
}
