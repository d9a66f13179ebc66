use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};

use super::*;
use crate::codec::PutBe;
use crate::crypto::spki;
use crate::ekcert::issue::{certificate, key_id, tbs_certificate, CertFields, Profile, TpmNames};
use crate::tpm::signature::SignatureValue;
use crate::tpm::{ClockInfo, PublicKey, SigScheme};

const NOW: i64 = 1_800_000_000;

fn sign(key: &RsaKeyPair, msg: &[u8]) -> Vec<u8> {
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), msg, &mut sig).unwrap();
    sig
}

fn spki_of(key: &RsaKeyPair) -> Vec<u8> {
    key.public_key().as_der().unwrap().as_ref().to_vec()
}

/// TPM2B_PUBLIC of an unrestricted RSA signing key with `attributes`.
fn rsa_public(key: &RsaKeyPair, attributes: u32) -> Vec<u8> {
    let PublicKey::Rsa { n, .. } = spki::from_spki_der(&spki_of(key)).unwrap() else { panic!("not RSA") };
    let mut t = Vec::new();
    t.put_u16_be(0x0001);
    t.put_u16_be(0x000B);
    t.put_u32_be(attributes);
    t.put_tpm2b(&[]);
    t.put_u16_be(0x0010);
    t.put_u16_be(0x0014);
    t.put_u16_be(0x000B);
    t.put_u16_be(2048);
    t.put_u32_be(0);
    t.put_tpm2b(&n);
    let mut out = Vec::new();
    out.put_tpm2b(&t);
    out
}

struct Host {
    ak_key: RsaKeyPair,
    ak: Public,
    ca_key: RsaKeyPair,
    ca_cert: Vec<u8>,
    ca_public: Vec<u8>,
}

fn ca_cert(ca_key: &RsaKeyPair, cn: &str) -> Vec<u8> {
    let spki = spki_of(ca_key);
    let f = CertFields {
        serial: &[1],
        issuer: cn,
        subject: cn,
        not_before: NOW - 60,
        not_after: NOW + 86_400,
        spki: &spki,
        authority_key_id: None,
        profile: Profile::Ca,
    };
    let tbs = tbs_certificate(&f).unwrap();
    certificate(&tbs, &sign(ca_key, &tbs))
}

fn host() -> Host {
    let ak_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ak = Public::for_signing_key(&spki::from_spki_der(&spki_of(&ak_key)).unwrap(), SigScheme::Rsassa, HashAlg::Sha256).unwrap();
    let ca_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ca_cert = ca_cert(&ca_key, "host vTPM CA");
    let ca_public = rsa_public(&ca_key, CA_KEY_ATTRIBUTES | attrs::USER_WITH_AUTH);
    Host { ak_key, ak, ca_key, ca_cert, ca_public }
}

/// TPM2_Certify as a TPM would answer it: (attest, signature).
fn certify(h: &Host, name: Vec<u8>, extra: Vec<u8>, magic: u32) -> (Vec<u8>, Vec<u8>) {
    let attest = Attest {
        magic,
        qualified_signer: h.ak.name(),
        extra_data: extra,
        clock_info: ClockInfo { clock: 1, reset_count: 0, restart_count: 0, safe: true },
        firmware_version: 0,
        info: AttestInfo::Certify { name, qualified_name: vec![0, 0x0B, 9, 9] },
    }
    .to_bytes();
    let sig = Signature { scheme: SigScheme::Rsassa, hash: HashAlg::Sha256, value: SignatureValue::Rsa(sign(&h.ak_key, &attest)) };
    (attest, sig.to_bytes())
}

fn good(h: &Host) -> (Vec<u8>, Vec<u8>) {
    let name = Public::parse_tpm2b(&h.ca_public).unwrap().name();
    certify(h, name, HashAlg::Sha256.hash(&h.ca_cert).as_bytes().to_vec(), TPM_GENERATED_VALUE)
}

fn check(h: &Host, ca_public: &[u8], ca_cert: &[u8], attest: &[u8], sig: &[u8]) -> Result<Certificate, CaCertifyFailure> {
    verify_ca_certify(&h.ak, &CaEvidence { ca_cert, ca_public, certify_attest: attest, certify_signature: sig })
}

#[test]
fn genuine_evidence_passes() {
    let h = host();
    let (attest, sig) = good(&h);
    let cert = check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap();
    assert_eq!(cert.der(), h.ca_cert);
}

#[test]
fn tampered_signature_or_other_ak_fails_certify_signature() {
    let h = host();
    let (attest, mut sig) = good(&h);
    let last = sig.len() - 1;
    sig[last] ^= 1;
    assert_eq!(check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap_err().check(), "certify_signature");
    // The same evidence checked against another host's AK.
    let (attest, sig) = good(&h);
    let other = host();
    let e = verify_ca_certify(&other.ak, &CaEvidence { ca_cert: &h.ca_cert, ca_public: &h.ca_public, certify_attest: &attest, certify_signature: &sig });
    assert_eq!(e.unwrap_err().check(), "certify_signature");
    // A changed attestation no longer matches its signature.
    let (mut attest, sig) = good(&h);
    attest[10] ^= 1;
    assert!(matches!(check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap_err().check(), "certify_signature" | "certify_attest"));
}

#[test]
fn wrong_extra_data_fails() {
    let h = host();
    let name = Public::parse_tpm2b(&h.ca_public).unwrap().name();
    let other_cert = ca_cert(&h.ca_key, "another name");
    let (attest, sig) = certify(&h, name, HashAlg::Sha256.hash(&other_cert).as_bytes().to_vec(), TPM_GENERATED_VALUE);
    let e = check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap_err();
    assert_eq!(e.check(), "extra_data", "{e}");
    // The certificate it was made for passes.
    check(&h, &h.ca_public, &other_cert, &attest, &sig).unwrap();
}

#[test]
fn wrong_name_fails() {
    let h = host();
    let other = host();
    let other_name = Public::parse_tpm2b(&other.ca_public).unwrap().name();
    let (attest, sig) = certify(&h, other_name, HashAlg::Sha256.hash(&h.ca_cert).as_bytes().to_vec(), TPM_GENERATED_VALUE);
    assert_eq!(check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap_err().check(), "certified_name");
}

#[test]
fn ca_certificate_of_another_key_fails_ca_key() {
    let h = host();
    let other = host();
    // The certificate is of another key, but the attestation is for it and certifies h's CA key.
    let name = Public::parse_tpm2b(&h.ca_public).unwrap().name();
    let (attest, sig) = certify(&h, name, HashAlg::Sha256.hash(&other.ca_cert).as_bytes().to_vec(), TPM_GENERATED_VALUE);
    assert_eq!(check(&h, &h.ca_public, &other.ca_cert, &attest, &sig).unwrap_err().check(), "ca_key");
}

#[test]
fn attributes_are_required() {
    let h = host();
    for attributes in [
        CA_KEY_ATTRIBUTES & !attrs::FIXED_TPM,
        CA_KEY_ATTRIBUTES & !attrs::FIXED_PARENT,
        CA_KEY_ATTRIBUTES & !attrs::SENSITIVE_DATA_ORIGIN,
        CA_KEY_ATTRIBUTES | attrs::DECRYPT,
    ] {
        let ca_public = rsa_public(&h.ca_key, attributes);
        let name = Public::parse_tpm2b(&ca_public).unwrap().name();
        let (attest, sig) = certify(&h, name, HashAlg::Sha256.hash(&h.ca_cert).as_bytes().to_vec(), TPM_GENERATED_VALUE);
        let e = check(&h, &ca_public, &h.ca_cert, &attest, &sig).unwrap_err();
        assert_eq!(e.check(), "ca_attributes", "{attributes:#x}: {e}");
    }
}

#[test]
fn foreign_structures_and_quotes_fail() {
    let h = host();
    let name = Public::parse_tpm2b(&h.ca_public).unwrap().name();
    let (attest, sig) = certify(&h, name, HashAlg::Sha256.hash(&h.ca_cert).as_bytes().to_vec(), 0x1234_5678);
    assert_eq!(check(&h, &h.ca_public, &h.ca_cert, &attest, &sig).unwrap_err().check(), "attest_magic");
    // A quote signed by the same AK is not a certification.
    let quote = Attest {
        magic: TPM_GENERATED_VALUE,
        qualified_signer: h.ak.name(),
        extra_data: HashAlg::Sha256.hash(&h.ca_cert).as_bytes().to_vec(),
        clock_info: ClockInfo { clock: 1, reset_count: 0, restart_count: 0, safe: true },
        firmware_version: 0,
        info: AttestInfo::Quote { selection: "sha256:0".parse().unwrap(), pcr_digest: vec![0; 32] },
    }
    .to_bytes();
    let sig = Signature { scheme: SigScheme::Rsassa, hash: HashAlg::Sha256, value: SignatureValue::Rsa(sign(&h.ak_key, &quote)) };
    assert_eq!(check(&h, &h.ca_public, &h.ca_cert, &quote, &sig.to_bytes()).unwrap_err().check(), "attest_type");
    // Padding after the CA certificate, or a non-CA certificate, is refused.
    let (attest, sig) = good(&h);
    let mut padded = h.ca_cert.clone();
    padded.push(0);
    assert_eq!(check(&h, &h.ca_public, &padded, &attest, &sig).unwrap_err().check(), "ca_certificate");
    assert_eq!(check(&h, &h.ca_public[..10], &h.ca_cert, &attest, &sig).unwrap_err().check(), "ca_public");
}

#[test]
fn vm_ek_certificates_find_their_host() {
    let h = host();
    let other = host();
    let ek_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ek_spki = spki_of(&ek_key);
    let akid = key_id(&spki_of(&h.ca_key));
    let f = CertFields {
        serial: &[2],
        issuer: "host vTPM CA",
        subject: "",
        not_before: NOW - 60,
        not_after: NOW + 3600,
        spki: &ek_spki,
        authority_key_id: Some(&akid),
        profile: Profile::Ek(TpmNames { manufacturer: "id:00001014", model: "swtpm", version: "id:20191023" }),
    };
    let tbs = tbs_certificate(&f).unwrap();
    let ek = Certificate::from_der(&certificate(&tbs, &sign(&h.ca_key, &tbs))).unwrap();
    let ca_h = Certificate::from_der(&h.ca_cert).unwrap();
    let ca_o = Certificate::from_der(&other.ca_cert).unwrap();
    let (host_id, chain) = issuing_host(&ek, [("other", &ca_o), ("h", &ca_h)], NOW).unwrap();
    assert_eq!(host_id, "h");
    assert_eq!(chain.path.len(), 2);
    let e = issuing_host(&ek, [("other", &ca_o)], NOW).unwrap_err();
    assert!(matches!(e, VmChainError::NotIssued { tried: 1, .. }), "{e}");
    assert_eq!(issuing_host(&ek, [], NOW).unwrap_err(), VmChainError::NoHosts);
    assert!(issuing_host(&ek, [("h", &ca_h)], NOW + 7200).is_err(), "expired");
}
