//! The vTPM CA key, resident in the host TPM, and writing EK certificates into a vTPM.
//!
//! The CA key is an RSA-2048 signing key (RSASSA / SHA-256 fixed in the key, not restricted, so
//! it signs digests of any content: certificates), fixedTPM | fixedParent | sensitiveDataOrigin |
//! userWithAuth: made in this TPM, never exportable. It is created (TPM2_Create) under the same
//! storage primary the vTPM sealing code re-creates ([`crate::vtpm`]), and only its public area
//! and wrapped private part are stored, as [`CaKey`]. Every use re-creates the primary, loads the
//! key, does one command and flushes both: [`Tpm::ca_sign`] for certificates, [`Tpm::ca_certify`]
//! for the agent's proof that the key is this TPM's (TPM2_Certify by the AK).
//!
//! On disk a CA directory holds `ca.pub` and `ca.priv` (the key blobs, in tpm2-tools' layout) and
//! `ca-cert.der` (the CA certificate); [`CaKey::read_dir`] and [`CaKey::write_dir`] are the one
//! place those names live, shared by `cairn vtpm` and the host agent.
//!
//! [`Tpm::write_ek_certificate`] runs on a vTPM (not the host): it defines the TCG EK
//! certificate index in the platform hierarchy as swtpm_setup would and writes the certificate.

use std::path::Path;

use tss_esapi::attributes::{NvIndexAttributesBuilder, ObjectAttributesBuilder};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::PropertyTag;
use tss_esapi::handles::{KeyHandle, NvIndexTpmHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{NvAuth, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Data, Digest, HashScheme, HashcheckTicket, MaxNvBuffer, NvPublicBuilder, Private, Public, PublicBuffer,
    PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme, Signature, SignatureScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::{TPM2B_DIGEST, TPMT_TK_HASHCHECK};

use crate::ak::Ak;
use crate::ek::EkKind;
use crate::error::{Target, TpmError};
use crate::tpm::{flush_object, Tpm};
use crate::vtpm::{storage_primary, tpm2b, untpm2b};

/// The vTPM CA key as stored: its public area and its private part wrapped by the host's storage
/// primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaKey {
    /// Marshalled TPM2B_PUBLIC, size prefix included.
    pub public: Vec<u8>,
    /// Marshalled TPM2B_PRIVATE, size prefix included.
    pub private: Vec<u8>,
}

/// CA key, public part, in a CA directory.
pub const CA_PUBLIC_FILE: &str = "ca.pub";
/// CA key, private part (wrapped by the host's storage primary), in a CA directory.
pub const CA_PRIVATE_FILE: &str = "ca.priv";
/// CA certificate (DER), in a CA directory.
pub const CA_CERT_FILE: &str = "ca-cert.der";

impl CaKey {
    /// The key and certificate of the CA directory `dir`; `None` when it holds no key yet.
    pub fn read_dir(dir: &Path) -> Result<Option<(CaKey, Vec<u8>)>, TpmError> {
        let public_path = dir.join(CA_PUBLIC_FILE);
        let public = match std::fs::read(&public_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TpmError::io(public_path)(e)),
        };
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(TpmError::io(path))
        };
        Ok(Some((CaKey { public, private: read(CA_PRIVATE_FILE)? }, read(CA_CERT_FILE)?)))
    }

    /// Writes the key blobs and the CA certificate into `dir` (which must exist); the
    /// certificate last, so a directory with a certificate is complete.
    pub fn write_dir(&self, dir: &Path, cert: &[u8]) -> Result<(), TpmError> {
        for (name, bytes) in [(CA_PUBLIC_FILE, &self.public), (CA_PRIVATE_FILE, &self.private), (CA_CERT_FILE, &cert.to_vec())] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(TpmError::io(path))?;
        }
        Ok(())
    }
}

/// TPM2_Certify's answer: the attestation and the AK's signature over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// Marshalled TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// Marshalled TPMT_SIGNATURE.
    pub signature: Vec<u8>,
}

impl Tpm {
    /// Creates a vTPM CA key under this TPM's storage primary.
    pub fn create_ca_key(&mut self) -> Result<CaKey, TpmError> {
        let op = "TPM2_Create(vTPM CA key)";
        let template = ca_template()?;
        let primary = storage_primary(&mut self.ctx)?;
        let created = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.create(primary, template, None, None, None, None))
            .map_err(TpmError::cmd(op, Target::None));
        flush_object(&mut self.ctx, primary.into());
        let created = created?;
        let public = PublicBuffer::try_from(created.out_public)
            .and_then(|b| b.marshall())
            .map_err(TpmError::cmd("marshalling the CA key", Target::None))?;
        Ok(CaKey { public, private: tpm2b(created.out_private.value()) })
    }

    /// Signs a SHA-256 `digest` with the CA key (RSASSA-PKCS1-v1_5); the raw signature bytes.
    pub fn ca_sign(&mut self, key: &CaKey, digest: &[u8]) -> Result<Vec<u8>, TpmError> {
        let op = "TPM2_Sign(vTPM CA key)";
        let digest = Digest::try_from(digest.to_vec()).map_err(TpmError::cmd(op, Target::None))?;
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: TPM2B_DIGEST::default(),
        })
        .map_err(TpmError::cmd(op, Target::None))?;
        let ca = self.load_ca_key(key)?;
        let signed = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.sign(ca, digest, SignatureScheme::Null, ticket))
            .map_err(TpmError::cmd(op, Target::None));
        flush_object(&mut self.ctx, ca.into());
        match signed? {
            Signature::RsaSsa(s) => Ok(s.signature().value().to_vec()),
            _ => Err(TpmError::Unexpected { op, detail: "the CA key did not make an RSASSA signature".into() }),
        }
    }

    /// TPM2_Certify of the CA key by `ak`, with `qualifying_data` (at most 64 bytes).
    pub fn ca_certify(&mut self, key: &CaKey, ak: &Ak, qualifying_data: &[u8]) -> Result<Certified, TpmError> {
        let op = "TPM2_Certify(vTPM CA key, AK)";
        let target = Target::Handle(ak.handle);
        let data = Data::try_from(qualifying_data.to_vec()).map_err(TpmError::cmd(op, target.clone()))?;
        let ca = self.load_ca_key(key)?;
        let certified = self.with_persistent(ak.handle, |ctx, ak_obj| {
            ctx.execute_with_sessions((Some(AuthSession::Password), Some(AuthSession::Password), None), |ctx| {
                ctx.certify(ObjectHandle::from(ca), KeyHandle::from(ak_obj), data, SignatureScheme::Null)
            })
            .map_err(TpmError::cmd(op, target.clone()))
        });
        flush_object(&mut self.ctx, ca.into());
        let (attest, signature) = certified?;
        Ok(Certified {
            attest: attest.marshall().map_err(TpmError::cmd("marshalling TPMS_ATTEST", target.clone()))?,
            signature: signature.marshall().map_err(TpmError::cmd("marshalling TPMT_SIGNATURE", target))?,
        })
    }

    /// Loads the CA key under a fresh storage primary (flushed again at once); the caller
    /// flushes the key. A key made by another TPM does not load: [`TpmError::SealedElsewhere`].
    fn load_ca_key(&mut self, key: &CaKey) -> Result<KeyHandle, TpmError> {
        let public = PublicBuffer::unmarshall(&key.public)
            .and_then(Public::try_from)
            .map_err(TpmError::cmd("reading the CA key's public area", Target::None))?;
        let private = untpm2b(&key.private)
            .and_then(|b| Private::try_from(b.to_vec()).ok())
            .ok_or_else(|| TpmError::Unexpected {
                op: "reading the CA key's private part",
                detail: format!("{} bytes are not a TPM2B_PRIVATE", key.private.len()),
            })?;
        let primary = storage_primary(&mut self.ctx)?;
        let loaded = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.load(primary, private, public))
            .map_err(|source| TpmError::SealedElsewhere { source });
        flush_object(&mut self.ctx, primary.into());
        loaded
    }

    /// Defines the TCG EK certificate index of `kind` in the platform hierarchy (platform write,
    /// owner/platform/own-auth read, as swtpm_setup does) and writes `cert` into it. For a freshly
    /// manufactured vTPM, whose platform authorisation is still empty.
    pub fn write_ek_certificate(&mut self, kind: EkKind, cert: &[u8]) -> Result<(), TpmError> {
        let index = kind.cert_index();
        let target = Target::Nv(index);
        let op = "TPM2_NV_DefineSpace(EK certificate)";
        let size = u16::try_from(cert.len()).map_err(|_| TpmError::Unsupported(format!("a {}-byte certificate", cert.len())))?;
        let nv_index = NvIndexTpmHandle::new(index).map_err(|_| TpmError::BadHandle { what: "NV index", value: index })?;
        let attributes = NvIndexAttributesBuilder::new()
            .with_pp_write(true)
            .with_pp_read(true)
            .with_owner_read(true)
            .with_auth_read(true)
            .with_no_da(true)
            .with_platform_create(true)
            .with_write_define(true)
            .build()
            .map_err(TpmError::cmd(op, target.clone()))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(nv_index)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(usize::from(size))
            .build()
            .map_err(TpmError::cmd(op, target.clone()))?;
        let chunk = self
            .ctx
            .get_tpm_property(PropertyTag::NvBufferMax)
            .map_err(TpmError::cmd("TPM2_GetCapability(NV buffer)", target.clone()))?
            .map_or(512, |n| usize::try_from(n).unwrap_or(512))
            .clamp(1, 1024);
        let handle = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.nv_define_space(Provision::Platform, None, public))
            .map_err(TpmError::cmd(op, target.clone()))?;
        let mut written = Ok(());
        for (i, part) in cert.chunks(chunk).enumerate() {
            let offset = u16::try_from(i * chunk).unwrap_or(u16::MAX);
            written = MaxNvBuffer::try_from(part.to_vec()).and_then(|buf| {
                self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| ctx.nv_write(NvAuth::Platform, handle, buf, offset))
            });
            if written.is_err() {
                break;
            }
        }
        let mut obj = ObjectHandle::from(handle);
        let _ = self.ctx.tr_close(&mut obj);
        written.map_err(TpmError::cmd("TPM2_NV_Write(EK certificate)", target))
    }
}

/// The CA key's template: RSA-2048, RSASSA/SHA-256, sign, not restricted, bound to this TPM.
fn ca_template() -> Result<Public, TpmError> {
    let op = "building the vTPM CA key template";
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(TpmError::cmd(op, Target::None))?;
    let params = PublicRsaParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_scheme(RsaScheme::RsaSsa(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_key_bits(RsaKeyBits::Rsa2048)
        .with_exponent(RsaExponent::default())
        .with_is_signing_key(true)
        .with_restricted(false)
        .build()
        .map_err(TpmError::cmd(op, Target::None))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Rsa)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_rsa_parameters(params)
        .with_rsa_unique_identifier(PublicKeyRsa::default())
        .build()
        .map_err(TpmError::cmd(op, Target::None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn template_builds() {
        ca_template().unwrap();
    }
}
