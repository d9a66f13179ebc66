//! Endorsement keys, their certificates, and NV reads.
//!
//! The EK is found where the TCG EK Credential Profile puts it: persisted at its TCG handle
//! (0x81010001 RSA-2048, 0x81010002 ECC P-256, 0x81010016 ECC P-384) when the manufacturer or
//! `swtpm_setup` persisted it, otherwise re-created from the default template (a primary key is
//! deterministic, so the same key comes back) and flushed at once. The certificate is returned as
//! stored in NV — the profile allows trailing padding and cairn-core's X.509 code deals with it.

use std::fmt;

use tss_esapi::abstraction::ek::create_ek_public_from_default_template_2;
use tss_esapi::abstraction::AsymmetricAlgorithmSelection;
use tss_esapi::constants::PropertyTag;
use tss_esapi::handles::{KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Public, PublicBuffer};
use tss_esapi::traits::Marshall;
use tss_esapi::Context;

use crate::error::{Target, TpmError};
use crate::tpm::{flush_object, Tpm};

/// Which endorsement key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EkKind {
    /// RSA 2048 (low range; the one Keylime uses).
    Rsa2048,
    /// ECC NIST P-256 (low range).
    EccP256,
    /// ECC NIST P-384 (high range; the ECC EK `swtpm_setup` creates).
    EccP384,
}

impl EkKind {
    /// The TCG persistent handle of this EK.
    pub fn handle(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x8101_0001,
            EkKind::EccP256 => 0x8101_0002,
            EkKind::EccP384 => 0x8101_0016,
        }
    }

    /// The TCG NV index of this EK's certificate.
    pub fn cert_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0002,
            EkKind::EccP256 => 0x01c0_000a,
            EkKind::EccP384 => 0x01c0_0016,
        }
    }

    /// Whether the EK uses the low-range template, whose policy is PolicySecret(endorsement)
    /// alone; Cairn creates AKs and activates credentials only under those.
    pub fn is_low_range(self) -> bool {
        matches!(self, EkKind::Rsa2048 | EkKind::EccP256)
    }

    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
        }
    }

    fn matches(self, public: &Public) -> bool {
        match (self, public) {
            (EkKind::Rsa2048, Public::Rsa { parameters, .. }) => parameters.key_bits() == RsaKeyBits::Rsa2048,
            (EkKind::EccP256, Public::Ecc { parameters, .. }) => parameters.ecc_curve() == EccCurve::NistP256,
            (EkKind::EccP384, Public::Ecc { parameters, .. }) => parameters.ecc_curve() == EccCurve::NistP384,
            _ => false,
        }
    }
}

impl fmt::Display for EkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EkKind::Rsa2048 => "RSA-2048 EK",
            EkKind::EccP256 => "ECC P-256 EK",
            EkKind::EccP384 => "ECC P-384 EK",
        })
    }
}

/// An endorsement key's public part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ek {
    /// Which EK.
    pub kind: EkKind,
    /// Marshalled TPM2B_PUBLIC, size prefix included.
    pub public: Vec<u8>,
    /// Its TPM name (nameAlg ‖ H(TPMT_PUBLIC)).
    pub name: Vec<u8>,
    /// The persistent handle, when the EK is persisted; `None` when it was re-created.
    pub persistent: Option<u32>,
}

/// Marshals a public area as TPM2B_PUBLIC.
pub(crate) fn tpm2b_public(public: Public, op: &'static str) -> Result<Vec<u8>, TpmError> {
    PublicBuffer::try_from(public)
        .and_then(|b| b.marshall())
        .map_err(TpmError::cmd(op, Target::None))
}

impl Tpm {
    /// The EK of `kind`: the persisted one at its TCG handle if present, else created from the
    /// TCG default template (and flushed again).
    pub fn ek(&mut self, kind: EkKind) -> Result<Ek, TpmError> {
        let handle = kind.handle();
        if self.handle_exists(handle)? {
            let (public, name) = self.with_persistent(handle, |ctx, obj| read_public(ctx, obj, handle))?;
            if !kind.matches(&public) {
                return Err(TpmError::KeyMismatch { handle, wanted: kind.to_string(), found: describe(&public) });
            }
            let public = tpm2b_public(public, "marshalling the EK")?;
            return Ok(Ek { kind, public, name, persistent: Some(handle) });
        }
        let key = create_ek(&mut self.ctx, kind)?;
        let read = read_public(&mut self.ctx, key.into(), 0);
        flush_object(&mut self.ctx, key.into());
        let (public, name) = read?;
        Ok(Ek { kind, public: tpm2b_public(public, "marshalling the EK")?, name, persistent: None })
    }

    /// The EK certificate stored at the TCG NV index for `kind`, as stored; `None` if the index
    /// does not exist.
    pub fn ek_certificate(&mut self, kind: EkKind) -> Result<Option<Vec<u8>>, TpmError> {
        let index = kind.cert_index();
        if !self.handle_exists(index)? {
            return Ok(None);
        }
        self.nv_read(index).map(Some)
    }

    /// Reads a whole NV index with its own (empty) authorisation, in chunks of the TPM's
    /// largest NV buffer.
    pub fn nv_read(&mut self, index: u32) -> Result<Vec<u8>, TpmError> {
        let nv_index = NvIndexTpmHandle::new(index).map_err(|_| TpmError::BadHandle { what: "NV index", value: index })?;
        let err = || TpmError::cmd("TPM2_NV_Read", Target::Nv(index));
        let chunk = self
            .ctx
            .get_tpm_property(PropertyTag::NvBufferMax)
            .map_err(err())?
            .map_or(DEFAULT_NV_BUFFER, |n| u16::try_from(n).unwrap_or(u16::MAX))
            .max(1);
        let mut obj = self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(nv_index)))
            .map_err(err())?;
        let handle = NvIndexHandle::from(obj);
        let data = read_nv_chunks(&mut self.ctx, handle, chunk).map_err(err());
        let _ = self.ctx.tr_close(&mut obj);
        data
    }

    /// A transient handle for the EK: `(handle, true)` if it was created and must be flushed.
    pub(crate) fn load_ek(&mut self, ek: &Ek) -> Result<(ObjectHandle, bool), TpmError> {
        match ek.persistent {
            Some(h) => {
                let tpm_handle = tss_esapi::handles::PersistentTpmHandle::new(h)
                    .map_err(|_| TpmError::BadHandle { what: "persistent handle", value: h })?;
                let obj = self
                    .ctx
                    .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
                    .map_err(TpmError::cmd("resolving the EK", Target::Handle(h)))?;
                Ok((obj, false))
            }
            None => Ok((create_ek(&mut self.ctx, ek.kind)?.into(), true)),
        }
    }

    /// Releases what [`Tpm::load_ek`] returned.
    pub(crate) fn release_ek(&mut self, mut obj: ObjectHandle, transient: bool) {
        if transient {
            flush_object(&mut self.ctx, obj);
        } else {
            let _ = self.ctx.tr_close(&mut obj);
        }
    }
}

/// NV read chunk size when the TPM does not report TPM_PT_NV_BUFFER_MAX.
const DEFAULT_NV_BUFFER: u16 = 512;

/// NV_ReadPublic for the size, then NV_Read chunk by chunk.
fn read_nv_chunks(ctx: &mut Context, handle: NvIndexHandle, chunk: u16) -> tss_esapi::Result<Vec<u8>> {
    let (public, _) = ctx.execute_without_session(|ctx| ctx.nv_read_public(handle))?;
    // NV offsets are u16 on the wire, so no index holds more than 64 KiB.
    let size = u16::try_from(public.data_size()).unwrap_or(u16::MAX);
    let mut data = Vec::with_capacity(usize::from(size));
    let mut offset: u16 = 0;
    while offset < size {
        let n = chunk.min(size - offset);
        let part = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_read(NvAuth::NvIndex(handle), handle, n, offset)
        })?;
        data.extend_from_slice(part.value());
        offset += n;
    }
    Ok(data)
}

/// Creates the EK of `kind` from the TCG default template as a transient primary.
fn create_ek(ctx: &mut Context, kind: EkKind) -> Result<KeyHandle, TpmError> {
    let op = "TPM2_CreatePrimary(EK)";
    let template = create_ek_public_from_default_template_2(kind.selection(), None)
        .map_err(TpmError::cmd(op, Target::None))?;
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
    })
    .map(|r| r.key_handle)
    .map_err(TpmError::cmd(op, Target::None))
}

/// ReadPublic: the public area and the name.
pub(crate) fn read_public(ctx: &mut Context, obj: ObjectHandle, handle: u32) -> Result<(Public, Vec<u8>), TpmError> {
    let target = if handle == 0 { Target::None } else { Target::Handle(handle) };
    let (public, name, _) = ctx
        .execute_without_session(|ctx| ctx.read_public(obj.into()))
        .map_err(TpmError::cmd("TPM2_ReadPublic", target))?;
    Ok((public, name.value().to_vec()))
}

/// A short description of a public area for error messages.
pub(crate) fn describe(public: &Public) -> String {
    match public {
        Public::Rsa { parameters, .. } => format!("an RSA-{} key", parameters.key_bits() as u16),
        Public::Ecc { parameters, .. } => format!("an ECC key on {:?}", parameters.ecc_curve()),
        Public::KeyedHash { .. } => "a keyed-hash object".into(),
        Public::SymCipher { .. } => "a symmetric key".into(),
    }
}
