//! SubjectPublicKeyInfo (RFC 5280) for the keys a TPM holds, in DER and PEM.
//!
//! Only what Cairn needs to move a TPM key between TPM2B_PUBLIC and the PEM files operators and
//! tpm2-tools use: RSA keys, and EC keys on P-256, P-384 and SM2. DER is read with the crate's
//! bounds-checked reader; definite lengths only, as DER requires.

use base64::Engine;

use crate::codec::Reader;
use crate::error::ParseError;
use crate::tpm::{EccCurve, PublicKey};

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_SM2: &[u8] = &[0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D];

/// Encodes a DER TLV.
pub(crate) fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
        let used = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | used.len() as u8);
        out.extend_from_slice(used);
    }
    out.extend_from_slice(content);
}

/// Reads one DER TLV with the expected tag; returns its content.
pub(crate) fn read_tlv<'a>(r: &mut Reader<'a>, tag: u8, field: &'static str) -> Result<&'a [u8], ParseError> {
    let off = r.offset();
    let t = r.u8(field)?;
    if t != tag {
        return Err(ParseError::BadValue { field, offset: off, value: u64::from(t), expected: "another DER tag" });
    }
    let first = r.u8(field)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err(ParseError::BadValue { field, offset: off + 1, value: u64::from(first), expected: "a definite DER length" });
        }
        r.take(n, field)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    r.take(len, field)
}

fn der_uint(v: &[u8], out: &mut Vec<u8>) {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
    let v = v.get(first..).unwrap_or(&[]);
    let mut c = Vec::with_capacity(v.len() + 1);
    if v.first().is_some_and(|b| b & 0x80 != 0) || v.is_empty() {
        c.push(0);
    }
    c.extend_from_slice(v);
    tlv(0x02, &c, out);
}

fn strip_int(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or(&[])
}

/// DER SubjectPublicKeyInfo of a TPM public key.
pub fn to_spki_der(key: &PublicKey) -> Result<Vec<u8>, ParseError> {
    let mut alg = Vec::new();
    let mut bits = vec![0u8];
    match key {
        PublicKey::Rsa { n, e } => {
            tlv(0x06, OID_RSA, &mut alg);
            tlv(0x05, &[], &mut alg);
            let mut ints = Vec::new();
            der_uint(n, &mut ints);
            der_uint(&e.to_be_bytes(), &mut ints);
            tlv(0x30, &ints, &mut bits);
        }
        PublicKey::Ecc { curve, x, y } => {
            tlv(0x06, OID_EC, &mut alg);
            let oid = match curve {
                EccCurve::NistP256 => OID_P256,
                EccCurve::NistP384 => OID_P384,
                EccCurve::Sm2P256 => OID_SM2,
            };
            tlv(0x06, oid, &mut alg);
            bits.push(0x04);
            bits.extend_from_slice(x);
            bits.extend_from_slice(y);
        }
        PublicKey::Symmetric(_) => return Err(ParseError::text("public key", "a symmetric object has no public key")),
    }
    let mut body = Vec::new();
    tlv(0x30, &alg, &mut body);
    tlv(0x03, &bits, &mut body);
    let mut out = Vec::new();
    tlv(0x30, &body, &mut out);
    Ok(out)
}

/// Reads a DER SubjectPublicKeyInfo holding an RSA or P-256/P-384/SM2 EC key.
pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, ParseError> {
    let mut outer = Reader::new(der);
    let spki = read_tlv(&mut outer, 0x30, "SubjectPublicKeyInfo")?;
    outer.finish("SubjectPublicKeyInfo")?;
    let mut r = Reader::new(spki);
    let alg = read_tlv(&mut r, 0x30, "AlgorithmIdentifier")?;
    let bits = read_tlv(&mut r, 0x03, "subjectPublicKey")?;
    r.finish("SubjectPublicKeyInfo")?;
    let mut a = Reader::new(alg);
    let oid = read_tlv(&mut a, 0x06, "algorithm")?;
    let mut b = Reader::new(bits);
    if b.u8("subjectPublicKey unused bits")? != 0 {
        return Err(ParseError::text("subjectPublicKey", "unused bits in a key bit string"));
    }
    if oid == OID_RSA {
        let mut s = Reader::new(read_tlv(&mut b, 0x30, "RSAPublicKey")?);
        let n = strip_int(read_tlv(&mut s, 0x02, "RSAPublicKey.modulus")?).to_vec();
        let e_bytes = strip_int(read_tlv(&mut s, 0x02, "RSAPublicKey.publicExponent")?);
        if e_bytes.len() > 4 || n.len() > crate::tpm::MAX_RSA_BYTES {
            return Err(ParseError::text("RSAPublicKey", "modulus or exponent too large"));
        }
        let e = e_bytes.iter().fold(0u32, |acc, v| (acc << 8) | u32::from(*v));
        Ok(PublicKey::Rsa { n, e })
    } else if oid == OID_EC {
        let curve_oid = read_tlv(&mut a, 0x06, "namedCurve")?;
        let curve = match curve_oid {
            c if c == OID_P256 => EccCurve::NistP256,
            c if c == OID_P384 => EccCurve::NistP384,
            c if c == OID_SM2 => EccCurve::Sm2P256,
            _ => return Err(ParseError::text("namedCurve", "not P-256, P-384 or SM2")),
        };
        let len = curve.coordinate_len();
        if b.u8("EC point form")? != 0x04 {
            return Err(ParseError::text("EC point", "only uncompressed points are supported"));
        }
        let x = b.take(len, "EC point x")?.to_vec();
        let y = b.take(len, "EC point y")?.to_vec();
        b.finish("EC point")?;
        Ok(PublicKey::Ecc { curve, x, y })
    } else {
        Err(ParseError::text("AlgorithmIdentifier", "neither rsaEncryption nor id-ecPublicKey"))
    }
}

/// PEM-armours DER under `label` (e.g. `PUBLIC KEY`), 64 characters a line.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Every PEM block labelled `label` in `text`, decoded.
pub fn pem_decode_all(text: &str, label: &str) -> Result<Vec<Vec<u8>>, ParseError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = rest.get(start + begin.len()..).unwrap_or("");
        let stop = after.find(&end).ok_or_else(|| ParseError::text("PEM", format!("no {end} line")))?;
        let body: String = after.get(..stop).unwrap_or("").split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| ParseError::text("PEM", format!("bad base64: {e}")))?;
        out.push(der);
        rest = after.get(stop + end.len()..).unwrap_or("");
    }
    Ok(out)
}

/// A public key from a PEM `PUBLIC KEY` block.
pub fn from_pem(text: &str) -> Result<PublicKey, ParseError> {
    let blocks = pem_decode_all(text, "PUBLIC KEY")?;
    let der = blocks.first().ok_or_else(|| ParseError::text("PEM", "no PUBLIC KEY block"))?;
    from_spki_der(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_and_ec_round_trip_through_pem() {
        let keys = [
            PublicKey::Rsa { n: vec![0xC5; 256], e: 65537 },
            PublicKey::Ecc { curve: EccCurve::NistP256, x: vec![1; 32], y: vec![2; 32] },
            PublicKey::Ecc { curve: EccCurve::NistP384, x: vec![3; 48], y: vec![4; 48] },
            PublicKey::Ecc { curve: EccCurve::Sm2P256, x: vec![5; 32], y: vec![6; 32] },
        ];
        for k in keys {
            let pem = pem_encode("PUBLIC KEY", &to_spki_der(&k).unwrap());
            assert_eq!(from_pem(&pem).unwrap(), k);
        }
    }

    #[test]
    fn truncated_der_fails_cleanly() {
        let der = to_spki_der(&PublicKey::Rsa { n: vec![0xC5; 256], e: 65537 }).unwrap();
        for cut in 0..der.len() {
            assert!(from_spki_der(&der[..cut]).is_err());
        }
    }
}
