//! A simulated agent's identity: EK (with a bench-CA certificate), AK and mTLS certificate.
//!
//! The shapes are a TPM's: the EK is a P-256 key in the TCG default EK template (restricted
//! decrypt, AES-128-CFB, the endorsement policy), so the registrar's MakeCredential and EK checks
//! run unchanged; the AK is a restricted signing key with a fixed scheme, as `tpm2_createak`
//! makes. The private halves live in this process's memory for one run.

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::agreement::{self, PrivateKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use cairn_core::tpm::signature::SignatureValue;
use cairn_core::tpm::{EccCurve, Public, PublicKey, SigScheme, Signature};
use cairn_core::HashAlg;

use crate::ca::BenchCa;
use crate::error::SimError;

/// How simulated AKs sign quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignAlg {
    /// ECDSA P-256 / SHA-256 (cheap to sign: the default, so the verifier is what is measured).
    Ecc256,
    /// RSASSA-PKCS1-v1_5 / SHA-256 with RSA-2048 (what most TPM AKs are).
    Rsa2048,
}

impl std::str::FromStr for SignAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<SignAlg, String> {
        match s {
            "ecc256" => Ok(SignAlg::Ecc256),
            "rsa2048" => Ok(SignAlg::Rsa2048),
            other => Err(format!("unknown signing key {other:?} (ecc256 or rsa2048)")),
        }
    }
}

impl SignAlg {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            SignAlg::Ecc256 => "ecc256",
            SignAlg::Rsa2048 => "rsa2048",
        }
    }
}

/// A software AK.
pub enum AkKey {
    /// ECDSA P-256.
    Ecdsa(EcdsaKeyPair),
    /// RSA-2048 (shared among agents from a small pool: generating thousands of RSA keys would
    /// take minutes and measure nothing).
    Rsa(Arc<RsaKeyPair>),
}

impl AkKey {
    /// Signs a TPMS_ATTEST; returns TPMT_SIGNATURE bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SimError> {
        let rng = SystemRandom::new();
        let value = match self {
            AkKey::Ecdsa(k) => {
                let sig = k.sign(&rng, message).map_err(SimError::keys)?;
                let s = sig.as_ref();
                let (r, s) = (s.get(..32), s.get(32..64));
                let (Some(r), Some(s)) = (r, s) else { return Err(SimError::Keys("short ECDSA signature".into())) };
                SignatureValue::Ecc { r: r.to_vec(), s: s.to_vec() }
            }
            AkKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(SimError::keys)?;
                SignatureValue::Rsa(sig)
            }
        };
        let scheme = match self {
            AkKey::Ecdsa(_) => SigScheme::Ecdsa,
            AkKey::Rsa(_) => SigScheme::Rsassa,
        };
        Ok(Signature { scheme, hash: HashAlg::Sha256, value }.to_bytes())
    }
}

/// RSA AKs made once per run and handed out in turn.
pub struct RsaPool(Vec<Arc<RsaKeyPair>>);

impl RsaPool {
    /// `n` fresh RSA-2048 keys (none for an ECC run).
    pub fn new(n: usize) -> Result<RsaPool, SimError> {
        (0..n).map(|_| RsaKeyPair::generate(KeySize::Rsa2048).map(Arc::new).map_err(SimError::keys)).collect::<Result<_, _>>().map(RsaPool)
    }

    fn get(&self, i: usize) -> Option<Arc<RsaKeyPair>> {
        self.0.get(i % self.0.len().max(1)).cloned()
    }
}

/// Everything one simulated agent proves itself with.
pub struct Identity {
    /// EK public area (TPM2B_PUBLIC).
    pub ek_tpm: Vec<u8>,
    /// EK certificate, DER, issued by the bench CA.
    pub ek_cert: Vec<u8>,
    /// The EK's private key (ECDH, for ActivateCredential).
    pub ek_private: PrivateKey,
    /// The EK's x coordinate (KDFe's partyVInfo).
    pub ek_x: Vec<u8>,
    /// AK public area.
    pub ak: Public,
    /// The AK.
    pub ak_key: AkKey,
    /// mTLS certificate, PEM (self-signed, pinned by the verifier).
    pub mtls_cert_pem: String,
    /// mTLS key, PKCS#8 PEM.
    pub mtls_key_pem: String,
}

impl Identity {
    /// Makes an identity for agent number `serial` reachable at `ip`.
    pub fn generate(ca: &BenchCa, serial: u64, uuid: &str, ip: IpAddr, sign: SignAlg, pool: &RsaPool) -> Result<Identity, SimError> {
        let ek_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(SimError::keys)?;
        let ek_private = PrivateKey::from_private_key_der(&agreement::ECDH_P256, ek_key.serialized_der()).map_err(SimError::keys)?;
        let point = ek_private.compute_public_key().map_err(SimError::keys)?;
        let (x, y) = split_point(point.as_ref())?;
        let ek_tpm = ek_public(&x, &y)?.to_tpm2b();
        let ek_cert = ca.issue_ek_cert(&ek_key, serial)?;
        let (ak_key, ak_public) = match sign {
            SignAlg::Ecc256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).map_err(SimError::keys)?;
                let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).map_err(SimError::keys)?;
                let (x, y) = split_point(k.public_key().as_ref())?;
                (AkKey::Ecdsa(k), (PublicKey::Ecc { curve: EccCurve::NistP256, x, y }, SigScheme::Ecdsa))
            }
            SignAlg::Rsa2048 => {
                let k = pool.get(usize::try_from(serial).unwrap_or(0)).ok_or_else(|| SimError::Keys("empty RSA pool".into()))?;
                let pk = k.public_key();
                let e = pk.exponent().big_endian_without_leading_zero().iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
                let n = pk.modulus().big_endian_without_leading_zero().to_vec();
                (AkKey::Rsa(k), (PublicKey::Rsa { n, e }, SigScheme::Rsassa))
            }
        };
        let ak = Public::for_signing_key(&ak_public.0, ak_public.1, HashAlg::Sha256)
            .map_err(|source| SimError::Parse { what: "AK public area", source })?;
        let (mtls_cert_pem, mtls_key_pem) = mtls(uuid, ip)?;
        Ok(Identity { ek_tpm, ek_cert, ek_private, ek_x: x, ak, ak_key, mtls_cert_pem, mtls_key_pem })
    }
}

fn split_point(p: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SimError> {
    match (p.first(), p.get(1..33), p.get(33..65)) {
        (Some(4), Some(x), Some(y)) if p.len() == 65 => Ok((x.to_vec(), y.to_vec())),
        _ => Err(SimError::Keys("not an uncompressed P-256 point".into())),
    }
}

/// The TCG default EK template (low range, ECC NIST P-256) holding `x`, `y`.
fn ek_public(x: &[u8], y: &[u8]) -> Result<Public, SimError> {
    // PolicySecret(TPM_RH_ENDORSEMENT): the EK template's authPolicy.
    const EK_POLICY: [u8; 32] = [
        0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e,
        0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
    ];
    // fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt
    const EK_ATTRS: u32 = 0x0003_00B2;
    let mut t = Vec::with_capacity(128);
    t.extend_from_slice(&0x0023u16.to_be_bytes()); // TPM_ALG_ECC
    t.extend_from_slice(&0x000Bu16.to_be_bytes()); // nameAlg SHA-256
    t.extend_from_slice(&EK_ATTRS.to_be_bytes());
    t.extend_from_slice(&32u16.to_be_bytes());
    t.extend_from_slice(&EK_POLICY);
    // symmetric AES-128-CFB, scheme NULL, curve NIST P-256, kdf NULL
    for v in [0x0006u16, 0x0080, 0x0043, 0x0010, 0x0003, 0x0010] {
        t.extend_from_slice(&v.to_be_bytes());
    }
    for c in [x, y] {
        t.extend_from_slice(&u16::try_from(c.len()).unwrap_or(0).to_be_bytes());
        t.extend_from_slice(c);
    }
    Public::parse_tpmt(&t).map_err(|source| SimError::Parse { what: "EK public area", source })
}

/// A self-signed P-256 certificate for the agent's HTTPS server, as the real agent makes.
fn mtls(uuid: &str, ip: IpAddr) -> Result<(String, String), SimError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(SimError::keys)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(SimError::keys)?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, uuid);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Cairn simulated agent");
    let cert = params.self_signed(&key).map_err(SimError::keys)?;
    Ok((cert.pem(), key.serialize_pem()))
}
