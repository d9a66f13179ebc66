//! Does an EK certificate certify *this* TPM's endorsement key?
//!
//! A valid chain proves a vendor issued the certificate; only comparing its key with the EK the
//! TPM presents (TPM2B_PUBLIC) binds the certificate to the device. RSA keys compare modulus
//! (ignoring leading zero bytes) and exponent; EC keys compare curve and both coordinates.

use crate::tpm::{Public, PublicKey};

use super::cert::Certificate;
use super::error::EkCertError;

/// `Ok` when `cert`'s subject public key is the TPM key `ek`.
pub fn ek_matches(cert: &Certificate, ek: &Public) -> Result<(), EkCertError> {
    let cert_key = cert.public_key()?;
    if same_key(&cert_key, &ek.key) {
        Ok(())
    } else {
        Err(EkCertError::KeyMismatch { certificate: summary(&cert_key), tpm: summary(&ek.key) })
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    match (a, b) {
        (PublicKey::Rsa { n: na, e: ea }, PublicKey::Rsa { n: nb, e: eb }) => ea == eb && strip(na) == strip(nb),
        (PublicKey::Ecc { curve: ca, x: xa, y: ya }, PublicKey::Ecc { curve: cb, x: xb, y: yb }) => {
            ca == cb && strip(xa) == strip(xb) && strip(ya) == strip(yb)
        }
        _ => false,
    }
}

fn strip(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v.get(first..).unwrap_or(&[])
}

/// `rsa2048 n=91b71610… e=65537`, `ecc256 x=…`: enough to tell two keys apart in a log line.
fn summary(k: &PublicKey) -> String {
    let head = |v: &[u8]| hex::encode(strip(v).get(..8).unwrap_or(strip(v)));
    match k {
        PublicKey::Rsa { n, e } => format!("rsa{} n={}… e={e}", strip(n).len() * 8, head(n)),
        PublicKey::Ecc { curve, x, .. } => format!("{} x={}…", curve.key_name(), head(x)),
        PublicKey::Symmetric(_) => "a symmetric object".into(),
    }
}
