//! What a registration must prove before anything is stored.
//!
//! Decodes the request's base64 fields and judges them with cairn-core: the EK must be a
//! restricted decryption key (MakeCredential needs one), the AK a restricted signing key that
//! cannot leave the TPM, with a fixed scheme Cairn verifies and a hash stronger than SHA-1; the
//! EK certificate, when present, must chain to the trust store at `now` and certify exactly
//! this EK. A VM (`cairn_kind` vm) is judged differently: its EK certificate must chain to the
//! vTPM CA of an enrolled host — and only to such a CA, never to the vendor trust store — and a
//! host never has a vTPM CA accepted as its anchor. A host's `cairn_vtpm_ca` evidence must pass
//! cairn-core's certify checks with this same registration's AK. The credential is then bound to
//! the AK's name computed here from `aik_tpm`, so the AK that activates is the AK that is stored.

use std::net::IpAddr;

use base64::Engine;
use cairn_core::alg::HashAlg;
use cairn_core::ekcert::{certificates_from_bytes, ek_matches, verify_chain, Certificate, ChainInfo, TrustStore};
use cairn_core::tpm::public::attrs;
use cairn_core::tpm::{Public, PublicKey, SigScheme};
use cairn_core::vtpmca::{issuing_host, verify_ca_certify, CaEvidence};
use cairn_proto::registrar::{RegisterRequest, KIND_HOST, KIND_VM};

use crate::error::RegistrarError;

/// Largest agent mTLS certificate (PEM) kept.
const MAX_MTLS_CERT: usize = 16 * 1024;

/// A registration whose keys passed every check.
#[derive(Clone, Debug)]
pub struct CheckedRegistration {
    /// EK TPM2B_PUBLIC bytes as sent.
    pub ek_tpm: Vec<u8>,
    /// The parsed EK.
    pub ek: Public,
    /// AK TPM2B_PUBLIC bytes as sent.
    pub aik_tpm: Vec<u8>,
    /// The parsed AK.
    pub ak: Public,
    /// EK certificate bytes as sent.
    pub ekcert: Option<Vec<u8>>,
    /// The validated chain, when there was a certificate.
    pub chain: Option<ChainInfo>,
    /// The agent's HTTPS certificate, PEM, when it sent one.
    pub mtls_cert: Option<String>,
    /// Contact address.
    pub ip: Option<IpAddr>,
    /// `host` or `vm`.
    pub kind: &'static str,
    /// A host's vTPM CA certificate, its evidence checked.
    pub vtpm_ca_cert: Option<Vec<u8>>,
    /// A VM's host: whose vTPM CA issued its EK certificate.
    pub host_agent_id: Option<String>,
}

/// What the registration says it is: `host` (also when absent) or `vm`.
pub fn requested_kind(req: &RegisterRequest) -> Result<&'static str, RegistrarError> {
    match req.cairn_kind.as_deref().map(str::trim) {
        None | Some("") => Ok(KIND_HOST),
        Some(k) if k == KIND_HOST => Ok(KIND_HOST),
        Some(k) if k == KIND_VM => Ok(KIND_VM),
        Some(other) => Err(RegistrarError::KeyRefused { field: "cairn_kind", reason: format!("{other:?} is not host or vm") }),
    }
}

/// Checks `req` (from agent `agent`) at unix time `now`: a host's EK certificate against `trust`,
/// a VM's against `vtpm_cas`, the vTPM CAs of the active hosts (host id, certificate).
pub fn check_registration(
    agent: &str,
    req: &RegisterRequest,
    trust: &TrustStore,
    vtpm_cas: &[(String, Certificate)],
    accept_without_ek_cert: bool,
    now: i64,
) -> Result<CheckedRegistration, RegistrarError> {
    let kind = requested_kind(req)?;
    let ek_tpm = b64("ek_tpm", &req.ek_tpm)?;
    let aik_tpm = b64("aik_tpm", &req.aik_tpm)?;
    let ek = Public::parse_tpm2b(&ek_tpm).map_err(|source| RegistrarError::Malformed { field: "ek_tpm", source })?;
    let ak = Public::parse_tpm2b(&aik_tpm).map_err(|source| RegistrarError::Malformed { field: "aik_tpm", source })?;
    check_ek(&ek)?;
    check_ak(&ak)?;
    let ekcert = match req.ekcert.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(b64("ekcert", text)?),
    };
    let mut host_agent_id = None;
    let chain = match (&ekcert, kind) {
        (None, KIND_VM) => return Err(RegistrarError::VmEkCertMissing),
        (None, _) if accept_without_ek_cert => None,
        (None, _) => return Err(RegistrarError::EkCertMissing),
        (Some(der), _) => {
            let cert = Certificate::from_der(der).map_err(|source| RegistrarError::Malformed { field: "ekcert", source })?;
            let chain = if kind == KIND_VM {
                let hosts = vtpm_cas.iter().map(|(h, c)| (h.as_str(), c));
                let (host, chain) =
                    issuing_host(&cert, hosts, now).map_err(|reason| RegistrarError::VmNotIssued { agent: agent.to_owned(), reason })?;
                host_agent_id = Some(host.to_owned());
                chain
            } else {
                verify_chain(&cert, trust, now).map_err(RegistrarError::EkCert)?
            };
            ek_matches(&cert, &ek).map_err(RegistrarError::EkCert)?;
            Some(chain)
        }
    };
    let vtpm_ca_cert = match (&req.cairn_vtpm_ca, kind) {
        (None, _) => None,
        (Some(_), KIND_VM) => {
            return Err(RegistrarError::KeyRefused { field: "cairn_vtpm_ca", reason: "a VM does not issue vTPM EK certificates".into() })
        }
        (Some(ev), _) => {
            let (ca_cert, ca_public) = (b64("cairn_vtpm_ca.ca_cert", &ev.ca_cert)?, b64("cairn_vtpm_ca.ca_public", &ev.ca_public)?);
            let attest = b64("cairn_vtpm_ca.certify_attest", &ev.certify_attest)?;
            let signature = b64("cairn_vtpm_ca.certify_signature", &ev.certify_signature)?;
            let evidence = CaEvidence { ca_cert: &ca_cert, ca_public: &ca_public, certify_attest: &attest, certify_signature: &signature };
            verify_ca_certify(&ak, &evidence).map_err(RegistrarError::VtpmCa)?;
            Some(ca_cert)
        }
    };
    let mtls_cert = match req.mtls_cert.as_deref().map(str::trim) {
        None | Some("") | Some("disabled") => None,
        Some(pem) => Some(check_mtls_cert(pem)?),
    };
    let ip = match req.ip.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(ip) => Some(ip.parse().map_err(|_| RegistrarError::KeyRefused { field: "ip", reason: format!("{ip:?} is not an IP address") })?),
    };
    Ok(CheckedRegistration { ek_tpm, ek, aik_tpm, ak, ekcert, chain, mtls_cert, ip, kind, vtpm_ca_cert, host_agent_id })
}

/// Standard base64 (Keylime's), naming the field on failure.
fn b64(field: &'static str, text: &str) -> Result<Vec<u8>, RegistrarError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| RegistrarError::Base64 { field, reason: e.to_string() })
}

/// An EK is a restricted decryption (storage) key that never leaves the TPM.
fn check_ek(ek: &Public) -> Result<(), RegistrarError> {
    let refuse = |reason: &str| Err(RegistrarError::KeyRefused { field: "ek_tpm", reason: reason.to_owned() });
    if matches!(ek.key, PublicKey::Symmetric(_)) {
        return refuse("an EK must be an RSA or ECC key");
    }
    if !ek.has_attributes(attrs::RESTRICTED | attrs::DECRYPT | attrs::FIXED_TPM | attrs::FIXED_PARENT) || ek.has_attributes(attrs::SIGN) {
        return refuse(&format!("attributes {:#010x} are not those of an EK (fixedTPM, fixedParent, restricted, decrypt, not sign)", ek.attributes));
    }
    Ok(())
}

/// An AK is a restricted signing key generated in and bound to the TPM, with a fixed scheme.
pub fn check_ak(ak: &Public) -> Result<(), RegistrarError> {
    let refuse = |reason: String| Err(RegistrarError::KeyRefused { field: "aik_tpm", reason });
    let needed = attrs::RESTRICTED | attrs::SIGN | attrs::FIXED_TPM | attrs::FIXED_PARENT | attrs::SENSITIVE_DATA_ORIGIN;
    if !ak.has_attributes(needed) || ak.has_attributes(attrs::DECRYPT) {
        return refuse(format!(
            "attributes {:#010x} are not those of an AK (fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign, not decrypt)",
            ak.attributes
        ));
    }
    let Some((scheme, hash)) = ak.signing_scheme() else {
        return refuse(format!("signing scheme {:#06x} is not one Cairn verifies (rsassa, rsapss, ecdsa, sm2 with a hash)", ak.params.scheme.alg.0));
    };
    let fits = matches!(
        (scheme, &ak.key),
        (SigScheme::Rsassa | SigScheme::Rsapss, PublicKey::Rsa { .. }) | (SigScheme::Ecdsa | SigScheme::Sm2, PublicKey::Ecc { .. })
    );
    if !fits {
        return refuse(format!("scheme {} does not fit a {} key", scheme.name(), ak.key_name()));
    }
    if hash == HashAlg::Sha1 {
        return refuse("SHA-1 signing is not accepted".to_owned());
    }
    Ok(())
}

/// The agent's HTTPS certificate must be a bounded PEM certificate.
fn check_mtls_cert(pem: &str) -> Result<String, RegistrarError> {
    if pem.len() > MAX_MTLS_CERT {
        return Err(RegistrarError::KeyRefused { field: "mtls_cert", reason: format!("{} bytes exceed {MAX_MTLS_CERT}", pem.len()) });
    }
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(RegistrarError::KeyRefused { field: "mtls_cert", reason: "not a PEM certificate".to_owned() });
    }
    certificates_from_bytes(pem.as_bytes()).map_err(|source| RegistrarError::Malformed { field: "mtls_cert", source })?;
    Ok(pem.to_owned())
}
