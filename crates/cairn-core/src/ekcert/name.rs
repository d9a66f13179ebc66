//! X.509 `Name` (RFC 5280 §4.1.2.4): raw bytes for matching, attributes for reading.
//!
//! Chain building compares names; RFC 5280 asks for a normalising comparison, and CAs in the
//! field re-encode names (PrintableString vs UTF8String), so two names match when their bytes are
//! equal or when their attribute lists are equal after case-folding and whitespace trimming.

use std::fmt;

use crate::codec::Reader;
use crate::error::ParseError;

use super::der::{self, tag};

/// Most attributes accepted in one name (EK certificate names carry 0–6).
const MAX_ATTRIBUTES: usize = 64;

/// An X.509 `Name` (RDNSequence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    raw: Vec<u8>,
    /// (attribute type OID content bytes, decoded value), in encoding order.
    attributes: Vec<(Vec<u8>, String)>,
}

impl Name {
    /// Reads a `Name` from `r`.
    pub(crate) fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Name, ParseError> {
        let (mut seq, raw) = der::enter(r, tag::SEQUENCE, field)?;
        let mut attributes = Vec::new();
        while !seq.is_empty() {
            let (mut set, _) = der::enter(&mut seq, tag::SET, "RelativeDistinguishedName")?;
            while !set.is_empty() {
                if attributes.len() >= MAX_ATTRIBUTES {
                    let offset = set.offset();
                    return Err(ParseError::TooLarge { field, offset, size: attributes.len() + 1, max: MAX_ATTRIBUTES });
                }
                let (mut atv, _) = der::enter(&mut set, tag::SEQUENCE, "AttributeTypeAndValue")?;
                let oid = der::expect(&mut atv, tag::OID, "AttributeType")?.content.to_vec();
                let value = der::any(&mut atv, "AttributeValue")?;
                atv.finish("AttributeTypeAndValue")?;
                attributes.push((oid, der::string_value(&value)));
            }
        }
        Ok(Name { raw: raw.to_vec(), attributes })
    }

    /// The DER encoding as found in the certificate.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// True for an empty name (EK certificates often have an empty subject).
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// The value of the first attribute of type `oid` (content bytes of the OID).
    pub fn attribute(&self, oid: &[u8]) -> Option<&str> {
        self.attributes.iter().find(|(o, _)| o == oid).map(|(_, v)| v.as_str())
    }

    /// Whether two names denote the same entity (byte-equal, or equal after normalisation).
    pub fn matches(&self, other: &Name) -> bool {
        if self.raw == other.raw {
            return true;
        }
        self.attributes.len() == other.attributes.len()
            && self.attributes.iter().zip(&other.attributes).all(|((oa, va), (ob, vb))| {
                oa == ob && normalise(va) == normalise(vb)
            })
    }
}

fn normalise(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl fmt::Display for Name {
    /// openssl's one-line form: `C = CH, O = STMicroelectronics NV, CN = …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (oid, value)) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} = {}", der::attribute_name(oid), value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(attrs: &[(&[u8], u8, &str)]) -> Vec<u8> {
        let mut seq = Vec::new();
        for (oid, t, v) in attrs {
            let mut atv = vec![0x06, oid.len() as u8];
            atv.extend_from_slice(oid);
            atv.extend_from_slice(&[*t, v.len() as u8]);
            atv.extend_from_slice(v.as_bytes());
            let mut set = vec![0x30, atv.len() as u8];
            set.extend(atv);
            seq.extend_from_slice(&[0x31, set.len() as u8]);
            seq.extend(set);
        }
        let mut out = vec![0x30, seq.len() as u8];
        out.extend(seq);
        out
    }

    #[test]
    fn reads_and_prints_like_openssl() {
        let b = name(&[(&[0x55, 4, 6], 0x13, "CH"), (&[0x55, 4, 3], 0x0C, "STM TPM ECC Intermediate CA 01")]);
        let n = Name::read(&mut Reader::new(&b), "issuer").unwrap();
        assert_eq!(n.to_string(), "C = CH, CN = STM TPM ECC Intermediate CA 01");
        assert_eq!(n.raw(), &b[..]);
    }

    #[test]
    fn string_types_and_case_do_not_break_matching() {
        let a = name(&[(&[0x55, 4, 3], 0x13, "swtpm-localca")]);
        let b = name(&[(&[0x55, 4, 3], 0x0C, "SWTPM-localca ")]);
        let c = name(&[(&[0x55, 4, 3], 0x0C, "other")]);
        let [a, b, c] = [a, b, c].map(|x| Name::read(&mut Reader::new(&x), "n").unwrap());
        assert!(a.matches(&b));
        assert!(!a.matches(&c));
    }

    #[test]
    fn empty_name_is_empty() {
        let n = Name::read(&mut Reader::new(&[0x30, 0x00]), "subject").unwrap();
        assert!(n.is_empty());
        assert_eq!(n.to_string(), "");
    }
}
