//! EFI_GUID as found in UEFI structures of the event log.
//!
//! The first three fields are little-endian on the wire; the text form is the registry form
//! (`8be4df61-93ca-11d2-aa0d-00e098032b8c`), which is what tpm2-tools ≥ 5.2 and Keylime print.

use std::fmt;
use std::str::FromStr;

use crate::codec::Reader;
use crate::error::ParseError;

/// An `EFI_GUID` (UEFI spec, appendix A), kept in its 16 wire bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EfiGuid(pub [u8; 16]);

impl EfiGuid {
    /// `EFI_GLOBAL_VARIABLE`: SecureBoot, PK, KEK, Boot####.
    pub const GLOBAL_VARIABLE: EfiGuid = EfiGuid::from_fields(0x8be4df61, 0x93ca, 0x11d2, [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c]);
    /// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx.
    pub const IMAGE_SECURITY_DATABASE: EfiGuid = EfiGuid::from_fields(0xd719b2cb, 0x3d3a, 0x4596, [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f]);
    /// `EFI_CERT_X509_GUID`: a signature list of X.509 certificates.
    pub const CERT_X509: EfiGuid = EfiGuid::from_fields(0xa5c059a1, 0x94e4, 0x4aa7, [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72]);
    /// `EFI_CERT_SHA256_GUID`: a signature list of SHA-256 image digests.
    pub const CERT_SHA256: EfiGuid = EfiGuid::from_fields(0xc1c41626, 0x504c, 0x4092, [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28]);

    /// A GUID from its registry-form fields.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> EfiGuid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        EfiGuid([a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]])
    }

    /// Reads 16 wire bytes.
    pub fn read(r: &mut Reader<'_>, field: &'static str) -> Result<EfiGuid, ParseError> {
        Ok(EfiGuid(r.array(field)?))
    }
}

impl fmt::Display for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EfiGuid {
    type Err = ParseError;
    /// Parses the registry form, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::text("EFI GUID", format!("{s:?} is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"));
        let parts: Vec<&str> = s.trim().split('-').collect();
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hexstr: String = parts.concat();
        let v = hex::decode(hexstr).map_err(|_| bad())?;
        let mut raw = [0u8; 16];
        raw.iter_mut().zip(&v).for_each(|(d, s)| *d = *s);
        // Registry order → wire order: reverse the first three fields.
        raw.get_mut(0..4).into_iter().for_each(|x| x.reverse());
        raw.get_mut(4..6).into_iter().for_each(|x| x.reverse());
        raw.get_mut(6..8).into_iter().for_each(|x| x.reverse());
        Ok(EfiGuid(raw))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn registry_form_round_trips() {
        let g = EfiGuid::GLOBAL_VARIABLE;
        assert_eq!(g.to_string(), "8be4df61-93ca-11d2-aa0d-00e098032b8c");
        assert_eq!(g.0[..4], [0x61, 0xdf, 0xe4, 0x8b]);
        assert_eq!("8BE4DF61-93CA-11D2-AA0D-00E098032B8C".parse::<EfiGuid>().unwrap(), g);
        assert!("8be4df61-93ca-11d2-aa0d".parse::<EfiGuid>().is_err());
    }
}
