//! The revocation key pair: a verifier's RSA signing key, and the public half agents check with.
//!
//! The scheme is fixed by Keylime: RSA-PSS with SHA-256, MGF1-SHA-256, and the *maximum* salt
//! length the key allows (`emLen − hLen − 2`, 222 bytes for RSA-2048). aws-lc-rs, already
//! Cairn's crypto provider, signs and verifies PSS with an explicit salt length
//! ([`RsaPssSaltLength::Max`]), so no second crypto library and no hand-written padding code is
//! needed; the tests check both directions against the `openssl` command as an independent peer.
//! Verification accepts the maximum salt length only: that is what Keylime signs with and what
//! Keylime's agents check for.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaParameters, RsaPssSaltLength, RsaPublicKeyComponents, RsaSignatureEncoding};

use super::error::RevocationError;
use crate::crypto::spki::{self, pem_decode_all, pem_encode};
use crate::ekcert::Certificate;
use crate::error::ParseError;
use crate::tpm::PublicKey;

const SIGN_PSS_MAX: RsaSignatureEncoding = sig::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static SIGN_PSS_MAX_S: RsaSignatureEncoding = SIGN_PSS_MAX;
const VERIFY_PSS_MAX: RsaParameters = sig::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);
static VERIFY_PSS_MAX_S: RsaParameters = VERIFY_PSS_MAX;

/// Smallest and largest RSA modulus accepted, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Size of a generated revocation key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationKeySize {
    /// RSA-2048 (what Keylime's tenant makes).
    Rsa2048,
    /// RSA-3072.
    #[default]
    Rsa3072,
}

/// A verifier's revocation signing key (RSA).
pub struct RevocationSigner {
    key: KeyPair,
    public_pem: String,
}

impl std::fmt::Debug for RevocationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationSigner").field("bits", &(self.key.public_modulus_len() * 8)).finish_non_exhaustive()
    }
}

impl RevocationSigner {
    /// A new RSA-3072 key.
    pub fn generate() -> Result<RevocationSigner, RevocationError> {
        RevocationSigner::generate_sized(RevocationKeySize::default())
    }

    /// A new key of `size`.
    pub fn generate_sized(size: RevocationKeySize) -> Result<RevocationSigner, RevocationError> {
        let size = match size {
            RevocationKeySize::Rsa2048 => KeySize::Rsa2048,
            RevocationKeySize::Rsa3072 => KeySize::Rsa3072,
        };
        let key = KeyPair::generate(size).map_err(|_| RevocationError::Signing("RSA key generation failed".into()))?;
        RevocationSigner::new(key)
    }

    /// From a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<RevocationSigner, RevocationError> {
        let der = only_block(pem, "PRIVATE KEY").map_err(RevocationError::PrivateKey)?;
        let key = KeyPair::from_pkcs8(&der).map_err(|e| rejected(&e, "an RSA PKCS#8 key"))?;
        RevocationSigner::new(key)
    }

    /// From a PEM private key, PKCS#8 or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`, the form
    /// Keylime stores its revocation keys in). Encrypted keys are not read.
    pub fn from_pem(pem: &str) -> Result<RevocationSigner, RevocationError> {
        if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            if pem.contains("ENCRYPTED") {
                return Err(RevocationError::PrivateKey("the key is encrypted; give it unencrypted".into()));
            }
            let der = only_block(pem, "RSA PRIVATE KEY").map_err(RevocationError::PrivateKey)?;
            let key = KeyPair::from_der(&der).map_err(|e| rejected(&e, "a PKCS#1 RSA key"))?;
            return RevocationSigner::new(key);
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(RevocationError::PrivateKey("the key is encrypted; give it unencrypted".into()));
        }
        RevocationSigner::from_pkcs8_pem(pem)
    }

    fn new(key: KeyPair) -> Result<RevocationSigner, RevocationError> {
        let bits = key.public_modulus_len() * 8;
        if !RSA_BITS.contains(&bits) {
            return Err(RevocationError::KeySize { bits });
        }
        let spki = key.public_key().as_der().map_err(|_| RevocationError::Signing("cannot encode the public key".into()))?;
        Ok(RevocationSigner { public_pem: pem_encode("PUBLIC KEY", spki.as_ref()), key })
    }

    /// The private key, PKCS#8 PEM. Secret: write it to a file only the verifier reads.
    pub fn to_pkcs8_pem(&self) -> Result<String, RevocationError> {
        let der = self.key.as_der().map_err(|_| RevocationError::Signing("cannot encode the private key".into()))?;
        Ok(pem_encode("PRIVATE KEY", der.as_ref()))
    }

    /// The public key, SubjectPublicKeyInfo PEM: what agents are given as `revocation_cert`.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The verifier for this key's signatures.
    pub fn verifier(&self) -> Result<RevocationVerifier, RevocationError> {
        RevocationVerifier::from_pem(&self.public_pem)
    }

    /// RSA-PSS/SHA-256 (maximum salt) signature of `message`.
    pub(super) fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, RevocationError> {
        let mut out = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&SIGN_PSS_MAX_S, &SystemRandom::new(), message, &mut out)
            .map_err(|_| RevocationError::Signing("RSA-PSS signing failed".into()))?;
        Ok(out)
    }
}

/// The public revocation key an agent checks messages with.
pub struct RevocationVerifier {
    key: ParsedPublicKey,
    modulus_len: usize,
    bits: usize,
}

impl std::fmt::Debug for RevocationVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationVerifier").field("bits", &self.bits).finish_non_exhaustive()
    }
}

impl RevocationVerifier {
    /// From PEM text holding a `PUBLIC KEY` (SubjectPublicKeyInfo) or a `CERTIFICATE` (X.509,
    /// the form Keylime's agents are given); the first such block is used.
    pub fn from_pem(text: &str) -> Result<RevocationVerifier, RevocationError> {
        let bad = |e: ParseError| RevocationError::PublicKey(e.to_string());
        let first = |label: &str| -> Result<Vec<u8>, RevocationError> {
            Ok(pem_decode_all(text, label).map_err(bad)?.into_iter().next().unwrap_or_default())
        };
        let key_at = text.find("-----BEGIN PUBLIC KEY-----").unwrap_or(usize::MAX);
        let cert_at = text.find("-----BEGIN CERTIFICATE-----").unwrap_or(usize::MAX);
        if key_at < cert_at {
            RevocationVerifier::from_spki_der(&first("PUBLIC KEY")?)
        } else if cert_at < key_at {
            RevocationVerifier::from_certificate_der(&first("CERTIFICATE")?)
        } else if text.contains("PRIVATE KEY-----") {
            Err(RevocationError::PublicKey("this is a private key; agents need the public key or the certificate".into()))
        } else {
            Err(RevocationError::PublicKey("no PUBLIC KEY or CERTIFICATE PEM block".into()))
        }
    }

    /// From a DER X.509 certificate (its subject public key; the certificate itself is not
    /// validated — the operator configured this exact key).
    pub fn from_certificate_der(der: &[u8]) -> Result<RevocationVerifier, RevocationError> {
        let cert = Certificate::from_der(der).map_err(|e| RevocationError::PublicKey(format!("certificate: {e}")))?;
        RevocationVerifier::from_spki_der(cert.spki())
    }

    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<RevocationVerifier, RevocationError> {
        let key = spki::from_spki_der(der).map_err(|e| match e {
            ParseError::Text { what: "AlgorithmIdentifier", .. } => {
                RevocationError::WrongKeyType { found: "a key that is neither RSA nor EC".into() }
            }
            other => RevocationError::PublicKey(other.to_string()),
        })?;
        let (n, e) = match &key {
            PublicKey::Rsa { n, e } => (n, *e),
            PublicKey::Ecc { curve, .. } => return Err(RevocationError::WrongKeyType { found: format!("an EC key ({curve:?})") }),
            PublicKey::Symmetric(_) => return Err(RevocationError::WrongKeyType { found: "a symmetric key".into() }),
        };
        let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
        let n = n.get(first..).unwrap_or(&[]);
        let bits = n.first().map_or(0, |top| (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize));
        if !RSA_BITS.contains(&bits) {
            return Err(RevocationError::KeySize { bits });
        }
        let e_bytes = e.to_be_bytes();
        let e_first = e_bytes.iter().position(|b| *b != 0).unwrap_or(e_bytes.len());
        let comps = RsaPublicKeyComponents { n, e: e_bytes.get(e_first..).unwrap_or(&[]) };
        let key = comps
            .to_parsed_public_key(&VERIFY_PSS_MAX_S)
            .map_err(|_| RevocationError::PublicKey(format!("RSA-{bits} key with exponent {e} is not usable")))?;
        Ok(RevocationVerifier { key, modulus_len: n.len(), bits })
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Checks an RSA-PSS/SHA-256 (maximum salt) signature over `message`.
    pub(super) fn verify_bytes(&self, message: &[u8], signature: &[u8]) -> Result<(), RevocationError> {
        if signature.len() != self.modulus_len {
            return Err(RevocationError::SignatureLength { len: signature.len(), expected: self.modulus_len });
        }
        self.key.verify_sig(message, signature).map_err(|_| RevocationError::BadSignature)
    }
}

/// Why aws-lc-rs refused a private key, in words.
fn rejected(e: &aws_lc_rs::error::KeyRejected, form: &str) -> RevocationError {
    match e.description_() {
        "TooSmall" => RevocationError::PrivateKey("the RSA key is smaller than 2048 bits".into()),
        "TooLarge" => RevocationError::PrivateKey("the RSA key is larger than 8192 bits".into()),
        other => RevocationError::PrivateKey(format!("not {form} ({other})")),
    }
}

/// The one `label` block of `pem`, decoded.
fn only_block(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let blocks = pem_decode_all(pem, label).map_err(|e| e.to_string())?;
    match blocks.len() {
        1 => blocks.into_iter().next().ok_or_else(|| format!("no {label} PEM block")),
        0 => Err(format!("no {label} PEM block")),
        n => Err(format!("{n} {label} PEM blocks; give one")),
    }
}
