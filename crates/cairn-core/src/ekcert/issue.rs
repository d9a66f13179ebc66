//! Writing the two certificates a vTPM CA issues: its own self-signed CA certificate and a vTPM's
//! EK certificate (TCG EK Credential Profile shape).
//!
//! The signing key lives in a TPM, so building is split: [`tbs_certificate`] gives the bytes to
//! sign (TBSCertificate, DER) and [`certificate`] wraps them with the signature the TPM made. The
//! signature algorithm is fixed to sha256WithRSAEncryption (the vTPM CA is an RSA-2048 key
//! signing RSASSA-PKCS1-v1_5 / SHA-256). Everything written is read back by [`super::Certificate`]
//! and validated by [`super::verify_chain`]; the tests check both.

use crate::crypto::der::{self, oid};
use crate::error::ParseError;

use super::ext::{OID_TPM_MANUFACTURER, OID_TPM_MODEL, OID_TPM_VERSION};

/// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
const OID_SHA256_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
/// commonName (2.5.4.3).
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
const OID_SAN: &[u8] = &[0x55, 0x1D, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
const OID_AKID: &[u8] = &[0x55, 0x1D, 0x23];
const OID_EKU: &[u8] = &[0x55, 0x1D, 0x25];
/// tcg-kp-EKCertificate (2.23.133.8.1).
const OID_TCG_EK_CERT: &[u8] = &[0x67, 0x81, 0x05, 0x08, 0x01];

/// Longest serial number (RFC 5280 §4.1.2.2).
const MAX_SERIAL: usize = 20;

/// The TPM identity an EK certificate names in its subjectAltName.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpmNames<'a> {
    /// tpmManufacturer, e.g. `id:00001014`.
    pub manufacturer: &'a str,
    /// tpmModel.
    pub model: &'a str,
    /// tpmVersion, e.g. `id:20191023`.
    pub version: &'a str,
}

/// Which certificate is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile<'a> {
    /// A CA: basicConstraints cA (critical, pathLen 0), keyUsage keyCertSign|cRLSign (critical).
    Ca,
    /// An EK certificate: empty subject, critical subjectAltName naming the TPM, keyUsage
    /// keyEncipherment (critical), basicConstraints not a CA, EKU tcg-kp-EKCertificate.
    Ek(TpmNames<'a>),
}

/// What one certificate says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertFields<'a> {
    /// Serial number, big-endian unsigned (1 to 20 bytes; a leading zero is added as needed).
    pub serial: &'a [u8],
    /// Issuer commonName.
    pub issuer: &'a str,
    /// Subject commonName (a [`Profile::Ek`] certificate has an empty subject and ignores it).
    pub subject: &'a str,
    /// notBefore, unix seconds.
    pub not_before: i64,
    /// notAfter, unix seconds.
    pub not_after: i64,
    /// The subject's SubjectPublicKeyInfo, DER.
    pub spki: &'a [u8],
    /// The issuer's key identifier (authorityKeyIdentifier), when known.
    pub authority_key_id: Option<&'a [u8]>,
    /// CA or EK certificate.
    pub profile: Profile<'a>,
}

/// A key identifier for `spki`: the first 20 bytes of SHA-256 over the SubjectPublicKeyInfo.
pub fn key_id(spki: &[u8]) -> Vec<u8> {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    d.as_ref().get(..20).unwrap_or(d.as_ref()).to_vec()
}

/// The TBSCertificate (DER) for `f`, to be signed with RSASSA-PKCS1-v1_5 / SHA-256.
pub fn tbs_certificate(f: &CertFields<'_>) -> Result<Vec<u8>, ParseError> {
    let serial = serial(f.serial)?;
    if f.not_after < f.not_before {
        return Err(ParseError::text("certificate validity", "notAfter is before notBefore"));
    }
    let mut body = Vec::with_capacity(512 + f.spki.len());
    der::write(0xA0, &tlv(0x02, &[2]), &mut body);
    der::write(0x02, &serial, &mut body);
    body.extend_from_slice(&algorithm());
    body.extend_from_slice(&cn_name(f.issuer));
    let mut validity = time(f.not_before)?;
    validity.extend_from_slice(&time(f.not_after)?);
    der::write(0x30, &validity, &mut body);
    match f.profile {
        Profile::Ca => body.extend_from_slice(&cn_name(f.subject)),
        Profile::Ek(_) => der::write(0x30, &[], &mut body),
    }
    body.extend_from_slice(f.spki);
    let mut exts = Vec::new();
    match f.profile {
        Profile::Ca => {
            // cA TRUE, pathLenConstraint 0.
            let mut bc = Vec::new();
            der::write(0x01, &[0xFF], &mut bc);
            der::write(0x02, &[0], &mut bc);
            extension(OID_BASIC_CONSTRAINTS, true, &seq(&bc), &mut exts);
            // keyCertSign (bit 5) and cRLSign (bit 6): 0x06, one unused bit.
            extension(OID_KEY_USAGE, true, &tlv(0x03, &[0x01, 0x06]), &mut exts);
            let mut skid = Vec::new();
            der::write(0x04, &key_id(f.spki), &mut skid);
            extension(oid::SUBJECT_KEY_ID, false, &skid, &mut exts);
        }
        Profile::Ek(names) => {
            extension(OID_SAN, true, &seq(&tlv(0xA4, &tpm_name(names))), &mut exts);
            // keyEncipherment (bit 2): 0x20, five unused bits.
            extension(OID_KEY_USAGE, true, &tlv(0x03, &[0x05, 0x20]), &mut exts);
            extension(OID_BASIC_CONSTRAINTS, true, &seq(&[]), &mut exts);
            extension(OID_EKU, false, &seq(&tlv(0x06, OID_TCG_EK_CERT)), &mut exts);
        }
    }
    if let Some(akid) = f.authority_key_id {
        extension(OID_AKID, false, &seq(&tlv(0x80, akid)), &mut exts);
    }
    der::write(0xA3, &seq(&exts), &mut body);
    Ok(seq(&body))
}

/// The certificate: `tbs` with the sha256WithRSAEncryption `signature` over it.
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(tbs.len() + signature.len() + 32);
    body.extend_from_slice(tbs);
    body.extend_from_slice(&algorithm());
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend_from_slice(signature);
    der::write(0x03, &bits, &mut body);
    seq(&body)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    der::write(tag, content, &mut out);
    out
}

fn seq(content: &[u8]) -> Vec<u8> {
    tlv(0x30, content)
}

/// The serial's INTEGER content: leading zeros stripped, a zero added when the top bit is set.
fn serial(v: &[u8]) -> Result<Vec<u8>, ParseError> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    let v = v.get(first..).unwrap_or(&[]);
    if v.is_empty() || v.len() > MAX_SERIAL {
        return Err(ParseError::text("certificate serial", format!("{} significant bytes (1 to {MAX_SERIAL})", v.len())));
    }
    let mut out = Vec::with_capacity(v.len() + 1);
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(v);
    if out.len() > MAX_SERIAL {
        // 20 content octets at most, sign octet included.
        return Err(ParseError::text("certificate serial", "its top bit makes it 21 bytes; use at most 19 bytes then"));
    }
    Ok(out)
}

/// AlgorithmIdentifier sha256WithRSAEncryption with NULL parameters.
fn algorithm() -> Vec<u8> {
    let mut alg = Vec::with_capacity(15);
    der::write(0x06, OID_SHA256_RSA, &mut alg);
    der::write(0x05, &[], &mut alg);
    seq(&alg)
}

/// A Name of one commonName (UTF8String).
fn cn_name(cn: &str) -> Vec<u8> {
    let mut atv = Vec::new();
    der::write(0x06, OID_CN, &mut atv);
    der::write(0x0C, cn.as_bytes(), &mut atv);
    seq(&tlv(0x31, &seq(&atv)))
}

/// The directoryName of the TCG EK Credential Profile: one RDN per TPM attribute.
fn tpm_name(n: TpmNames<'_>) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (oid, value) in [(OID_TPM_MANUFACTURER, n.manufacturer), (OID_TPM_MODEL, n.model), (OID_TPM_VERSION, n.version)] {
        let mut atv = Vec::new();
        der::write(0x06, oid, &mut atv);
        der::write(0x0C, value.as_bytes(), &mut atv);
        rdns.extend_from_slice(&tlv(0x31, &seq(&atv)));
    }
    seq(&rdns)
}

fn extension(oid: &[u8], critical: bool, value: &[u8], out: &mut Vec<u8>) {
    let mut e = Vec::with_capacity(value.len() + 16);
    der::write(0x06, oid, &mut e);
    if critical {
        der::write(0x01, &[0xFF], &mut e);
    }
    der::write(0x04, value, &mut e);
    out.extend_from_slice(&seq(&e));
}

/// UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
fn time(unix: i64) -> Result<Vec<u8>, ParseError> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(ParseError::text("certificate validity", format!("year {y} cannot be written")));
    }
    let hms = format!("{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    Ok(if (1950..2050).contains(&y) {
        tlv(0x17, format!("{:02}{m:02}{d:02}{hms}", y % 100).as_bytes())
    } else {
        tlv(0x18, format!("{y:04}{m:02}{d:02}{hms}").as_bytes())
    })
}

/// Proleptic Gregorian (year, month, day) of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};

    use super::*;
    use crate::ekcert::{ek_matches, verify_chain, Certificate, TrustStore, EKU_EK_CERTIFICATE};
    use crate::tpm::Public;

    fn sign(key: &RsaKeyPair, tbs: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), tbs, &mut sig).unwrap();
        sig
    }

    fn spki_of(key: &RsaKeyPair) -> Vec<u8> {
        key.public_key().as_der().unwrap().as_ref().to_vec()
    }

    #[test]
    fn ca_and_ek_certificates_parse_chain_and_match() {
        let ca_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let ek_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let ca_spki = spki_of(&ca_key);
        let now = 1_800_000_000;
        let ca_fields = CertFields {
            serial: &[0x80, 1],
            issuer: "vTPM CA",
            subject: "vTPM CA",
            not_before: now - 60,
            not_after: now + 86_400 * 365 * 30,
            spki: &ca_spki,
            authority_key_id: None,
            profile: Profile::Ca,
        };
        let tbs = tbs_certificate(&ca_fields).unwrap();
        let ca_der = certificate(&tbs, &sign(&ca_key, &tbs));
        let ca = Certificate::from_der(&ca_der).unwrap();
        assert_eq!(ca.serial_hex(), "8001");
        assert!(ca.is_self_issued());
        assert!(ca.extensions().basic_constraints.unwrap().ca);
        assert!(ca.extensions().may_sign_certificates());
        assert_eq!(ca.not_after(), now + 86_400 * 365 * 30, "a GeneralizedTime past 2049 reads back");

        let ek_spki = spki_of(&ek_key);
        let akid = key_id(&ca_spki);
        let names = TpmNames { manufacturer: "id:00001014", model: "swtpm", version: "id:20191023" };
        let ek_fields = CertFields {
            serial: &[7; 16],
            subject: "",
            spki: &ek_spki,
            authority_key_id: Some(&akid),
            profile: Profile::Ek(names),
            not_after: now + 86_400,
            ..ca_fields
        };
        let tbs = tbs_certificate(&ek_fields).unwrap();
        let ek_der = certificate(&tbs, &sign(&ca_key, &tbs));
        let ek = Certificate::from_der(&ek_der).unwrap();
        assert!(ek.subject().is_empty());
        assert_eq!(ek.extended_key_usage(), [EKU_EK_CERTIFICATE]);
        assert_eq!(ek.tpm_identity().unwrap().model.as_deref(), Some("swtpm"));
        let mut store = TrustStore::new();
        store.add_anchor(ca.clone());
        let chain = verify_chain(&ek, &store, now).unwrap();
        assert_eq!(chain.path.len(), 2);
        assert_eq!(chain.valid_until, now + 86_400);
        assert!(verify_chain(&ek, &store, now + 86_401).is_err());
        // The certificate names this key and no other.
        let key = crate::crypto::spki::from_spki_der(&ek_spki).unwrap();
        let as_tpm = Public::for_signing_key(&key, crate::tpm::SigScheme::Rsassa, crate::HashAlg::Sha256).unwrap();
        ek_matches(&ek, &as_tpm).unwrap();
        // A certificate signed by another key does not chain.
        let other = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let forged = Certificate::from_der(&certificate(&tbs, &sign(&other, &tbs))).unwrap();
        assert!(verify_chain(&forged, &store, now).is_err());
    }

    #[test]
    fn times_and_serials() {
        assert_eq!(time(0).unwrap(), tlv(0x17, b"700101000000Z"));
        assert_eq!(time(2_524_607_999).unwrap(), tlv(0x17, b"491231235959Z"));
        assert_eq!(time(2_524_608_000).unwrap(), tlv(0x18, b"20500101000000Z"));
        assert_eq!(time(951_825_600).unwrap(), tlv(0x17, b"000229120000Z"));
        assert_eq!(time(-631_152_001).unwrap(), tlv(0x18, b"19491231235959Z"));
        assert_eq!(serial(&[0, 0, 5]).unwrap(), [5]);
        assert_eq!(serial(&[0x90]).unwrap(), [0, 0x90]);
        assert!(serial(&[0, 0]).is_err());
        assert!(serial(&[0x90; 20]).is_err());
        assert!(serial(&[0x10; 20]).is_ok());
    }
}
