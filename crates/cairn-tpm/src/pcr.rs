//! PCR read, extend and reset.
//!
//! TPM2_PCR_Read returns at most eight digests per call and says which PCRs it actually read, so
//! [`Tpm::pcr_read`] loops, removing what was read from what is still wanted, until the whole
//! selection is read; the result is in the caller's selection order. A call that reads nothing
//! (a bank the TPM has not allocated) is an error rather than an endless loop.

use cairn_core::pcr::{BankSelection, PcrIndex, PcrSelection, PcrValues};
use cairn_core::{Digest, HashAlg};
use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::DigestValues;

use crate::convert::{digest, hashing_alg, pcr_selection, selection_list, tss_digest};
use crate::error::{Target, TpmError};
use crate::tpm::Tpm;

impl Tpm {
    /// Reads every PCR in `sel`; values come back in `sel`'s order.
    pub fn pcr_read(&mut self, sel: &PcrSelection) -> Result<PcrValues, TpmError> {
        let op = "TPM2_PCR_Read";
        let mut remaining: Vec<BankSelection> = sel.banks().iter().copied().filter(|b| b.mask != 0).collect();
        let mut got: Vec<(HashAlg, PcrIndex, Digest)> = Vec::with_capacity(sel.count());
        while remaining.iter().any(|b| b.mask != 0) {
            let want = PcrSelection::new(remaining.clone())
                .map_err(|source| TpmError::Parse { what: "PCR selection", source })?;
            let (_, read_list, digests) = self
                .ctx
                .execute_without_session(|ctx| ctx.pcr_read(selection_list(&want)?).map_err(TpmError::cmd(op, Target::Pcrs(want.to_string()))))?;
            let read = pcr_selection(&read_list)?;
            let mut values = digests.value().iter();
            let mut progress = false;
            for (alg, pcr) in read.iter() {
                let Some(bank) = remaining.iter_mut().find(|b| b.alg == alg && b.mask & pcr.bit() != 0) else {
                    return Err(TpmError::Unexpected { op, detail: format!("returned {alg}:{pcr}, which was not asked for") });
                };
                let value = values
                    .next()
                    .ok_or_else(|| TpmError::Unexpected { op, detail: "fewer digests than selected PCRs".into() })?;
                got.push((alg, pcr, digest(alg, value, "PCR value")?));
                bank.mask &= !pcr.bit();
                progress = true;
            }
            if !progress {
                let missing = PcrSelection::new(remaining).map(|s| s.to_string()).unwrap_or_default();
                return Err(TpmError::Unexpected { op, detail: format!("the TPM read none of {missing} (bank not allocated?)") });
            }
        }
        let mut ordered = Vec::with_capacity(got.len());
        for (alg, pcr) in sel.iter() {
            let value = got
                .iter()
                .find(|(a, p, _)| *a == alg && *p == pcr)
                .map(|(_, _, v)| *v)
                .ok_or_else(|| TpmError::Unexpected { op, detail: format!("{alg}:{pcr} was never returned") })?;
            ordered.push(value);
        }
        PcrValues::new(sel.clone(), ordered).map_err(|source| TpmError::Parse { what: "PCR values", source })
    }

    /// Extends `pcr` with one digest per bank (each digest names its bank).
    pub fn pcr_extend(&mut self, pcr: PcrIndex, digests: &[Digest]) -> Result<(), TpmError> {
        let mut values = DigestValues::new();
        for d in digests {
            values.set(hashing_alg(d.alg()), tss_digest(d)?);
        }
        let handle = pcr_handle(pcr)?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.pcr_extend(handle, values))
            .map_err(TpmError::cmd("TPM2_PCR_Extend", Target::Pcr(pcr.get())))
    }

    /// Resets `pcr` in every bank (allowed for PCR 16 and 23 at locality 0).
    pub fn pcr_reset(&mut self, pcr: PcrIndex) -> Result<(), TpmError> {
        let handle = pcr_handle(pcr)?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.pcr_reset(handle))
            .map_err(TpmError::cmd("TPM2_PCR_Reset", Target::Pcr(pcr.get())))
    }
}

/// The ESAPI handle of a PCR (ESYS_TR_PCRn = n).
fn pcr_handle(pcr: PcrIndex) -> Result<PcrHandle, TpmError> {
    PcrHandle::try_from(u32::from(pcr.get()))
        .map_err(|_| TpmError::BadHandle { what: "PCR", value: u32::from(pcr.get()) })
}
