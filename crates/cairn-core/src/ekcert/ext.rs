//! X.509 v3 extensions that decide EK chain validity or identify the TPM.
//!
//! Read: basicConstraints and keyUsage (may this certificate issue others?), key identifiers
//! (which issuer, when names are ambiguous), extendedKeyUsage (TCG EK certificate purpose
//! 2.23.133.8.1), and the subjectAltName directoryName in which the TCG EK Credential Profile puts
//! the TPM manufacturer, model and firmware version. Any other extension marked critical is
//! recorded, so chain validation can refuse what it does not understand (RFC 5280 §4.2).

use crate::codec::Reader;
use crate::error::ParseError;

use super::der::{self, tag};
use super::name::Name;

/// Most extensions accepted in one certificate.
const MAX_EXTENSIONS: usize = 64;
/// Most EKU purposes or SAN entries accepted.
const MAX_LIST: usize = 64;

const OID_SKID: &[u8] = &[0x55, 0x1D, 0x0E];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
const OID_SAN: &[u8] = &[0x55, 0x1D, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
const OID_POLICIES: &[u8] = &[0x55, 0x1D, 0x20];
const OID_AKID: &[u8] = &[0x55, 0x1D, 0x23];
const OID_EKU: &[u8] = &[0x55, 0x1D, 0x25];
const OID_SUBJECT_DIR_ATTRS: &[u8] = &[0x55, 0x1D, 0x09];

/// tcg-at-tpmManufacturer (2.23.133.2.1).
pub(crate) const OID_TPM_MANUFACTURER: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x01];
/// tcg-at-tpmModel (2.23.133.2.2).
pub(crate) const OID_TPM_MODEL: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x02];
/// tcg-at-tpmVersion (2.23.133.2.3).
pub(crate) const OID_TPM_VERSION: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x03];
/// tcg-kp-EKCertificate (2.23.133.8.1), the EK certificate's extended key usage.
pub const EKU_EK_CERTIFICATE: &str = "2.23.133.8.1";

/// keyUsage keyCertSign bit (bit 5, counted from the most significant bit of the first byte).
const KU_KEY_CERT_SIGN: u16 = 1 << (15 - 5);

/// basicConstraints (RFC 5280 §4.2.1.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicConstraints {
    /// cA.
    pub ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u32>,
}

/// The TPM identity of the TCG EK Credential Profile's subjectAltName directoryName.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TpmIdentity {
    /// tpmManufacturer, e.g. `id:53544D20` ("STM ").
    pub manufacturer: Option<String>,
    /// tpmModel, e.g. `ST33HTPHAHB4`.
    pub model: Option<String>,
    /// tpmVersion (firmware), e.g. `id:00490004`.
    pub version: Option<String>,
}

impl TpmIdentity {
    /// The manufacturer's four-byte vendor id when written `id:XXXXXXXX`.
    pub fn manufacturer_id(&self) -> Option<u32> {
        let m = self.manufacturer.as_deref()?;
        let hex = m.strip_prefix("id:").or_else(|| m.strip_prefix("ID:"))?;
        u32::from_str_radix(hex, 16).ok()
    }
}

/// The extensions of one certificate, as far as Cairn reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// basicConstraints, when present.
    pub basic_constraints: Option<BasicConstraints>,
    /// keyUsage bits (first byte in the high half), when present.
    pub key_usage: Option<u16>,
    /// extendedKeyUsage purposes, dotted.
    pub extended_key_usage: Vec<String>,
    /// subjectKeyIdentifier.
    pub subject_key_id: Option<Vec<u8>>,
    /// authorityKeyIdentifier's keyIdentifier.
    pub authority_key_id: Option<Vec<u8>>,
    /// TPM identity from a subjectAltName directoryName, when it names any TPM field.
    pub tpm: Option<TpmIdentity>,
    /// Critical extensions Cairn does not understand (dotted OIDs).
    pub unknown_critical: Vec<String>,
}

impl Extensions {
    /// Whether keyUsage (if present) allows signing certificates.
    pub fn may_sign_certificates(&self) -> bool {
        self.key_usage.is_none_or(|ku| ku & KU_KEY_CERT_SIGN != 0)
    }

    /// Reads the content of the `[3]` wrapper: `Extensions ::= SEQUENCE OF Extension`.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Extensions, ParseError> {
        let (mut seq, _) = der::enter(r, tag::SEQUENCE, "Extensions")?;
        let mut out = Extensions::default();
        let mut count = 0;
        while !seq.is_empty() {
            count += 1;
            if count > MAX_EXTENSIONS {
                return Err(ParseError::TooLarge { field: "Extensions", offset: seq.offset(), size: count, max: MAX_EXTENSIONS });
            }
            let (mut ext, _) = der::enter(&mut seq, tag::SEQUENCE, "Extension")?;
            let oid = der::expect(&mut ext, tag::OID, "Extension.extnID")?.content;
            let critical = if der::peek_is(&ext, tag::BOOLEAN) { der::boolean(&mut ext, "Extension.critical")? } else { false };
            let (mut value, _) = der::enter(&mut ext, tag::OCTET_STRING, "Extension.extnValue")?;
            ext.finish("Extension")?;
            out.read_one(oid, critical, &mut value)?;
        }
        Ok(out)
    }

    fn read_one(&mut self, oid: &[u8], critical: bool, v: &mut Reader<'_>) -> Result<(), ParseError> {
        match oid {
            OID_BASIC_CONSTRAINTS => {
                let (mut s, _) = der::enter(v, tag::SEQUENCE, "BasicConstraints")?;
                let ca = if der::peek_is(&s, tag::BOOLEAN) { der::boolean(&mut s, "BasicConstraints.cA")? } else { false };
                let path_len =
                    if der::peek_is(&s, tag::INTEGER) { Some(der::small_uint(&mut s, "BasicConstraints.pathLen")?) } else { None };
                s.finish("BasicConstraints")?;
                self.basic_constraints = Some(BasicConstraints { ca, path_len });
            }
            OID_KEY_USAGE => {
                let off = v.offset();
                let bits = der::expect(v, tag::BIT_STRING, "KeyUsage")?.content;
                let bytes = bits.get(1..).unwrap_or(&[]);
                if bits.is_empty() || bytes.len() > 2 {
                    return Err(ParseError::BadValue { field: "KeyUsage", offset: off, value: bits.len() as u64, expected: "1 to 3 bytes" });
                }
                let hi = u16::from(bytes.first().copied().unwrap_or(0));
                let lo = u16::from(bytes.get(1).copied().unwrap_or(0));
                self.key_usage = Some((hi << 8) | lo);
            }
            OID_EKU => {
                let (mut s, _) = der::enter(v, tag::SEQUENCE, "ExtKeyUsageSyntax")?;
                while !s.is_empty() {
                    if self.extended_key_usage.len() >= MAX_LIST {
                        return Err(ParseError::TooLarge { field: "ExtKeyUsageSyntax", offset: s.offset(), size: MAX_LIST + 1, max: MAX_LIST });
                    }
                    let p = der::expect(&mut s, tag::OID, "KeyPurposeId")?.content;
                    self.extended_key_usage.push(der::oid_string(p));
                }
            }
            OID_SKID => self.subject_key_id = Some(der::expect(v, tag::OCTET_STRING, "SubjectKeyIdentifier")?.content.to_vec()),
            OID_AKID => {
                let (mut s, _) = der::enter(v, tag::SEQUENCE, "AuthorityKeyIdentifier")?;
                if der::peek_is(&s, 0x80) {
                    self.authority_key_id = Some(der::any(&mut s, "AuthorityKeyIdentifier.keyIdentifier")?.content.to_vec());
                }
            }
            OID_SAN => self.read_san(v)?,
            OID_POLICIES | OID_SUBJECT_DIR_ATTRS => {}
            _ if critical => self.unknown_critical.push(der::oid_string(oid)),
            _ => {}
        }
        Ok(())
    }

    /// subjectAltName: GeneralNames; only directoryName ([4]) entries are read.
    fn read_san(&mut self, v: &mut Reader<'_>) -> Result<(), ParseError> {
        let (mut s, _) = der::enter(v, tag::SEQUENCE, "GeneralNames")?;
        let mut count = 0;
        while !s.is_empty() {
            count += 1;
            if count > MAX_LIST {
                return Err(ParseError::TooLarge { field: "GeneralNames", offset: s.offset(), size: count, max: MAX_LIST });
            }
            if der::peek_is(&s, 0xA4) {
                let (mut dir, _) = der::enter(&mut s, 0xA4, "GeneralName.directoryName")?;
                let name = Name::read(&mut dir, "directoryName")?;
                let id = TpmIdentity {
                    manufacturer: name.attribute(OID_TPM_MANUFACTURER).map(str::to_owned),
                    model: name.attribute(OID_TPM_MODEL).map(str::to_owned),
                    version: name.attribute(OID_TPM_VERSION).map(str::to_owned),
                };
                if id != TpmIdentity::default() {
                    self.tpm = Some(id);
                }
            } else {
                der::any(&mut s, "GeneralName")?;
            }
        }
        Ok(())
    }
}
