//! Why an EK certificate or its chain is refused: one named variant per reason.
//!
//! A refused chain is an expected outcome for a registrar (a TPM from an untrusted vendor, an
//! expired CA), so each variant names the certificate concerned ([`CertRef`]) and the values
//! that decided, for an operator to act on without re-running the check.

use std::fmt;

use thiserror::Error;

use crate::error::ParseError;

use super::cert::Certificate;

/// Which certificate of a chain: its depth (0 = the EK certificate) and how it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRef {
    /// 0 for the leaf, 1 for its issuer, …
    pub depth: usize,
    /// Subject in one-line form, or `serial <hex>` when the subject is empty.
    pub label: String,
}

impl CertRef {
    pub(crate) fn of(cert: &Certificate, depth: usize) -> CertRef {
        let label = if cert.subject().is_empty() {
            format!("serial {}", cert.serial_hex())
        } else {
            format!("\"{}\"", cert.subject())
        };
        CertRef { depth, label }
    }
}

impl fmt::Display for CertRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate {} at depth {}", self.label, self.depth)
    }
}

/// An EK certificate, or its chain, is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EkCertError {
    /// The certificate bytes are not a certificate.
    #[error("malformed certificate: {0}")]
    Malformed(#[from] ParseError),
    /// A certificate's notAfter is before the verification time.
    #[error("{which} expired at {not_after} (unix time), checked at {now}")]
    Expired {
        /// The certificate.
        which: CertRef,
        /// Its notAfter, unix seconds.
        not_after: i64,
        /// The verification time.
        now: i64,
    },
    /// A certificate's notBefore is after the verification time.
    #[error("{which} is not valid before {not_before} (unix time), checked at {now}")]
    NotYetValid {
        /// The certificate.
        which: CertRef,
        /// Its notBefore, unix seconds.
        not_before: i64,
        /// The verification time.
        now: i64,
    },
    /// No certificate in the trust store (or the supplied intermediates) issued this one.
    #[error("{which} is not chained to a trust anchor: no issuer \"{issuer}\" in the store")]
    Unchained {
        /// The last certificate of the longest path built.
        which: CertRef,
        /// Its issuer name.
        issuer: String,
    },
    /// An issuer by name was found but its key does not verify the signature.
    #[error("the signature on {which} does not verify with the key of \"{issuer}\"")]
    BadSignature {
        /// The signed certificate.
        which: CertRef,
        /// The candidate issuer.
        issuer: String,
    },
    /// The signature algorithm (or the issuer's key type) is not one Cairn verifies.
    #[error("{which} is signed with {algorithm}, which Cairn does not verify")]
    UnsupportedSignature {
        /// The signed certificate.
        which: CertRef,
        /// The algorithm.
        algorithm: String,
    },
    /// A certificate used as an issuer is not allowed to issue certificates.
    #[error("{which} issues certificates but {reason}")]
    NotACa {
        /// The issuing certificate.
        which: CertRef,
        /// What is missing.
        reason: &'static str,
    },
    /// An issuer's pathLenConstraint is smaller than the number of CAs below it.
    #[error("{which} allows {path_len} intermediate CAs below it, the chain has {below}")]
    PathLength {
        /// The constraining certificate.
        which: CertRef,
        /// Its pathLenConstraint.
        path_len: u32,
        /// CAs found below it.
        below: usize,
    },
    /// A certificate carries a critical extension Cairn does not understand.
    #[error("{which} has a critical extension {oid} that Cairn does not process")]
    UnknownCriticalExtension {
        /// The certificate.
        which: CertRef,
        /// Dotted OID.
        oid: String,
    },
    /// The certificate's public key is not the TPM's EK.
    #[error("the certificate holds {certificate}, the TPM's EK is {tpm}")]
    KeyMismatch {
        /// The certificate's key, summarised.
        certificate: String,
        /// The TPM's key, summarised.
        tpm: String,
    },
}
