//! `Certificate` (RFC 5280 §4.1): an X.509 v1/v3 certificate as TPM vendors issue them.
//!
//! EK certificates are read as stored in the TPM's NV index, so zero or 0xFF padding after the
//! outer SEQUENCE is tolerated and reported ([`Certificate::padding`]); any other trailing byte is
//! an error. The signed part (TBSCertificate) is kept byte for byte, because the signature covers
//! exactly those bytes whatever their encoding; nothing is re-encoded.

use crate::codec::Reader;
use crate::crypto::spki;
use crate::error::ParseError;
use crate::tpm::PublicKey;

use super::der::{self, tag};
use super::ext::{Extensions, TpmIdentity};
use super::name::Name;
use super::sigalg::SignatureAlgorithm;

/// Largest certificate accepted (EK certificates are 0.7–2 KB; NV indices hold at most a few KB).
pub const MAX_CERTIFICATE: usize = 16 * 1024;

/// An X.509 certificate (RFC 5280 `Certificate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    padding: usize,
    tbs: Vec<u8>,
    version: u32,
    serial: Vec<u8>,
    issuer: Name,
    subject: Name,
    not_before: i64,
    not_after: i64,
    spki: Vec<u8>,
    extensions: Extensions,
    signature_algorithm: SignatureAlgorithm,
    signature: Vec<u8>,
}

impl Certificate {
    /// Parses a DER certificate, tolerating trailing 0x00/0xFF padding (NV reads return the
    /// index's whole size).
    pub fn from_der(bytes: &[u8]) -> Result<Certificate, ParseError> {
        if bytes.len() > MAX_CERTIFICATE {
            return Err(ParseError::TooLarge { field: "Certificate", offset: 0, size: bytes.len(), max: MAX_CERTIFICATE });
        }
        let mut r = Reader::new(bytes);
        let (mut cert, der) = der::enter(&mut r, tag::SEQUENCE, "Certificate")?;
        let padding = r.remaining();
        let rest = r.rest();
        let pad = rest.first().copied().unwrap_or(0);
        if !(pad == 0x00 || pad == 0xFF) || rest.iter().any(|b| *b != pad) {
            r.finish("Certificate")?;
        }
        let (mut tbs_r, tbs) = der::enter(&mut cert, tag::SEQUENCE, "TBSCertificate")?;
        let (signature_algorithm, outer_alg) = SignatureAlgorithm::read(&mut cert, "Certificate.signatureAlgorithm")?;
        let signature = der::octet_aligned_bits(&mut cert, "Certificate.signatureValue")?.to_vec();
        cert.finish("Certificate")?;
        let mut c = Certificate::read_tbs(&mut tbs_r, &outer_alg, signature_algorithm, signature)?;
        c.der = der.to_vec();
        c.padding = padding;
        c.tbs = tbs.to_vec();
        Ok(c)
    }

    fn read_tbs(
        r: &mut Reader<'_>,
        outer_alg: &[u8],
        signature_algorithm: SignatureAlgorithm,
        signature: Vec<u8>,
    ) -> Result<Certificate, ParseError> {
        let version = if der::peek_is(r, 0xA0) {
            let (mut v, _) = der::enter(r, 0xA0, "TBSCertificate.version")?;
            der::small_uint(&mut v, "TBSCertificate.version")? + 1
        } else {
            1
        };
        let serial = der::expect(r, tag::INTEGER, "TBSCertificate.serialNumber")?.content.to_vec();
        let alg_off = r.offset();
        let (_, inner_alg) = SignatureAlgorithm::read(r, "TBSCertificate.signature")?;
        if inner_alg != outer_alg {
            // RFC 5280 §4.1.1.2: the signed copy of the algorithm must equal the outer one.
            let expected = "the same AlgorithmIdentifier as Certificate.signatureAlgorithm";
            return Err(ParseError::BadValue { field: "TBSCertificate.signature", offset: alg_off, value: 0, expected });
        }
        let issuer = Name::read(r, "TBSCertificate.issuer")?;
        let (mut validity, _) = der::enter(r, tag::SEQUENCE, "TBSCertificate.validity")?;
        let not_before = der::time(&mut validity, "Validity.notBefore")?;
        let not_after = der::time(&mut validity, "Validity.notAfter")?;
        validity.finish("Validity")?;
        let subject = Name::read(r, "TBSCertificate.subject")?;
        let spki = der::expect(r, tag::SEQUENCE, "TBSCertificate.subjectPublicKeyInfo")?.raw.to_vec();
        for unique_id in [0x81, 0xA1, 0x82, 0xA2] {
            if der::peek_is(r, unique_id) {
                der::any(r, "TBSCertificate.uniqueID")?;
            }
        }
        let extensions = if der::peek_is(r, 0xA3) {
            let (mut e, _) = der::enter(r, 0xA3, "TBSCertificate.extensions")?;
            let ext = Extensions::read(&mut e)?;
            e.finish("TBSCertificate.extensions")?;
            ext
        } else {
            Extensions::default()
        };
        r.finish("TBSCertificate")?;
        Ok(Certificate {
            der: Vec::new(),
            padding: 0,
            tbs: Vec::new(),
            version,
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            spki,
            extensions,
            signature_algorithm,
            signature,
        })
    }

    /// The certificate's DER (outer SEQUENCE only, padding excluded).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// Bytes of padding that followed the DER in the input.
    pub fn padding(&self) -> usize {
        self.padding
    }
    /// The signed bytes (TBSCertificate, as encoded).
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }
    /// X.509 version (1 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// serialNumber content bytes (two's complement, as encoded).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    /// Serial number in upper-case hex without leading zero bytes, as openssl prints it.
    pub fn serial_hex(&self) -> String {
        let s = der::strip_zeros(&self.serial);
        if s.is_empty() {
            "00".into()
        } else {
            hex::encode_upper(s)
        }
    }
    /// Issuer.
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }
    /// Subject (often empty for EK certificates).
    pub fn subject(&self) -> &Name {
        &self.subject
    }
    /// notBefore, unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// notAfter, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
    /// SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }
    /// The subject's public key as a TPM key (RSA, or EC on P-256/P-384/SM2).
    pub fn public_key(&self) -> Result<PublicKey, ParseError> {
        spki::from_spki_der(&self.spki)
    }
    /// Extensions read by Cairn.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    /// TPM manufacturer/model/version from the subjectAltName, when present.
    pub fn tpm_identity(&self) -> Option<&TpmIdentity> {
        self.extensions.tpm.as_ref()
    }
    /// extendedKeyUsage purposes, dotted.
    pub fn extended_key_usage(&self) -> &[String] {
        &self.extensions.extended_key_usage
    }
    /// Signature algorithm.
    pub fn signature_algorithm(&self) -> &SignatureAlgorithm {
        &self.signature_algorithm
    }
    /// Signature value.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
    /// Whether the issuer and subject names are the same (a root or a self-issued certificate).
    pub fn is_self_issued(&self) -> bool {
        self.subject.matches(&self.issuer)
    }
}
