//! The minimal DER every key and certificate reader in `cairn-core` shares: definite-length TLVs
//! read through the bounds-checked [`Reader`], written for the few structures Cairn emits, and the
//! object identifiers it recognises.

use crate::codec::Reader;
use crate::error::ParseError;

/// Object identifiers (DER content bytes, without tag and length).
pub mod oid {
    /// rsaEncryption (1.2.840.113549.1.1.1).
    pub const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    /// id-ecPublicKey (1.2.840.10045.2.1).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    /// prime256v1 / NIST P-256 (1.2.840.10045.3.1.7).
    pub const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// secp384r1 / NIST P-384 (1.3.132.0.34).
    pub const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    /// secp521r1 / NIST P-521 (1.3.132.0.35).
    pub const P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
    /// SM2 curve (1.2.156.10197.1.301).
    pub const SM2: &[u8] = &[0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D];
    /// subjectKeyIdentifier extension (2.5.29.14).
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1D, 0x0E];
}

/// Reads one TLV: its tag and a reader over its content (absolute offsets kept).
pub fn read<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<(u8, Reader<'a>), ParseError> {
    let tag = r.u8(field)?;
    let offset = r.offset();
    let first = r.u8(field)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err(ParseError::BadValue { field, offset, value: u64::from(first), expected: "a definite DER length" });
        }
        r.take(n, field)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    Ok((tag, r.sub(len, field)?))
}

/// Reads one TLV that must carry `tag`; returns a reader over its content.
pub fn expect<'a>(r: &mut Reader<'a>, tag: u8, field: &'static str) -> Result<Reader<'a>, ParseError> {
    let offset = r.offset();
    let (t, content) = read(r, field)?;
    if t != tag {
        return Err(ParseError::BadValue { field, offset, value: u64::from(t), expected: "another DER tag" });
    }
    Ok(content)
}

/// Appends a TLV.
pub fn write(tag: u8, content: &[u8], out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip_and_indefinite_is_refused() {
        let mut out = Vec::new();
        write(0x04, &[7u8; 300], &mut out);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2C]);
        let mut r = Reader::new(&out);
        assert_eq!(expect(&mut r, 0x04, "x").unwrap().remaining(), 300);
        assert!(expect(&mut Reader::new(&[0x30, 0x80, 0, 0]), 0x30, "x").is_err());
        assert!(expect(&mut Reader::new(&[0x31, 0x00]), 0x30, "x").is_err());
    }
}
