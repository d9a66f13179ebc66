//! Sealing a vTPM's state key to the host TPM.
//!
//! A vTPM's state is encrypted at rest with a random key, and that key is kept only as a sealed
//! data object of the host TPM: a keyed-hash object with no signing or decryption use, whose
//! sensitive part is the key, created (TPM2_Create) under a storage primary key. The primary is
//! never stored: it is re-created on every use from a fixed template (ECC P-256, AES-128-CFB,
//! restricted decrypt, owner hierarchy) and flushed again; the owner seed makes it the same key
//! each time, on this TPM only. What goes to disk is the object's public area (TPM2B_PUBLIC) and
//! its private part (TPM2B_PRIVATE, wrapped by the primary), both in the layout tpm2-tools'
//! `tpm2_load -u … -r …` reads.
//!
//! So the key comes back only from the TPM that sealed it, with its owner hierarchy not cleared.
//! Another TPM's primary differs, and TPM2_Load then fails its integrity check:
//! [`TpmError::SealedElsewhere`] says so. Both objects are flushed on every path.
//!
//! The key crosses the TCTI only encrypted: TPM2_Create and TPM2_Unseal run under an HMAC session
//! salted with the storage primary's public key, with command and response parameter encryption
//! (AES-128-CFB).
//!
//! Not done here: binding the unseal to PCR values or a policy (anyone who can use the host TPM's
//! owner hierarchy can unseal today).

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, EccPoint, KeyedHashScheme, Private, Public, PublicBuffer, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::error::{Target, TpmError};
use crate::tpm::{flush_object, flush_session, Tpm};

/// Largest secret a sealed data object holds (MAX_SYM_DATA).
pub const MAX_SEALED: usize = 128;

/// A secret sealed to one TPM: the data object's public and private parts, as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedKey {
    /// Marshalled TPM2B_PUBLIC, size prefix included.
    pub public: Vec<u8>,
    /// Marshalled TPM2B_PRIVATE, size prefix included.
    pub private: Vec<u8>,
}

/// A secret that zeroes its bytes when dropped.
pub struct Unsealed(Zeroizing<Vec<u8>>);

impl Unsealed {
    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unsealed({} bytes)", self.0.len())
    }
}

impl Tpm {
    /// Seals `secret` (1 to [`MAX_SEALED`] bytes) under this TPM's storage primary.
    pub fn seal(&mut self, secret: &[u8]) -> Result<SealedKey, TpmError> {
        let op = "TPM2_Create(sealed data)";
        if secret.is_empty() || secret.len() > MAX_SEALED {
            return Err(TpmError::Unsupported(format!("sealing {} bytes (1 to {MAX_SEALED})", secret.len())));
        }
        let data = SensitiveData::try_from(secret.to_vec()).map_err(TpmError::cmd(op, Target::None))?;
        let template = sealed_template()?;
        let primary = storage_primary(&mut self.ctx)?;
        let created = salted_session(&mut self.ctx, primary).and_then(|session| {
            let created = self
                .ctx
                .execute_with_session(Some(session), |ctx| ctx.create(primary, template, None, Some(data), None, None))
                .map_err(TpmError::cmd(op, Target::None));
            flush_session(&mut self.ctx, session);
            created
        });
        flush_object(&mut self.ctx, primary.into());
        let created = created?;
        let public = PublicBuffer::try_from(created.out_public)
            .and_then(|b| b.marshall())
            .map_err(TpmError::cmd("marshalling the sealed object", Target::None))?;
        Ok(SealedKey { public, private: tpm2b(created.out_private.value()) })
    }

    /// Unseals what [`Tpm::seal`] sealed on this TPM.
    pub fn unseal(&mut self, sealed: &SealedKey) -> Result<Unsealed, TpmError> {
        let public = PublicBuffer::unmarshall(&sealed.public)
            .and_then(Public::try_from)
            .map_err(TpmError::cmd("reading the sealed object's public area", Target::None))?;
        let private = untpm2b(&sealed.private)
            .and_then(|b| Private::try_from(b.to_vec()).ok())
            .ok_or_else(|| TpmError::Unexpected {
                op: "reading the sealed object's private part",
                detail: format!("{} bytes are not a TPM2B_PRIVATE", sealed.private.len()),
            })?;
        let primary = storage_primary(&mut self.ctx)?;
        let session = match salted_session(&mut self.ctx, primary) {
            Ok(s) => s,
            Err(e) => {
                flush_object(&mut self.ctx, primary.into());
                return Err(e);
            }
        };
        let loaded = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| ctx.load(primary, private, public))
            .map_err(|source| TpmError::SealedElsewhere { source });
        flush_object(&mut self.ctx, primary.into());
        let data = loaded.and_then(|object| {
            let data = self
                .ctx
                .execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                .map_err(TpmError::cmd("TPM2_Unseal", Target::None));
            flush_object(&mut self.ctx, object.into());
            data
        });
        flush_session(&mut self.ctx, session);
        Ok(Unsealed(Zeroizing::new(data?.value().to_vec())))
    }
}

/// The storage primary's template: the TCG SRK shape (ECC P-256, AES-128-CFB), deterministic.
fn primary_template() -> Result<Public, TpmError> {
    let op = "building the storage primary template";
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(TpmError::cmd(op, Target::None))?;
    let params =
        PublicEccParametersBuilder::new_restricted_decryption_key(SymmetricDefinitionObject::AES_128_CFB, EccCurve::NistP256)
            .build()
            .map_err(TpmError::cmd(op, Target::None))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(TpmError::cmd(op, Target::None))
}

/// The sealed data object's template: keyed hash, no scheme, no use but unseal.
fn sealed_template() -> Result<Public, TpmError> {
    let op = "building the sealed object template";
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .build()
        .map_err(TpmError::cmd(op, Target::None))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(TpmError::cmd(op, Target::None))
}

/// An HMAC session salted with `primary`'s public key, encrypting the first command parameter
/// (the key in TPM2_Create) and the first response parameter (the key from TPM2_Unseal), so the
/// key never crosses the TCTI in the clear. The caller flushes it.
fn salted_session(ctx: &mut Context, primary: KeyHandle) -> Result<AuthSession, TpmError> {
    let op = "TPM2_StartAuthSession(salted HMAC)";
    let session = ctx
        .start_auth_session(
            Some(primary),
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(TpmError::cmd(op, Target::None))?
        .ok_or_else(|| TpmError::Unexpected { op, detail: "no session handle returned".into() })?;
    let (attrs, mask) =
        SessionAttributesBuilder::new().with_decrypt(true).with_encrypt(true).with_continue_session(true).build();
    match ctx.tr_sess_set_attributes(session, attrs, mask) {
        Ok(()) => Ok(session),
        Err(e) => {
            flush_session(ctx, session);
            Err(TpmError::cmd("setting session attributes", Target::None)(e))
        }
    }
}

/// Creates the storage primary as a transient object; the caller flushes it.
pub(crate) fn storage_primary(ctx: &mut Context) -> Result<KeyHandle, TpmError> {
    let op = "TPM2_CreatePrimary(owner storage key)";
    let template = primary_template()?;
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })
    .map(|r| r.key_handle)
    .map_err(TpmError::cmd(op, Target::None))
}

/// `bytes` with a big-endian u16 size prefix.
pub(crate) fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
    out
}

/// The body of a TPM2B whose size prefix covers exactly the rest.
pub(crate) fn untpm2b(bytes: &[u8]) -> Option<&[u8]> {
    let (len, body) = bytes.split_first_chunk::<2>()?;
    (usize::from(u16::from_be_bytes(*len)) == body.len()).then_some(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_round_trips_and_rejects_wrong_sizes() {
        let b = tpm2b(b"abc");
        assert_eq!(b, [0, 3, b'a', b'b', b'c']);
        assert_eq!(untpm2b(&b), Some(&b"abc"[..]));
        assert_eq!(untpm2b(&b[..4]), None);
        assert_eq!(untpm2b(&[0]), None);
    }

    #[test]
    fn templates_build() {
        primary_template().unwrap();
        sealed_template().unwrap();
    }
}
