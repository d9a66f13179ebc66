//! TPM2B_PUBLIC / TPMT_PUBLIC: a TPM object's public area, its name, and its key.
//!
//! The raw TPMT_PUBLIC bytes are kept because an object's name is nameAlg ‖ H(TPMT_PUBLIC) over
//! exactly those bytes; re-marshalling could only ever be as good as the parser.

use crate::alg::{AlgId, HashAlg};
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

use super::signature::SigScheme;
use super::{MAX_DIGEST_BUFFER, MAX_ECC_BYTES, MAX_RSA_BYTES};

/// Largest TPMT_PUBLIC accepted.
const MAX_PUBLIC: usize = 1024;

/// TPMA_OBJECT bits the verifier cares about.
pub mod attrs {
    /// fixedTPM: the key cannot leave this TPM.
    pub const FIXED_TPM: u32 = 1 << 1;
    /// fixedParent.
    pub const FIXED_PARENT: u32 = 1 << 4;
    /// sensitiveDataOrigin: the TPM generated the key.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    /// userWithAuth.
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    /// restricted: signs only TPM-generated data (an attestation key).
    pub const RESTRICTED: u32 = 1 << 16;
    /// decrypt.
    pub const DECRYPT: u32 = 1 << 17;
    /// sign / encrypt.
    pub const SIGN: u32 = 1 << 18;
}

/// An elliptic curve (TPM_ECC_CURVE) Cairn verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum EccCurve {
    /// NIST P-256.
    NistP256,
    /// NIST P-384.
    NistP384,
    /// SM2 P-256.
    Sm2P256,
}

impl EccCurve {
    /// TPM_ECC_CURVE value.
    pub fn id(self) -> u16 {
        match self {
            EccCurve::NistP256 => 0x0003,
            EccCurve::NistP384 => 0x0004,
            EccCurve::Sm2P256 => 0x0020,
        }
    }
    /// Curve for a TPM_ECC_CURVE value.
    pub fn from_id(id: u16) -> Option<EccCurve> {
        Some(match id {
            0x0003 => EccCurve::NistP256,
            0x0004 => EccCurve::NistP384,
            0x0020 => EccCurve::Sm2P256,
            _ => return None,
        })
    }
    /// Coordinate size in bytes.
    pub fn coordinate_len(self) -> usize {
        match self {
            EccCurve::NistP256 | EccCurve::Sm2P256 => 32,
            EccCurve::NistP384 => 48,
        }
    }
    /// Keylime-style name (`ecc256`, `ecc384`, `sm2`) of a key on this curve.
    pub fn key_name(self) -> &'static str {
        match self {
            EccCurve::NistP256 => "ecc256",
            EccCurve::NistP384 => "ecc384",
            EccCurve::Sm2P256 => "sm2",
        }
    }
}

/// An asymmetric scheme as found in a public area: TPMT_*_SCHEME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// Scheme algorithm (TPM_ALG_NULL when none).
    pub alg: AlgId,
    /// The scheme's hash, for schemes that carry one.
    pub hash: Option<HashAlg>,
    /// ECDAA's count.
    pub count: Option<u16>,
}

/// The public key (TPMU_PUBLIC_ID), for the key types Cairn uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus (big-endian) and public exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent (0 in the TPM means 65537; resolved here).
        e: u32,
    },
    /// ECC point, coordinates big-endian, padded to the curve size.
    Ecc {
        /// The curve.
        curve: EccCurve,
        /// x.
        x: Vec<u8>,
        /// y.
        y: Vec<u8>,
    },
    /// KEYEDHASH / SYMCIPHER unique digest (no usable public key).
    Symmetric(Vec<u8>),
}

/// TPMU_PUBLIC_PARMS, the parts the verifier reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// TPMT_SYM_DEF_OBJECT: (algorithm, keyBits, mode) or NULL.
    pub symmetric: Option<(AlgId, u16, AlgId)>,
    /// The key's scheme.
    pub scheme: Scheme,
    /// RSA key size in bits (0 for others).
    pub key_bits: u16,
    /// ECC KDF scheme.
    pub kdf: Option<Scheme>,
}

/// TPMT_PUBLIC with its original bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    /// Object type: RSA, ECC, KEYEDHASH or SYMCIPHER.
    pub alg: AlgId,
    /// Hash used for the object's name.
    pub name_alg: HashAlg,
    /// TPMA_OBJECT.
    pub attributes: u32,
    /// authPolicy digest.
    pub auth_policy: Vec<u8>,
    /// Parameters.
    pub params: Params,
    /// The key.
    pub key: PublicKey,
    raw: Vec<u8>,
}

impl Public {
    /// Parses a TPM2B_PUBLIC (u16 size then TPMT_PUBLIC) that fills `bytes` exactly.
    pub fn parse_tpm2b(bytes: &[u8]) -> Result<Public, ParseError> {
        let mut r = Reader::new(bytes);
        let size_off = r.offset();
        let size = usize::from(r.u16_be("TPM2B_PUBLIC.size")?);
        if size > MAX_PUBLIC {
            return Err(ParseError::TooLarge { field: "TPM2B_PUBLIC.size", offset: size_off, size, max: MAX_PUBLIC });
        }
        let mut sub = r.sub(size, "TPM2B_PUBLIC.publicArea")?;
        r.finish("TPM2B_PUBLIC")?;
        Public::read_tpmt(&mut sub)
    }

    /// Parses a bare TPMT_PUBLIC that fills `bytes` exactly.
    pub fn parse_tpmt(bytes: &[u8]) -> Result<Public, ParseError> {
        let mut r = Reader::new(bytes);
        Public::read_tpmt(&mut r)
    }

    fn read_tpmt(r: &mut Reader<'_>) -> Result<Public, ParseError> {
        let raw = r.rest().to_vec();
        let type_off = r.offset();
        let alg = AlgId(r.u16_be("TPMT_PUBLIC.type")?);
        let name_off = r.offset();
        let name_id = AlgId(r.u16_be("TPMT_PUBLIC.nameAlg")?);
        let name_alg = HashAlg::from_alg_id(name_id).ok_or(ParseError::UnsupportedAlgorithm {
            field: "TPMT_PUBLIC.nameAlg",
            offset: name_off,
            alg: name_id.0,
        })?;
        let attributes = r.u32_be("TPMT_PUBLIC.objectAttributes")?;
        let auth_policy = r.tpm2b(MAX_DIGEST_BUFFER, "TPMT_PUBLIC.authPolicy")?.to_vec();
        let (params, key) = match alg {
            AlgId::RSA => {
                let symmetric = read_sym_def(r)?;
                let scheme = read_scheme(r, "TPMT_RSA_SCHEME.scheme")?;
                let key_bits = r.u16_be("TPMS_RSA_PARMS.keyBits")?;
                let e = match r.u32_be("TPMS_RSA_PARMS.exponent")? {
                    0 => 65537,
                    e => e,
                };
                let n = r.tpm2b(MAX_RSA_BYTES, "TPM2B_PUBLIC_KEY_RSA")?.to_vec();
                (Params { symmetric, scheme, key_bits, kdf: None }, PublicKey::Rsa { n, e })
            }
            AlgId::ECC => {
                let symmetric = read_sym_def(r)?;
                let scheme = read_scheme(r, "TPMT_ECC_SCHEME.scheme")?;
                let curve_off = r.offset();
                let curve_id = r.u16_be("TPMS_ECC_PARMS.curveID")?;
                let curve = EccCurve::from_id(curve_id).ok_or(ParseError::BadValue {
                    field: "TPMS_ECC_PARMS.curveID",
                    offset: curve_off,
                    value: u64::from(curve_id),
                    expected: "NIST P-256, NIST P-384 or SM2 P-256",
                })?;
                let kdf = read_scheme(r, "TPMT_KDF_SCHEME.scheme")?;
                let x = r.tpm2b(MAX_ECC_BYTES, "TPMS_ECC_POINT.x")?;
                let y = r.tpm2b(MAX_ECC_BYTES, "TPMS_ECC_POINT.y")?;
                let key = PublicKey::Ecc { curve, x: pad(x, curve)?, y: pad(y, curve)? };
                let kdf = (kdf.alg != AlgId::NULL).then_some(kdf);
                (Params { symmetric, scheme, key_bits: 0, kdf }, key)
            }
            AlgId::KEYEDHASH => {
                let scheme = read_scheme(r, "TPMT_KEYEDHASH_SCHEME.scheme")?;
                let unique = r.tpm2b(MAX_DIGEST_BUFFER, "TPM2B_DIGEST unique")?.to_vec();
                (Params { symmetric: None, scheme, key_bits: 0, kdf: None }, PublicKey::Symmetric(unique))
            }
            AlgId::SYMCIPHER => {
                let symmetric = read_sym_def(r)?;
                let unique = r.tpm2b(MAX_DIGEST_BUFFER, "TPM2B_DIGEST unique")?.to_vec();
                let scheme = Scheme { alg: AlgId::NULL, hash: None, count: None };
                (Params { symmetric, scheme, key_bits: 0, kdf: None }, PublicKey::Symmetric(unique))
            }
            other => {
                return Err(ParseError::UnsupportedAlgorithm { field: "TPMT_PUBLIC.type", offset: type_off, alg: other.0 })
            }
        };
        r.finish("TPMT_PUBLIC")?;
        Ok(Public { alg, name_alg, attributes, auth_policy, params, key, raw })
    }

    /// The public area a TPM would show for a restricted signing key (an AK) holding `key` with a
    /// fixed `scheme`/`hash`, nameAlg SHA-256. Used to give software keys (benchmarks, the fleet
    /// simulator) the same shape as TPM keys; never a stand-in for a TPM in a correctness check.
    pub fn for_signing_key(key: &PublicKey, scheme: SigScheme, hash: HashAlg) -> Result<Public, ParseError> {
        let mut t = Vec::with_capacity(400);
        let attributes = attrs::FIXED_TPM
            | attrs::FIXED_PARENT
            | attrs::SENSITIVE_DATA_ORIGIN
            | attrs::USER_WITH_AUTH
            | attrs::RESTRICTED
            | attrs::SIGN;
        let object_type = match key {
            PublicKey::Rsa { .. } => AlgId::RSA,
            PublicKey::Ecc { .. } => AlgId::ECC,
            PublicKey::Symmetric(_) => return Err(ParseError::text("public key", "a symmetric object cannot sign quotes")),
        };
        // type, nameAlg, objectAttributes, empty authPolicy, no symmetric, the fixed scheme.
        t.put_u16_be(object_type.0);
        t.put_u16_be(AlgId::SHA256.0);
        t.put_u32_be(attributes);
        t.put_tpm2b(&[]);
        t.put_u16_be(AlgId::NULL.0);
        t.put_u16_be(scheme.alg_id().0);
        t.put_u16_be(hash.alg_id().0);
        match key {
            PublicKey::Rsa { n, e } => {
                t.put_u16_be(u16::try_from(n.len() * 8).unwrap_or(0));
                t.put_u32_be(if *e == 65537 { 0 } else { *e });
                t.put_tpm2b(n);
            }
            PublicKey::Ecc { curve, x, y } => {
                t.put_u16_be(curve.id());
                t.put_u16_be(AlgId::NULL.0);
                t.put_tpm2b(x);
                t.put_tpm2b(y);
            }
            PublicKey::Symmetric(_) => {} // refused above
        }
        Public::parse_tpmt(&t)
    }

    /// The TPMT_PUBLIC bytes as parsed.
    pub fn tpmt_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// TPM2B_PUBLIC bytes (size prefix + TPMT_PUBLIC).
    pub fn to_tpm2b(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 2);
        out.put_tpm2b(&self.raw);
        out
    }

    /// The object's TPM name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.name_alg.len());
        out.put_u16_be(self.name_alg.alg_id().0);
        out.extend_from_slice(self.name_alg.hash(&self.raw).as_bytes());
        out
    }

    /// The signing scheme fixed in the key, if any (a restricted signing key must have one).
    pub fn signing_scheme(&self) -> Option<(SigScheme, HashAlg)> {
        let s = SigScheme::from_alg_id(self.params.scheme.alg)?;
        Some((s, self.params.scheme.hash?))
    }

    /// Whether TPMA_OBJECT has every bit of `mask`.
    pub fn has_attributes(&self, mask: u32) -> bool {
        self.attributes & mask == mask
    }

    /// Keylime-style key name: `rsa2048`, `ecc256`, `ecc384`, `sm2`.
    pub fn key_name(&self) -> String {
        match &self.key {
            PublicKey::Rsa { n, .. } => format!("rsa{}", n.len() * 8),
            PublicKey::Ecc { curve, .. } => curve.key_name().to_string(),
            PublicKey::Symmetric(_) => "symmetric".to_string(),
        }
    }
}

fn pad(c: &[u8], curve: EccCurve) -> Result<Vec<u8>, ParseError> {
    let len = curve.coordinate_len();
    // Leading zero bytes may be stripped by some producers; more bytes than the curve is wrong.
    let trimmed: &[u8] = {
        let first = c.iter().position(|b| *b != 0).unwrap_or(c.len());
        c.get(first..).unwrap_or(&[])
    };
    if trimmed.len() > len {
        return Err(ParseError::DigestLength { field: "TPMS_ECC_POINT coordinate", alg: "ecc", len: c.len(), expected: len });
    }
    let mut v = vec![0u8; len - trimmed.len()];
    v.extend_from_slice(trimmed);
    Ok(v)
}

fn read_sym_def(r: &mut Reader<'_>) -> Result<Option<(AlgId, u16, AlgId)>, ParseError> {
    let alg = AlgId(r.u16_be("TPMT_SYM_DEF_OBJECT.algorithm")?);
    if alg == AlgId::NULL {
        return Ok(None);
    }
    let bits = r.u16_be("TPMT_SYM_DEF_OBJECT.keyBits")?;
    let mode = AlgId(r.u16_be("TPMT_SYM_DEF_OBJECT.mode")?);
    Ok(Some((alg, bits, mode)))
}

/// Reads any TPMT_*_SCHEME: the selector then, depending on it, nothing, a hash, or hash + count.
fn read_scheme(r: &mut Reader<'_>, field: &'static str) -> Result<Scheme, ParseError> {
    let offset = r.offset();
    let alg = AlgId(r.u16_be(field)?);
    let with_hash = |r: &mut Reader<'_>| HashAlg::read_be(r, "TPMS_SCHEME_HASH.hashAlg");
    Ok(match alg {
        AlgId::NULL | AlgId::RSAES => Scheme { alg, hash: None, count: None },
        AlgId::ECDAA => {
            let hash = with_hash(r)?;
            let count = r.u16_be("TPMS_SCHEME_ECDAA.count")?;
            Scheme { alg, hash: Some(hash), count: Some(count) }
        }
        AlgId::XOR => {
            let hash = with_hash(r)?;
            let _kdf = r.u16_be("TPMS_SCHEME_XOR.kdf")?;
            Scheme { alg, hash: Some(hash), count: None }
        }
        AlgId::RSASSA
        | AlgId::RSAPSS
        | AlgId::OAEP
        | AlgId::ECDSA
        | AlgId::ECDH
        | AlgId::SM2
        | AlgId::ECSCHNORR
        | AlgId::ECMQV
        | AlgId::HMAC
        | AlgId::KDF1_SP800_56A
        | AlgId::KDF2
        | AlgId::KDF1_SP800_108 => Scheme { alg, hash: Some(with_hash(r)?), count: None },
        other => return Err(ParseError::UnsupportedAlgorithm { field, offset, alg: other.0 }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECC P-256 restricted signing key, ECDSA-SHA256, as tpm2_createak writes it.
    fn ecc_public() -> Vec<u8> {
        let mut t = Vec::new();
        t.put_u16_be(0x0023);
        t.put_u16_be(0x000b);
        t.put_u32_be(0x0005_0072);
        t.put_tpm2b(&[]);
        t.put_u16_be(0x0010); // symmetric NULL
        t.put_u16_be(0x0018); // ECDSA
        t.put_u16_be(0x000b); // sha256
        t.put_u16_be(0x0003); // P-256
        t.put_u16_be(0x0010); // kdf NULL
        t.put_tpm2b(&[1; 32]);
        t.put_tpm2b(&[2; 32]);
        let mut out = Vec::new();
        out.put_tpm2b(&t);
        out
    }

    #[test]
    fn parses_ecc_ak_and_names_it() {
        let b = ecc_public();
        let p = Public::parse_tpm2b(&b).unwrap();
        assert_eq!(p.signing_scheme(), Some((SigScheme::Ecdsa, HashAlg::Sha256)));
        assert!(p.has_attributes(attrs::RESTRICTED | attrs::SIGN | attrs::FIXED_TPM));
        assert_eq!(p.to_tpm2b(), b);
        let name = p.name();
        assert_eq!(&name[..2], &[0, 0x0b]);
        assert_eq!(&name[2..], HashAlg::Sha256.hash(&b[2..]).as_bytes());
        for cut in 0..b.len() {
            assert!(Public::parse_tpm2b(&b[..cut]).is_err());
        }
    }

    #[test]
    fn unknown_curve_is_named() {
        let mut b = ecc_public();
        b[19] = 0x99; // low byte of curveID
        let e = Public::parse_tpm2b(&b).unwrap_err();
        assert!(matches!(e, ParseError::BadValue { field: "TPMS_ECC_PARMS.curveID", .. }), "{e:?}");
    }
}
