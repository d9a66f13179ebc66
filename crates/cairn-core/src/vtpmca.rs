//! The vTPM CA chain: VM EK → host vTPM CA → host TPM.
//!
//! A host issues its vTPMs' EK certificates with a CA key that lives in the host TPM. The host's
//! agent proves that at registration with TPM2_Certify: its AK (already bound to the host's EK by
//! the registrar's credential) signs an attestation naming the CA key, with qualifyingData =
//! SHA-256(CA certificate DER). [`verify_ca_certify`] decides whether that evidence holds:
//!
//! 1. `ca_certificate` — the CA certificate parses (exactly, no padding) and is a CA;
//! 2. `ca_public` — the CA key's TPM2B_PUBLIC parses;
//! 3. `certify_signature` — the TPMT_SIGNATURE verifies over the TPMS_ATTEST with the AK;
//! 4. `attest_magic`, `attest_type` — the attestation is TPM-generated and a certification;
//! 5. `extra_data` — it was made for this CA certificate (SHA-256 of its bytes);
//! 6. `certified_name` — the certified object is the CA key (its TPM name);
//! 7. `ca_key` — the CA certificate's key is that key;
//! 8. `ca_attributes` — the key was made in that TPM and cannot leave it: fixedTPM, fixedParent,
//!    sensitiveDataOrigin, sign, not decrypt.
//!
//! The first failure is reported as its own [`CaCertifyFailure`] variant with a stable
//! [`CaCertifyFailure::check`] name. [`issuing_host`] then decides, for a VM's EK certificate,
//! which enrolled host's CA issued it.

use thiserror::Error;

use crate::alg::HashAlg;
use crate::crypto::{SignatureError, VerifyingKey};
use crate::ekcert::{ek_matches, verify_chain, Certificate, ChainInfo, EkCertError, TrustStore};
use crate::error::ParseError;
use crate::tpm::attest::{AttestInfo, TPM_GENERATED_VALUE};
use crate::tpm::public::attrs;
use crate::tpm::{Attest, Public, Signature};

/// Attributes a vTPM CA key must have.
pub const CA_KEY_ATTRIBUTES: u32 = attrs::FIXED_TPM | attrs::FIXED_PARENT | attrs::SENSITIVE_DATA_ORIGIN | attrs::SIGN;

/// A host's evidence for its vTPM CA, as decoded bytes.
#[derive(Clone, Copy, Debug)]
pub struct CaEvidence<'a> {
    /// The CA certificate, DER.
    pub ca_cert: &'a [u8],
    /// The CA key's TPM2B_PUBLIC.
    pub ca_public: &'a [u8],
    /// TPMS_ATTEST of TPM2_Certify(CA key, AK).
    pub certify_attest: &'a [u8],
    /// TPMT_SIGNATURE over `certify_attest` by the AK.
    pub certify_signature: &'a [u8],
}

/// Why a host's vTPM CA evidence is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CaCertifyFailure {
    /// The CA certificate is unreadable, padded, or not a CA.
    #[error("ca_certificate: {0}")]
    CaCertificate(String),
    /// The CA key's public area is unreadable.
    #[error("ca_public: {0}")]
    CaPublic(ParseError),
    /// The attestation or signature is unreadable.
    #[error("certify_attest: {0}")]
    Unreadable(ParseError),
    /// The AK's signature does not verify.
    #[error("certify_signature: not made by this registration's AK: {0}")]
    Signature(SignatureError),
    /// Not a TPM-generated structure.
    #[error("attest_magic: {found:#010x} is not TPM_GENERATED_VALUE")]
    Magic {
        /// The magic found.
        found: u32,
    },
    /// Not a TPM2_Certify attestation.
    #[error("attest_type: {found:#06x} is not TPM_ST_ATTEST_CERTIFY")]
    NotCertify {
        /// The type found.
        found: u16,
    },
    /// qualifyingData is not SHA-256 of the CA certificate.
    #[error("extra_data: the attestation was made for {found}, not SHA-256 of this CA certificate ({expected})")]
    ExtraData {
        /// hex of what it carries.
        found: String,
        /// hex of what it should.
        expected: String,
    },
    /// The certified object is not the CA key.
    #[error("certified_name: the attestation certifies {found}, not the CA key {expected}")]
    Name {
        /// hex name certified.
        found: String,
        /// hex name of `ca_public`.
        expected: String,
    },
    /// The CA certificate's key is not the certified key.
    #[error("ca_key: the CA certificate's key is not the certified TPM key: {0}")]
    KeyMismatch(EkCertError),
    /// The CA key could leave the TPM, was imported, or is not a plain signing key.
    #[error("ca_attributes: {found:#010x} lack fixedTPM, fixedParent, sensitiveDataOrigin, sign, or have decrypt")]
    Attributes {
        /// TPMA_OBJECT found.
        found: u32,
    },
}

impl CaCertifyFailure {
    /// Stable name of the failed check.
    pub fn check(&self) -> &'static str {
        match self {
            CaCertifyFailure::CaCertificate(_) => "ca_certificate",
            CaCertifyFailure::CaPublic(_) => "ca_public",
            CaCertifyFailure::Unreadable(_) => "certify_attest",
            CaCertifyFailure::Signature(_) => "certify_signature",
            CaCertifyFailure::Magic { .. } => "attest_magic",
            CaCertifyFailure::NotCertify { .. } => "attest_type",
            CaCertifyFailure::ExtraData { .. } => "extra_data",
            CaCertifyFailure::Name { .. } => "certified_name",
            CaCertifyFailure::KeyMismatch(_) => "ca_key",
            CaCertifyFailure::Attributes { .. } => "ca_attributes",
        }
    }
}

/// Checks a host's vTPM CA evidence against its AK; the CA certificate on success.
pub fn verify_ca_certify(ak: &Public, ev: &CaEvidence<'_>) -> Result<Certificate, CaCertifyFailure> {
    let cert = Certificate::from_der(ev.ca_cert).map_err(|e| CaCertifyFailure::CaCertificate(e.to_string()))?;
    if cert.der() != ev.ca_cert {
        return Err(CaCertifyFailure::CaCertificate(format!("{} bytes follow the certificate", cert.padding())));
    }
    if !cert.extensions().basic_constraints.is_some_and(|b| b.ca) || !cert.extensions().may_sign_certificates() {
        return Err(CaCertifyFailure::CaCertificate("not a CA (basicConstraints cA, keyCertSign)".into()));
    }
    let ca_public = Public::parse_tpm2b(ev.ca_public).map_err(CaCertifyFailure::CaPublic)?;
    let attest = Attest::parse(ev.certify_attest).map_err(CaCertifyFailure::Unreadable)?;
    let signature = Signature::parse(ev.certify_signature).map_err(CaCertifyFailure::Unreadable)?;
    VerifyingKey::from_public(ak).verify(ev.certify_attest, &signature).map_err(CaCertifyFailure::Signature)?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(CaCertifyFailure::Magic { found: attest.magic });
    }
    let AttestInfo::Certify { name, .. } = &attest.info else {
        return Err(CaCertifyFailure::NotCertify { found: attest.tag() });
    };
    let expected = HashAlg::Sha256.hash(ev.ca_cert);
    if attest.extra_data != expected.as_bytes() {
        return Err(CaCertifyFailure::ExtraData { found: hex::encode(&attest.extra_data), expected: hex::encode(expected.as_bytes()) });
    }
    let ca_name = ca_public.name();
    if *name != ca_name {
        return Err(CaCertifyFailure::Name { found: hex::encode(name), expected: hex::encode(&ca_name) });
    }
    ek_matches(&cert, &ca_public).map_err(CaCertifyFailure::KeyMismatch)?;
    if !ca_public.has_attributes(CA_KEY_ATTRIBUTES) || ca_public.has_attributes(attrs::DECRYPT) {
        return Err(CaCertifyFailure::Attributes { found: ca_public.attributes });
    }
    Ok(cert)
}

/// Why a VM's EK certificate has no issuing host.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VmChainError {
    /// No enrolled host publishes a vTPM CA.
    #[error("no enrolled host publishes a vTPM CA")]
    NoHosts,
    /// No host's CA validates the certificate; the failure against the last CA tried.
    #[error("it is not issued by the vTPM CA of any enrolled host ({tried} tried; last: {last})")]
    NotIssued {
        /// CAs tried.
        tried: usize,
        /// The failure against the last one.
        last: EkCertError,
    },
}

/// The host whose vTPM CA validates `ek_cert` at `now` (the CA as the only trust anchor), with
/// the validated chain. `hosts` pairs a host id with its CA certificate.
pub fn issuing_host<'h>(
    ek_cert: &Certificate,
    hosts: impl IntoIterator<Item = (&'h str, &'h Certificate)>,
    now: i64,
) -> Result<(&'h str, ChainInfo), VmChainError> {
    let mut tried = 0;
    let mut last = None;
    for (host, ca) in hosts {
        tried += 1;
        let mut store = TrustStore::new();
        store.add_anchor(ca.clone());
        match verify_chain(ek_cert, &store, now) {
            Ok(chain) => return Ok((host, chain)),
            Err(e) => last = Some(e),
        }
    }
    match last {
        None => Err(VmChainError::NoHosts),
        Some(last) => Err(VmChainError::NotIssued { tried, last }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
