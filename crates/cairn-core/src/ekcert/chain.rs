//! EK certificate path building and validation against a [`TrustStore`].
//!
//! Decides whether a TPM's EK certificate was issued, through zero or more CAs, by a certificate
//! the operator trusts. As in Keylime's certificate store, every certificate placed in the store
//! is a trust anchor — a vendor intermediate is enough, its root need not be present
//! ([`VerifyOptions::require_self_signed_root`] asks for openssl's stricter default instead).
//! Untrusted intermediates may be supplied to complete a path.
//!
//! Paths are built by issuer name (and key identifier when both sides carry one), trying every
//! candidate, so a renewed or cross-signed CA with the same name does not hide the right one.
//! Along the chosen path every signature is verified, every certificate (anchor included) must be
//! valid at the caller's `now`, issuers must be CAs (basicConstraints cA, keyCertSign when
//! keyUsage is present, pathLenConstraint respected), and no certificate may carry a critical
//! extension Cairn does not process. Purposes (EKU) are reported, not enforced, as openssl does.

use crate::crypto::spki;
use crate::error::ParseError;

use super::cert::Certificate;
use super::error::{CertRef, EkCertError};
use super::ext::TpmIdentity;
use super::sigalg::{self, SigCheck};

/// Longest path tried (leaf included).
const MAX_DEPTH: usize = 8;

/// Trust anchors and untrusted intermediates for EK chain validation.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
}

/// How strictly a path must end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Require the path to end at a self-issued anchor (openssl without `-partial_chain`);
    /// by default any certificate in the store ends a path, as in Keylime.
    pub require_self_signed_root: bool,
}

/// One certificate of a validated path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainLink {
    /// Subject, one-line form.
    pub subject: String,
    /// Issuer, one-line form.
    pub issuer: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

/// A validated EK certificate chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainInfo {
    /// The path, leaf first, trust anchor last.
    pub path: Vec<ChainLink>,
    /// The TPM identity from the leaf's subjectAltName.
    pub tpm: Option<TpmIdentity>,
    /// Earliest notAfter along the path: when this verdict stops holding.
    pub valid_until: i64,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Adds a trust anchor.
    pub fn add_anchor(&mut self, cert: Certificate) {
        self.anchors.push(cert);
    }

    /// Adds an untrusted certificate that may complete a path but never ends one.
    pub fn add_intermediate(&mut self, cert: Certificate) {
        self.intermediates.push(cert);
    }

    /// Adds every certificate of a file's bytes as anchors: any number of PEM `CERTIFICATE`
    /// blocks, or one DER certificate. Returns how many were added.
    pub fn add_anchors_from_bytes(&mut self, bytes: &[u8]) -> Result<usize, ParseError> {
        let certs = certificates_from_bytes(bytes)?;
        let n = certs.len();
        self.anchors.extend(certs);
        Ok(n)
    }

    /// Like [`TrustStore::add_anchors_from_bytes`], as untrusted intermediates.
    pub fn add_intermediates_from_bytes(&mut self, bytes: &[u8]) -> Result<usize, ParseError> {
        let certs = certificates_from_bytes(bytes)?;
        let n = certs.len();
        self.intermediates.extend(certs);
        Ok(n)
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }
}

/// Every certificate in `bytes`: PEM `CERTIFICATE` blocks, or else one DER certificate.
pub fn certificates_from_bytes(bytes: &[u8]) -> Result<Vec<Certificate>, ParseError> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.contains("-----BEGIN CERTIFICATE-----"));
    match text {
        Some(t) => spki::pem_decode_all(t, "CERTIFICATE")?.iter().map(|der| Certificate::from_der(der)).collect(),
        None => Ok(vec![Certificate::from_der(bytes)?]),
    }
}

/// Validates `leaf` against `store` at unix time `now`, Keylime's way (any stored certificate is
/// an anchor).
pub fn verify_chain(leaf: &Certificate, store: &TrustStore, now: i64) -> Result<ChainInfo, EkCertError> {
    verify_chain_with(leaf, store, now, VerifyOptions::default())
}

/// Validates `leaf` against `store` at unix time `now` with explicit options.
pub fn verify_chain_with(leaf: &Certificate, store: &TrustStore, now: i64, opts: VerifyOptions) -> Result<ChainInfo, EkCertError> {
    let search = Search { store, now, opts };
    let mut path = vec![(leaf, store.anchors.iter().any(|a| a.der() == leaf.der()))];
    if let Some(&(_, true)) = path.first() {
        if !opts.require_self_signed_root || leaf.is_self_issued() {
            return search.validate(&path);
        }
    }
    search.extend(&mut path)
}

struct Search<'s> {
    store: &'s TrustStore,
    now: i64,
    opts: VerifyOptions,
}

impl<'s> Search<'s> {
    /// Extends `path` upwards until a path validates; the most informative failure otherwise.
    fn extend(&self, path: &mut Vec<(&'s Certificate, bool)>) -> Result<ChainInfo, EkCertError> {
        let Some(&(cur, _)) = path.last() else {
            return Err(EkCertError::Malformed(ParseError::text("certificate chain", "empty path")));
        };
        let depth = path.len() - 1;
        let unchained = || EkCertError::Unchained { which: CertRef::of(cur, depth), issuer: cur.issuer().to_string() };
        if path.len() >= MAX_DEPTH {
            return Err(unchained());
        }
        let candidates = self.store.anchors.iter().map(|c| (c, true)).chain(self.store.intermediates.iter().map(|c| (c, false)));
        let mut last_err = None;
        for (cand, is_anchor) in candidates {
            if !cand.subject().matches(cur.issuer()) || !key_ids_agree(cur, cand) || path.iter().any(|(c, _)| c.der() == cand.der()) {
                continue;
            }
            match sigalg::verify(cur.signature_algorithm(), cand.spki(), cur.tbs(), cur.signature()) {
                Ok(()) => {}
                Err(SigCheck::Unsupported) => {
                    let algorithm = cur.signature_algorithm().to_string();
                    last_err = Some(EkCertError::UnsupportedSignature { which: CertRef::of(cur, depth), algorithm });
                    continue;
                }
                Err(SigCheck::Invalid) => {
                    let issuer = cand.subject().to_string();
                    last_err = Some(EkCertError::BadSignature { which: CertRef::of(cur, depth), issuer });
                    continue;
                }
            }
            path.push((cand, is_anchor));
            let ends_here = is_anchor && (!self.opts.require_self_signed_root || cand.is_self_issued());
            let outcome = if ends_here {
                self.validate(path)
            } else if cand.is_self_issued() {
                Err(EkCertError::Unchained { which: CertRef::of(cand, depth + 1), issuer: cand.issuer().to_string() })
            } else {
                self.extend(path)
            };
            path.pop();
            match outcome {
                Ok(info) => return Ok(info),
                Err(e) => last_err = Some(prefer(last_err, e)),
            }
        }
        Err(last_err.unwrap_or_else(unchained))
    }

    /// Checks validity, CA constraints and critical extensions along a complete path.
    fn validate(&self, path: &[(&Certificate, bool)]) -> Result<ChainInfo, EkCertError> {
        for (depth, &(cert, is_anchor)) in path.iter().enumerate() {
            let which = || CertRef::of(cert, depth);
            if self.now < cert.not_before() {
                return Err(EkCertError::NotYetValid { which: which(), not_before: cert.not_before(), now: self.now });
            }
            if self.now > cert.not_after() {
                return Err(EkCertError::Expired { which: which(), not_after: cert.not_after(), now: self.now });
            }
            if let Some(oid) = cert.extensions().unknown_critical.first() {
                return Err(EkCertError::UnknownCriticalExtension { which: which(), oid: oid.clone() });
            }
            if depth == 0 {
                continue;
            }
            let ext = cert.extensions();
            match ext.basic_constraints {
                Some(bc) if bc.ca => {}
                // A v1 root placed in the store predates extensions; trusting it is the operator's call.
                None if is_anchor && cert.version() == 1 => {}
                _ => return Err(EkCertError::NotACa { which: which(), reason: "basicConstraints does not say cA" }),
            }
            if !ext.may_sign_certificates() {
                return Err(EkCertError::NotACa { which: which(), reason: "its keyUsage lacks keyCertSign" });
            }
            if let Some(path_len) = ext.basic_constraints.and_then(|b| b.path_len) {
                let below = path.iter().take(depth).skip(1).filter(|(c, _)| !c.is_self_issued()).count();
                if below > path_len as usize {
                    return Err(EkCertError::PathLength { which: which(), path_len, below });
                }
            }
        }
        let leaf = path.first().map(|(c, _)| *c);
        Ok(ChainInfo {
            path: path
                .iter()
                .map(|(c, _)| ChainLink {
                    subject: c.subject().to_string(),
                    issuer: c.issuer().to_string(),
                    serial: c.serial_hex(),
                    not_after: c.not_after(),
                })
                .collect(),
            tpm: leaf.and_then(|c| c.tpm_identity().cloned()),
            valid_until: path.iter().map(|(c, _)| c.not_after()).min().unwrap_or(i64::MIN),
        })
    }
}

/// When an issuer carries a subjectKeyIdentifier and the child an authorityKeyIdentifier, they
/// must agree; otherwise names alone decide.
fn key_ids_agree(child: &Certificate, issuer: &Certificate) -> bool {
    match (&child.extensions().authority_key_id, &issuer.extensions().subject_key_id) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}

/// Keeps the more specific of two failures: a failure on a complete path (expiry, CA checks)
/// says more than "unchained".
fn prefer(old: Option<EkCertError>, new: EkCertError) -> EkCertError {
    match (old, &new) {
        (Some(o), EkCertError::Unchained { .. }) if !matches!(o, EkCertError::Unchained { .. }) => o,
        _ => new,
    }
}
