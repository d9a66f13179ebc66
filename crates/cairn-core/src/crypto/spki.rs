//! SubjectPublicKeyInfo (RFC 5280) for the keys a TPM holds, in DER and PEM.
//!
//! Only what Cairn needs to move a TPM key between TPM2B_PUBLIC and the PEM files operators and
//! tpm2-tools use: RSA keys, and EC keys on P-256, P-384 and SM2. DER is read with the crate's
//! bounds-checked reader; definite lengths only, as DER requires.

use base64::Engine;

use crate::codec::Reader;
use crate::error::ParseError;
use crate::tpm::{EccCurve, PublicKey};

use super::der::{self, oid};

fn der_uint(v: &[u8], out: &mut Vec<u8>) {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len().saturating_sub(1));
    let v = v.get(first..).unwrap_or(&[]);
    let mut c = Vec::with_capacity(v.len() + 1);
    if v.first().is_some_and(|b| b & 0x80 != 0) || v.is_empty() {
        c.push(0);
    }
    c.extend_from_slice(v);
    der::write(0x02, &c, out);
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
            der::write(0x06, oid::RSA_ENCRYPTION, &mut alg);
            der::write(0x05, &[], &mut alg);
            let mut ints = Vec::new();
            der_uint(n, &mut ints);
            der_uint(&e.to_be_bytes(), &mut ints);
            der::write(0x30, &ints, &mut bits);
        }
        PublicKey::Ecc { curve, x, y } => {
            der::write(0x06, oid::EC_PUBLIC_KEY, &mut alg);
            let oid = match curve {
                EccCurve::NistP256 => oid::P256,
                EccCurve::NistP384 => oid::P384,
                EccCurve::Sm2P256 => oid::SM2,
            };
            der::write(0x06, oid, &mut alg);
            bits.push(0x04);
            bits.extend_from_slice(x);
            bits.extend_from_slice(y);
        }
        PublicKey::Symmetric(_) => return Err(ParseError::text("public key", "a symmetric object has no public key")),
    }
    let mut body = Vec::new();
    der::write(0x30, &alg, &mut body);
    der::write(0x03, &bits, &mut body);
    let mut out = Vec::new();
    der::write(0x30, &body, &mut out);
    Ok(out)
}

/// Reads a DER SubjectPublicKeyInfo holding an RSA or P-256/P-384/SM2 EC key.
pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, ParseError> {
    let mut outer = Reader::new(der);
    let spki = der::expect(&mut outer, 0x30, "SubjectPublicKeyInfo")?.rest();
    outer.finish("SubjectPublicKeyInfo")?;
    let mut r = Reader::new(spki);
    let alg = der::expect(&mut r, 0x30, "AlgorithmIdentifier")?.rest();
    let bits = der::expect(&mut r, 0x03, "subjectPublicKey")?.rest();
    r.finish("SubjectPublicKeyInfo")?;
    let mut a = Reader::new(alg);
    let oid = der::expect(&mut a, 0x06, "algorithm")?.rest();
    let mut b = Reader::new(bits);
    if b.u8("subjectPublicKey unused bits")? != 0 {
        return Err(ParseError::text("subjectPublicKey", "unused bits in a key bit string"));
    }
    if oid == oid::RSA_ENCRYPTION {
        let mut s = Reader::new(der::expect(&mut b, 0x30, "RSAPublicKey")?.rest());
        let n = strip_int(der::expect(&mut s, 0x02, "RSAPublicKey.modulus")?.rest()).to_vec();
        let e_bytes = strip_int(der::expect(&mut s, 0x02, "RSAPublicKey.publicExponent")?.rest());
        if e_bytes.len() > 4 || n.len() > crate::tpm::MAX_RSA_BYTES {
            return Err(ParseError::text("RSAPublicKey", "modulus or exponent too large"));
        }
        let e = e_bytes.iter().fold(0u32, |acc, v| (acc << 8) | u32::from(*v));
        Ok(PublicKey::Rsa { n, e })
    } else if oid == oid::EC_PUBLIC_KEY {
        let curve_oid = der::expect(&mut a, 0x06, "namedCurve")?.rest();
        let curve = match curve_oid {
            c if c == oid::P256 => EccCurve::NistP256,
            c if c == oid::P384 => EccCurve::NistP384,
            c if c == oid::SM2 => EccCurve::Sm2P256,
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
