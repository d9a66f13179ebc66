//! The vTPM CA: a signing key in the host TPM and the certificates it signs.
//!
//! The CA directory (DIR/.vtpm-ca unless --ca-dir says otherwise) holds the CA key's blobs and its
//! self-signed certificate; the first `cairn vtpm create` makes both. Certificates are written by
//! cairn-core's DER writer and signed by the host TPM (TPM2_Sign over SHA-256 of the
//! TBSCertificate), each signature in its own short TPM session, so the host TPM is free between
//! them. A vTPM's EK certificate names the CA by its key identifier and is valid for
//! [`EK_CERT_YEARS`]; the CA for [`CA_YEARS`].

use std::path::Path;

use anyhow::Context;
use cairn_core::crypto::spki::to_spki_der;
use cairn_core::ekcert::issue::{certificate, key_id, tbs_certificate, CertFields, Profile, TpmNames};
use cairn_core::ekcert::Certificate;
use cairn_tpm::vtpm_ca::CaKey;
use cairn_tpm::Tpm;

/// Validity of the CA certificate.
const CA_YEARS: i64 = 20;
/// Validity of an EK certificate.
const EK_CERT_YEARS: i64 = 10;
/// Backdating of notBefore, for hosts whose clocks lag a little.
const BACKDATE: i64 = 3600;
const YEAR: i64 = 365 * 86_400;
/// The TPM a vTPM is, as its EK certificate names it (swtpm's manufacturer id and firmware).
const VTPM_NAMES: TpmNames<'static> = TpmNames { manufacturer: "id:00001014", model: "swtpm", version: "id:20191023" };

/// A vTPM CA ready to issue: its key blobs and certificate.
pub struct VtpmCa {
    key: CaKey,
    cert: Certificate,
}

impl VtpmCa {
    /// The CA of `dir`, created (key in the host TPM, self-signed certificate) if `dir` has none.
    pub fn open_or_create(dir: &Path, host_tcti: &str, now: i64) -> anyhow::Result<VtpmCa> {
        if let Some((key, cert)) = CaKey::read_dir(dir)? {
            let cert = Certificate::from_der(&cert).with_context(|| format!("the CA certificate in {}", dir.display()))?;
            return Ok(VtpmCa { key, cert });
        }
        super::make_private_dir_all(dir)?;
        let mut host = Tpm::open(host_tcti)?;
        let key = host.create_ca_key().context("creating the vTPM CA key in the host TPM")?;
        let public = cairn_core::tpm::Public::parse_tpm2b(&key.public).context("the new CA key's public area")?;
        let spki = to_spki_der(&public.key)?;
        let name = format!("Cairn vTPM CA {}", hex::encode(key_id(&spki).get(..8).unwrap_or(&[])));
        let fields = CertFields {
            serial: &random_serial()?,
            issuer: &name,
            subject: &name,
            not_before: now - BACKDATE,
            not_after: now + CA_YEARS * YEAR,
            spki: &spki,
            authority_key_id: None,
            profile: Profile::Ca,
        };
        let der = sign(&mut host, &key, &fields)?;
        key.write_dir(dir, &der)?;
        Ok(VtpmCa { key, cert: Certificate::from_der(&der).context("the new CA certificate")? })
    }

    /// An EK certificate for `ek` (the vTPM's EK, TPM2B_PUBLIC), signed by the host TPM.
    pub fn issue_ek_certificate(&self, host_tcti: &str, ek: &[u8], now: i64) -> anyhow::Result<Vec<u8>> {
        let ek = cairn_core::tpm::Public::parse_tpm2b(ek).context("the vTPM's EK")?;
        let spki = to_spki_der(&ek.key)?;
        let akid = self.cert.extensions().subject_key_id.clone().unwrap_or_else(|| key_id(self.cert.spki()));
        let issuer = self.cert.subject().attribute(&[0x55, 0x04, 0x03]).unwrap_or("Cairn vTPM CA").to_owned();
        let fields = CertFields {
            serial: &random_serial()?,
            issuer: &issuer,
            subject: "",
            not_before: now - BACKDATE,
            not_after: (now + EK_CERT_YEARS * YEAR).min(self.cert.not_after()),
            spki: &spki,
            authority_key_id: Some(&akid),
            profile: Profile::Ek(VTPM_NAMES),
        };
        let mut host = Tpm::open(host_tcti)?;
        sign(&mut host, &self.key, &fields)
    }
}

/// The certificate of `fields`, signed by the CA key in `host`.
fn sign(host: &mut Tpm, key: &CaKey, fields: &CertFields<'_>) -> anyhow::Result<Vec<u8>> {
    let tbs = tbs_certificate(fields)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tbs);
    let signature = host.ca_sign(key, digest.as_ref()).context("signing with the vTPM CA key in the host TPM")?;
    Ok(certificate(&tbs, &signature))
}

/// 16 random bytes, top bit clear (a positive INTEGER of at most 16 bytes).
fn random_serial() -> anyhow::Result<[u8; 16]> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| anyhow::anyhow!("no randomness for a certificate serial"))?;
    s[0] = (s[0] & 0x7F) | 0x01;
    Ok(s)
}
