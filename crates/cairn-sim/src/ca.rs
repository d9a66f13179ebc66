//! The bench CA: generated per run, it issues the simulated agents' EK certificates.
//!
//! A simulated agent must never pass for a real TPM. Its EK certificate chains only to this CA,
//! whose key exists in the simulator's memory for one run and whose certificate is written only
//! where a bench-configured registrar is told to trust it (its name says so). A production
//! registrar, trusting TPM vendors' CAs, refuses every simulated agent.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::error::SimError;

/// The per-run CA.
pub struct BenchCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for BenchCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchCa").finish_non_exhaustive()
    }
}

impl BenchCa {
    /// A fresh CA (ECDSA P-256), valid for two days.
    pub fn generate() -> Result<BenchCa, SimError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(SimError::keys)?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).map_err(SimError::keys)?;
        let cert_pem = cert.pem();
        Ok(BenchCa { issuer: Issuer::new(params, key), cert_pem })
    }

    /// A CA made earlier by [`BenchCa::generate`] and saved with [`BenchCa::key_pem`], so a
    /// registrar can be told to trust it before the simulator that uses it starts.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<BenchCa, SimError> {
        let key = KeyPair::from_pem(key_pem).map_err(SimError::keys)?;
        // Issued certificates name the issuer by these (fixed) attributes and its key.
        Ok(BenchCa { issuer: Issuer::new(ca_params()?, key), cert_pem: cert_pem.to_owned() })
    }

    /// The CA's private key, PKCS#8 PEM (for [`BenchCa::from_pem`]).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, PEM — what a bench registrar's trust directory holds.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues an EK certificate for the key in `ek` (DER).
    pub fn issue_ek_cert(&self, ek: &KeyPair, serial: u64) -> Result<Vec<u8>, SimError> {
        let mut params = CertificateParams::new(Vec::new()).map_err(SimError::keys)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
        params.key_usages = vec![KeyUsagePurpose::KeyAgreement];
        validity(&mut params);
        let cert = params.signed_by(ek, &self.issuer).map_err(SimError::keys)?;
        Ok(cert.der().to_vec())
    }
}

/// The CA certificate's attributes.
fn ca_params() -> Result<CertificateParams, SimError> {
    let mut params = CertificateParams::new(Vec::new()).map_err(SimError::keys)?;
    params.distinguished_name.push(DnType::CommonName, "Cairn fleet bench CA (simulated TPMs, not for production)");
    params.distinguished_name.push(DnType::OrganizationName, "Cairn bench");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params);
    Ok(params)
}

/// From a day ago to a day ahead: a run's certificates are valid now and soon are not.
fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    params.not_before = (now - day).into();
    params.not_after = (now + day).into();
}
