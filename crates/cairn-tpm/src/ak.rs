//! Attestation keys: restricted signing keys under the EK, persisted so an agent finds them again.
//!
//! An AK is created under a low-range EK (whose use needs a PolicySecret(endorsement) session),
//! loaded, made persistent with the owner's authorisation, and its transient copy flushed. When a
//! key is already persisted at the requested handle it is reused, after checking that its public
//! area has the attributes, scheme and name algorithm the request implies — a mismatch is an error,
//! never a silent substitution.
//!
//! Default handles, one per algorithm (the TCG reserves 0x81010001/02 and the high-range
//! 0x81010016–1E for EKs, so these stay clear of them):
//!
//! | [`AkAlg`] | default handle |
//! |---|---|
//! | `Rsa2048Rsassa` | 0x81010010 |
//! | `Rsa2048Rsapss` | 0x81010011 |
//! | `EccP256Ecdsa` | 0x81010012 |
//! | `Sm2P256` | 0x81010013 |
//! | `Rsa3072Rsassa` | 0x81010014 |
//! | `EccP384Ecdsa` | 0x81010015 |

use std::fmt;

use cairn_core::HashAlg;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::PublicAlgorithm;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyRsa, PublicRsaParametersBuilder, RsaExponent, RsaScheme, SymmetricDefinitionObject,
};
use tss_esapi::Context;

use crate::convert::hashing_alg;
use crate::ek::{describe, read_public, tpm2b_public, EkKind};
use crate::error::{Target, TpmError};
use crate::tpm::{ek_policy_session, flush_object, flush_session, Tpm};

/// Key type and signature scheme of an AK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AkAlg {
    /// RSA 2048, RSASSA-PKCS1-v1_5.
    Rsa2048Rsassa,
    /// RSA 2048, RSASSA-PSS.
    Rsa2048Rsapss,
    /// RSA 3072, RSASSA-PKCS1-v1_5.
    Rsa3072Rsassa,
    /// ECC NIST P-256, ECDSA.
    EccP256Ecdsa,
    /// ECC NIST P-384, ECDSA.
    EccP384Ecdsa,
    /// SM2 on curve SM2_P256 (use with sha256 on swtpm, which has no SM3 bank).
    Sm2P256,
}

impl AkAlg {
    /// Every algorithm.
    pub const ALL: [AkAlg; 6] = [
        AkAlg::Rsa2048Rsassa,
        AkAlg::Rsa2048Rsapss,
        AkAlg::Rsa3072Rsassa,
        AkAlg::EccP256Ecdsa,
        AkAlg::EccP384Ecdsa,
        AkAlg::Sm2P256,
    ];

    /// The persistent handle used when an [`AkSpec`] names none.
    pub fn default_handle(self) -> u32 {
        match self {
            AkAlg::Rsa2048Rsassa => 0x8101_0010,
            AkAlg::Rsa2048Rsapss => 0x8101_0011,
            AkAlg::EccP256Ecdsa => 0x8101_0012,
            AkAlg::Sm2P256 => 0x8101_0013,
            AkAlg::Rsa3072Rsassa => 0x8101_0014,
            AkAlg::EccP384Ecdsa => 0x8101_0015,
        }
    }

    /// Short name (`rsa2048-rsassa`, …), as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            AkAlg::Rsa2048Rsassa => "rsa2048-rsassa",
            AkAlg::Rsa2048Rsapss => "rsa2048-rsapss",
            AkAlg::Rsa3072Rsassa => "rsa3072-rsassa",
            AkAlg::EccP256Ecdsa => "ecc-p256-ecdsa",
            AkAlg::EccP384Ecdsa => "ecc-p384-ecdsa",
            AkAlg::Sm2P256 => "sm2-p256",
        }
    }

    /// Parses [`AkAlg::name`].
    pub fn from_name(s: &str) -> Option<AkAlg> {
        AkAlg::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for AkAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What AK to load or create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AkSpec {
    /// Key type and scheme.
    pub alg: AkAlg,
    /// The signing hash (also the key's name algorithm).
    pub hash: HashAlg,
    /// Persistent handle; `None` means [`AkAlg::default_handle`].
    pub handle: Option<u32>,
    /// The EK to create it under (a low-range one).
    pub ek: EkKind,
}

impl AkSpec {
    /// An AK of `alg` signing with sha256, at the default handle, under the RSA-2048 EK.
    pub fn new(alg: AkAlg) -> AkSpec {
        AkSpec { alg, hash: HashAlg::Sha256, handle: None, ek: EkKind::Rsa2048 }
    }

    /// The persistent handle this spec resolves to.
    pub fn resolved_handle(&self) -> u32 {
        self.handle.unwrap_or_else(|| self.alg.default_handle())
    }
}

impl fmt::Display for AkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} AK with {}", self.alg, self.hash)
    }
}

/// A persisted attestation key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ak {
    /// Its persistent handle.
    pub handle: u32,
    /// Marshalled TPM2B_PUBLIC, size prefix included.
    pub public: Vec<u8>,
    /// Its TPM name (nameAlg ‖ H(TPMT_PUBLIC)), what MakeCredential binds to.
    pub name: Vec<u8>,
    /// Key type and scheme.
    pub alg: AkAlg,
    /// Signing hash.
    pub hash: HashAlg,
}

/// The public template for `spec`: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
/// restricted, sign; the scheme fixed in the key so quotes need not name it.
pub(crate) fn ak_template(spec: &AkSpec) -> Result<Public, TpmError> {
    let op = "building the AK template";
    let err = TpmError::cmd(op, Target::None);
    let hash = hashing_alg(spec.hash);
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(TpmError::cmd(op, Target::None))?;
    let builder = PublicBuilder::new().with_name_hashing_algorithm(hash).with_object_attributes(attrs);
    let scheme = HashScheme::new(hash);
    let builder = match spec.alg {
        AkAlg::Rsa2048Rsassa | AkAlg::Rsa2048Rsapss | AkAlg::Rsa3072Rsassa => {
            let (bits, scheme) = match spec.alg {
                AkAlg::Rsa2048Rsapss => (RsaKeyBits::Rsa2048, RsaScheme::RsaPss(scheme)),
                AkAlg::Rsa3072Rsassa => (RsaKeyBits::Rsa3072, RsaScheme::RsaSsa(scheme)),
                _ => (RsaKeyBits::Rsa2048, RsaScheme::RsaSsa(scheme)),
            };
            let params = PublicRsaParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_scheme(scheme)
                .with_key_bits(bits)
                .with_exponent(RsaExponent::default())
                .with_is_signing_key(true)
                .with_restricted(true)
                .build()
                .map_err(TpmError::cmd(op, Target::None))?;
            builder
                .with_public_algorithm(PublicAlgorithm::Rsa)
                .with_rsa_parameters(params)
                .with_rsa_unique_identifier(PublicKeyRsa::default())
        }
        AkAlg::EccP256Ecdsa | AkAlg::EccP384Ecdsa | AkAlg::Sm2P256 => {
            let (curve, scheme) = match spec.alg {
                AkAlg::EccP384Ecdsa => (EccCurve::NistP384, EccScheme::EcDsa(scheme)),
                AkAlg::Sm2P256 => (EccCurve::Sm2P256, EccScheme::Sm2(scheme)),
                _ => (EccCurve::NistP256, EccScheme::EcDsa(scheme)),
            };
            let params = PublicEccParametersBuilder::new()
                .with_symmetric(SymmetricDefinitionObject::Null)
                .with_ecc_scheme(scheme)
                .with_curve(curve)
                .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
                .with_is_signing_key(true)
                .with_restricted(true)
                .build()
                .map_err(TpmError::cmd(op, Target::None))?;
            builder
                .with_public_algorithm(PublicAlgorithm::Ecc)
                .with_ecc_parameters(params)
                .with_ecc_unique_identifier(EccPoint::default())
        }
    };
    builder.build().map_err(err)
}

/// Whether a TPM-returned public area has the shape of `template` (everything but the key).
fn same_shape(template: &Public, public: &Public) -> bool {
    let head = |p: &Public| (p.object_attributes(), p.name_hashing_algorithm());
    head(template) == head(public)
        && match (template, public) {
            (Public::Rsa { parameters: a, .. }, Public::Rsa { parameters: b, .. }) => a == b,
            (Public::Ecc { parameters: a, .. }, Public::Ecc { parameters: b, .. }) => a == b,
            _ => false,
        }
}

/// A description of an existing key's AK-relevant shape, for mismatch errors.
fn describe_ak(public: &Public) -> String {
    let scheme = match public {
        Public::Rsa { parameters, .. } => format!("{:?}", parameters.rsa_scheme()),
        Public::Ecc { parameters, .. } => format!("{:?}", parameters.ecc_scheme()),
        _ => String::new(),
    };
    format!("{} (scheme {scheme}, nameAlg {:?})", describe(public), public.name_hashing_algorithm())
}

impl Tpm {
    /// The AK persisted at `spec`'s handle if it matches `spec`, else a new one created under
    /// the EK and persisted there.
    pub fn load_or_create_ak(&mut self, spec: AkSpec) -> Result<Ak, TpmError> {
        let handle = spec.resolved_handle();
        let template = ak_template(&spec)?;
        let ak = |public, name| Ak { handle, public, name, alg: spec.alg, hash: spec.hash };
        if self.handle_exists(handle)? {
            let (public, name) = self.with_persistent(handle, |ctx, obj| read_public(ctx, obj, handle))?;
            if !same_shape(&template, &public) {
                return Err(TpmError::KeyMismatch { handle, wanted: spec.to_string(), found: describe_ak(&public) });
            }
            return Ok(ak(tpm2b_public(public, "marshalling the AK")?, name));
        }
        if !spec.ek.is_low_range() {
            return Err(TpmError::Unsupported(format!("creating an AK under the {} (use a low-range EK)", spec.ek)));
        }
        let persistent = PersistentTpmHandle::new(handle)
            .map_err(|_| TpmError::BadHandle { what: "persistent handle", value: handle })?;
        let ek = self.ek_for(spec.ek)?;
        let (parent, parent_transient) = self.load_ek(&ek)?;
        let created = create_and_load(&mut self.ctx, parent.into(), template);
        self.release_ek(parent, parent_transient);
        let key = created?;
        let result = read_public(&mut self.ctx, key.into(), 0).and_then(|(public, name)| {
            persist(&mut self.ctx, key.into(), persistent, handle)?;
            Ok(ak(tpm2b_public(public, "marshalling the AK")?, name))
        });
        flush_object(&mut self.ctx, key.into());
        result
    }

    /// Removes the persistent object at `handle` (e.g. an AK).
    pub fn evict(&mut self, handle: u32) -> Result<(), TpmError> {
        let persistent = PersistentTpmHandle::new(handle)
            .map_err(|_| TpmError::BadHandle { what: "persistent handle", value: handle })?;
        self.with_persistent(handle, |ctx, obj| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.evict_control(Provision::Owner, obj, Persistent::Persistent(persistent))
            })
            .map(|_| ())
            .map_err(TpmError::cmd("TPM2_EvictControl(evict)", Target::Handle(handle)))
        })
    }

    /// The EK description needed to load it as a parent, without reading its public area.
    fn ek_for(&mut self, kind: EkKind) -> Result<crate::Ek, TpmError> {
        let persistent = self.handle_exists(kind.handle())?.then_some(kind.handle());
        Ok(crate::Ek { kind, public: Vec::new(), name: Vec::new(), persistent })
    }
}

/// TPM2_Create then TPM2_Load under the EK, each with a fresh EK policy session.
fn create_and_load(ctx: &mut Context, parent: KeyHandle, template: Public) -> Result<KeyHandle, TpmError> {
    let session = ek_policy_session(ctx)?;
    let created = ctx
        .execute_with_session(Some(session), |ctx| ctx.create(parent, template, None, None, None, None))
        .map_err(TpmError::cmd("TPM2_Create(AK)", Target::None));
    flush_session(ctx, session);
    let created = created?;
    let session = ek_policy_session(ctx)?;
    let loaded = ctx
        .execute_with_session(Some(session), |ctx| ctx.load(parent, created.out_private, created.out_public))
        .map_err(TpmError::cmd("TPM2_Load(AK)", Target::None));
    flush_session(ctx, session);
    loaded
}

/// EvictControl with the owner's (empty) password: makes `key` persistent at `persistent`.
fn persist(ctx: &mut Context, key: ObjectHandle, persistent: PersistentTpmHandle, handle: u32) -> Result<(), TpmError> {
    let mut obj = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.evict_control(Provision::Owner, key, Persistent::Persistent(persistent))
        })
        .map_err(TpmError::cmd("TPM2_EvictControl(persist)", Target::Handle(handle)))?;
    let _ = ctx.tr_close(&mut obj);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;

    #[test]
    fn default_handles_are_distinct_and_clear_of_ek_handles() {
        let mut seen = std::collections::HashSet::new();
        for a in AkAlg::ALL {
            assert!(seen.insert(a.default_handle()));
            for ek in [EkKind::Rsa2048, EkKind::EccP256, EkKind::EccP384] {
                assert_ne!(a.default_handle(), ek.handle());
            }
            assert_eq!(AkAlg::from_name(a.name()), Some(a));
        }
    }

    #[test]
    fn templates_build_for_every_alg_and_differ() {
        let mut templates = Vec::new();
        for a in AkAlg::ALL {
            let t = ak_template(&AkSpec::new(a)).unwrap();
            assert!(t.object_attributes().restricted() && t.object_attributes().sign_encrypt());
            templates.push(t);
        }
        for (i, a) in templates.iter().enumerate() {
            for b in templates.iter().skip(i + 1) {
                assert!(!same_shape(a, b));
            }
        }
        let sha384 = ak_template(&AkSpec { hash: HashAlg::Sha384, ..AkSpec::new(AkAlg::EccP256Ecdsa) }).unwrap();
        assert!(!same_shape(&templates[3], &sha384));
        assert_eq!(sha384.name_hashing_algorithm(), HashingAlgorithm::Sha384);
    }
}
