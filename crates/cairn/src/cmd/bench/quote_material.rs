//! Software-signed quotes for the verification benchmark.
//!
//! Genuine TPMS_ATTEST / TPMT_SIGNATURE / TPM2B_PUBLIC bytes signed by keys made in software, so
//! the benchmark runs anywhere. A load generator only: correctness tests use real TPMs.

use anyhow::{anyhow, Context};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use cairn_core::pcr::{PcrSelection, PcrValues};
use cairn_core::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
use cairn_core::tpm::signature::SignatureValue;
use cairn_core::tpm::{encode_pcr_blob, Attest, EccCurve, Public, PublicKey, SigScheme, Signature};
use cairn_core::HashAlg;
use sm2::dsa::signature::hazmat::PrehashSigner;

/// Key families the benchmark covers.
#[derive(Clone, Copy, Debug)]
pub enum Family {
    /// RSA-2048, RSASSA-SHA256.
    Rsa2048,
    /// ECDSA P-256, SHA-256.
    EcdsaP256,
    /// SM2 P-256 over SHA-256.
    Sm2,
}

impl Family {
    /// JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Rsa2048 => "rsa2048_rsassa_sha256",
            Family::EcdsaP256 => "ecdsa_p256_sha256",
            Family::Sm2 => "sm2_p256_sha256",
        }
    }
}

/// A signed quote with the AK that signed it.
pub struct Material {
    /// AK public area (TPM2B_PUBLIC bytes).
    pub ak: Vec<u8>,
    /// TPMS_ATTEST.
    pub message: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// tpm2-tools PCR blob.
    pub pcrs: Vec<u8>,
    /// The nonce.
    pub nonce: Vec<u8>,
}

/// Makes a quote over sha256 PCRs 0–10 and 16 (a Keylime integrity quote) signed by a fresh key.
pub fn make(family: Family) -> anyhow::Result<Material> {
    let rng = SystemRandom::new();
    let nonce = b"a1b2c3d4e5f6g7h8i9j0".to_vec();
    let selection: PcrSelection = "sha256:0,1,2,3,4,5,6,7,8,9,10,16".parse()?;
    let values = selection.iter().map(|(alg, p)| alg.hash(&[p.get(), 0x5a])).collect();
    let values = PcrValues::new(selection.clone(), values)?;
    let attest = Attest {
        magic: TPM_GENERATED_VALUE,
        qualified_signer: [&[0u8, 0x0b][..], &[0x42; 32]].concat(),
        extra_data: nonce.clone(),
        clock_info: ClockInfo { clock: 123_456, reset_count: 2, restart_count: 0, safe: true },
        firmware_version: 0x2019_1023_0016_3636,
        info: AttestInfo::Quote { selection, pcr_digest: values.composite_digest(HashAlg::Sha256).as_bytes().to_vec() },
    };
    let message = attest.to_bytes();
    let err = |_| anyhow!("software signing failed");
    let (key, scheme, value) = match family {
        Family::Rsa2048 => {
            let kp = KeyPair::generate(KeySize::Rsa2048).map_err(err)?;
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut sig).map_err(err)?;
            let pk = kp.public_key();
            let e = pk.exponent().big_endian_without_leading_zero().iter().fold(0u32, |a, b| (a << 8) | u32::from(*b));
            let key = PublicKey::Rsa { n: pk.modulus().big_endian_without_leading_zero().to_vec(), e };
            (key, SigScheme::Rsassa, SignatureValue::Rsa(sig))
        }
        Family::EcdsaP256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(err)?;
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).map_err(|_| anyhow!("bad key"))?;
            let sig = kp.sign(&rng, &message).map_err(err)?;
            let point = kp.public_key().as_ref();
            let coord = |a: usize| point.get(a..a + 32).map(<[u8]>::to_vec).context("short EC point");
            let s = sig.as_ref();
            let half = |a: usize| s.get(a..a + 32).map(<[u8]>::to_vec).context("short signature");
            let key = PublicKey::Ecc { curve: EccCurve::NistP256, x: coord(1)?, y: coord(33)? };
            (key, SigScheme::Ecdsa, SignatureValue::Ecc { r: half(0)?, s: half(32)? })
        }
        Family::Sm2 => {
            let mut secret = [0u8; 32];
            let sk = loop {
                rng.fill(&mut secret).map_err(err)?;
                if let Ok(k) = sm2::dsa::SigningKey::from_bytes("1234567812345678", (&secret).into()) {
                    break k;
                }
            };
            let digest = HashAlg::Sha256.hash(&message);
            let sig: sm2::dsa::Signature = sk.sign_prehash(digest.as_bytes()).map_err(|_| anyhow!("SM2 signing failed"))?;
            let point = sk.verifying_key().to_sec1_bytes();
            let coord = |a: usize| point.get(a..a + 32).map(<[u8]>::to_vec).context("short SM2 point");
            let key = PublicKey::Ecc { curve: EccCurve::Sm2P256, x: coord(1)?, y: coord(33)? };
            (key, SigScheme::Sm2, SignatureValue::Ecc { r: sig.r_bytes().to_vec(), s: sig.s_bytes().to_vec() })
        }
    };
    let ak = Public::for_signing_key(&key, scheme, HashAlg::Sha256)?.to_tpm2b();
    let signature = Signature { scheme, hash: HashAlg::Sha256, value }.to_bytes();
    Ok(Material { ak, message, signature, pcrs: encode_pcr_blob(&values), nonce })
}
