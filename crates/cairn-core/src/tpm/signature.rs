//! TPMT_SIGNATURE: a TPM signature with its scheme and hash.

use std::fmt;

use crate::alg::{AlgId, HashAlg};
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

use super::{MAX_ECC_BYTES, MAX_RSA_BYTES};

/// A signing scheme Cairn verifies (TPMI_ALG_SIG_SCHEME, narrowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigScheme {
    /// RSASSA-PKCS1-v1_5.
    Rsassa,
    /// RSASSA-PSS.
    Rsapss,
    /// ECDSA.
    Ecdsa,
    /// SM2 (GB/T 32918), over the hash of the message with no ZA prefix, as a TPM signs.
    Sm2,
}

impl SigScheme {
    /// The TPM_ALG_ID.
    pub fn alg_id(self) -> AlgId {
        match self {
            SigScheme::Rsassa => AlgId::RSASSA,
            SigScheme::Rsapss => AlgId::RSAPSS,
            SigScheme::Ecdsa => AlgId::ECDSA,
            SigScheme::Sm2 => AlgId::SM2,
        }
    }
    /// The scheme for a TPM_ALG_ID.
    pub fn from_alg_id(id: AlgId) -> Option<SigScheme> {
        Some(match id {
            AlgId::RSASSA => SigScheme::Rsassa,
            AlgId::RSAPSS => SigScheme::Rsapss,
            AlgId::ECDSA => SigScheme::Ecdsa,
            AlgId::SM2 => SigScheme::Sm2,
            _ => return None,
        })
    }
    /// Keylime's name (`rsassa`, `rsapss`, `ecdsa`, `sm2`).
    pub fn name(self) -> &'static str {
        match self {
            SigScheme::Rsassa => "rsassa",
            SigScheme::Rsapss => "rsapss",
            SigScheme::Ecdsa => "ecdsa",
            SigScheme::Sm2 => "sm2",
        }
    }
}

impl fmt::Display for SigScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The signature value, by family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureValue {
    /// TPMS_SIGNATURE_RSA.sig (big-endian, modulus length).
    Rsa(Vec<u8>),
    /// TPMS_SIGNATURE_ECC: r and s, big-endian, as the TPM emitted them.
    Ecc {
        /// r.
        r: Vec<u8>,
        /// s.
        s: Vec<u8>,
    },
}

/// TPMT_SIGNATURE (for the schemes Cairn verifies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The scheme.
    pub scheme: SigScheme,
    /// The hash the scheme used.
    pub hash: HashAlg,
    /// The value.
    pub value: SignatureValue,
}

impl Signature {
    /// Parses a TPMT_SIGNATURE that fills `bytes` exactly.
    pub fn parse(bytes: &[u8]) -> Result<Signature, ParseError> {
        let mut r = Reader::new(bytes);
        let s = Signature::read(&mut r)?;
        r.finish("TPMT_SIGNATURE")?;
        Ok(s)
    }

    /// Reads a TPMT_SIGNATURE.
    pub fn read(r: &mut Reader<'_>) -> Result<Signature, ParseError> {
        let offset = r.offset();
        let id = AlgId(r.u16_be("TPMT_SIGNATURE.sigAlg")?);
        let scheme = SigScheme::from_alg_id(id).ok_or(ParseError::UnsupportedAlgorithm {
            field: "TPMT_SIGNATURE.sigAlg",
            offset,
            alg: id.0,
        })?;
        let hash = HashAlg::read_be(r, "TPMT_SIGNATURE.hash")?;
        let value = match scheme {
            SigScheme::Rsassa | SigScheme::Rsapss => {
                SignatureValue::Rsa(r.tpm2b(MAX_RSA_BYTES, "TPMS_SIGNATURE_RSA.sig")?.to_vec())
            }
            SigScheme::Ecdsa | SigScheme::Sm2 => {
                let rr = r.tpm2b(MAX_ECC_BYTES, "TPMS_SIGNATURE_ECC.signatureR")?.to_vec();
                let ss = r.tpm2b(MAX_ECC_BYTES, "TPMS_SIGNATURE_ECC.signatureS")?.to_vec();
                SignatureValue::Ecc { r: rr, s: ss }
            }
        };
        Ok(Signature { scheme, hash, value })
    }

    /// Marshals to TPM wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + MAX_RSA_BYTES.min(300));
        out.put_u16_be(self.scheme.alg_id().0);
        out.put_u16_be(self.hash.alg_id().0);
        match &self.value {
            SignatureValue::Rsa(s) => out.put_tpm2b(s),
            SignatureValue::Ecc { r, s } => {
                out.put_tpm2b(r);
                out.put_tpm2b(s);
            }
        }
        out
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecc_round_trip_and_truncations() {
        let s = Signature {
            scheme: SigScheme::Sm2,
            hash: HashAlg::Sha256,
            value: SignatureValue::Ecc { r: vec![1; 32], s: vec![2; 31] },
        };
        let b = s.to_bytes();
        assert_eq!(Signature::parse(&b).unwrap(), s);
        for cut in 0..b.len() {
            assert!(Signature::parse(&b[..cut]).is_err());
        }
    }

    #[test]
    fn hmac_and_unknown_schemes_are_named() {
        let b = [0x00, 0x05, 0x00, 0x0b];
        assert!(matches!(
            Signature::parse(&b),
            Err(ParseError::UnsupportedAlgorithm { field: "TPMT_SIGNATURE.sigAlg", alg: 5, .. })
        ));
    }
}
