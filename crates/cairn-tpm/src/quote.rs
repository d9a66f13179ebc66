//! Quotes: a signed TPMS_ATTEST over PCRs, delivered with the PCR values it covers.
//!
//! PCRs are read just before TPM2_Quote; the composite of the values read (hashed with the AK's
//! signing hash, in the attested selection's order) must equal the pcrDigest the TPM signed, or
//! a PCR changed in between and the pair is retried (at most [`QUOTE_ATTEMPTS`] times). So a
//! returned [`Quote`] is always self-consistent, and a verifier never sees a spurious mismatch
//! caused by a race with a measuring kernel.

use cairn_core::pcr::{PcrSelection, PcrValues};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{AttestInfo, Data, SignatureScheme};
use tss_esapi::traits::Marshall;

use crate::ak::Ak;
use crate::convert::{pcr_selection, selection_list};
use crate::error::{Target, TpmError};
use crate::tpm::Tpm;

/// Read-then-quote attempts before giving up on moving PCRs.
pub const QUOTE_ATTEMPTS: u32 = 5;

/// Largest nonce TPM2_Quote accepts (TPM2B_DATA holds one digest of the largest hash).
pub const MAX_NONCE_LEN: usize = 64;

/// A TPM quote and the PCR values it attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Marshalled TPMS_ATTEST (the signed message).
    pub attest: Vec<u8>,
    /// Marshalled TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// The PCR values read for the selection, whose composite is the attested pcrDigest.
    pub pcrs: PcrValues,
}

impl Tpm {
    /// Quotes `sel` with `ak` over `nonce` (at most [`MAX_NONCE_LEN`] bytes).
    pub fn quote(&mut self, ak: &Ak, nonce: &[u8], sel: &PcrSelection) -> Result<Quote, TpmError> {
        let op = "TPM2_Quote";
        if nonce.len() > MAX_NONCE_LEN {
            return Err(TpmError::Unsupported(format!("a {}-byte nonce (at most {MAX_NONCE_LEN})", nonce.len())));
        }
        let target = Target::Handle(ak.handle);
        for _ in 0..QUOTE_ATTEMPTS {
            let pcrs = self.pcr_read(sel)?;
            let data = Data::try_from(nonce).map_err(TpmError::cmd(op, target.clone()))?;
            let list = selection_list(sel)?;
            let (attest, signature) = self.with_persistent(ak.handle, |ctx, obj| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.quote(obj.into(), data, SignatureScheme::Null, list)
                })
                .map_err(TpmError::cmd(op, target.clone()))
            })?;
            let AttestInfo::Quote { info } = attest.attested() else {
                return Err(TpmError::Unexpected { op, detail: "the attestation is not a quote".into() });
            };
            let attested = pcr_selection(info.pcr_selection())?;
            if !attested.same_pcrs(sel) {
                return Err(TpmError::Unexpected { op, detail: format!("quoted {attested}, asked for {sel}") });
            }
            if pcrs.composite_digest(ak.hash).as_bytes() != info.pcr_digest().value() {
                continue;
            }
            let attest = attest.marshall().map_err(TpmError::cmd("marshalling TPMS_ATTEST", target.clone()))?;
            let signature = signature.marshall().map_err(TpmError::cmd("marshalling TPMT_SIGNATURE", target))?;
            return Ok(Quote { attest, signature, pcrs });
        }
        Err(TpmError::PcrsUnstable { attempts: QUOTE_ATTEMPTS })
    }
}
