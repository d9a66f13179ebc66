//! `ima-sig` entries: a signature made with a key listed in the policy's `verification-keys`
//! passes without a digest; a broken one falls back to the digest list and fails there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use cairn_core::ima::{BankSet, FileDigest, Template};
use cairn_core::policy::runtime::{appraise, keys::keyid_of, AppraisalConfig, AppraisalState, FailureReason, RuntimePolicy};
use cairn_core::HashAlg;

fn signed_line(kp: &EcdsaKeyPair, content: &[u8], path: &str, flip: bool) -> String {
    let digest = HashAlg::Sha256.hash(content);
    let raw = kp.sign(&SystemRandom::new(), content).unwrap();
    let mut sig = vec![3u8, 2, 4];
    sig.extend_from_slice(&keyid_of(kp.public_key().as_ref()).to_be_bytes());
    sig.extend_from_slice(&(raw.as_ref().len() as u16).to_be_bytes());
    sig.extend_from_slice(raw.as_ref());
    if flip {
        let i = sig.len() - 2;
        sig[i] ^= 1;
    }
    let sig_hex = hex::encode(&sig);
    let fd = FileDigest::new(b"sha256", digest.as_bytes(), "d-ng").unwrap();
    let blob = cairn_core::ima::Blob::hex(sig_hex.as_bytes(), "sig").unwrap();
    let mut data = Vec::new();
    Template::ImaSig { digest: fd, path: path.as_bytes(), sig: blob }.encode(&mut data);
    format!("10 {} ima-sig sha256:{} {} {}\n", HashAlg::Sha1.hash(&data).to_hex(), digest.to_hex(), path, sig_hex)
}

fn policy_with_key(kp: &EcdsaKeyPair) -> RuntimePolicy {
    let spki = kp.public_key().as_der().unwrap();
    let keys = serde_json::json!({"pubkeys": [base64::engine::general_purpose::STANDARD.encode(spki.as_ref())], "keyids": []});
    let doc = serde_json::json!({
        "meta": {"version": 1, "generator": 0}, "release": 0, "digests": {}, "excludes": [], "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {},
        "verification-keys": keys.to_string(),
    });
    RuntimePolicy::from_json(&doc.to_string()).unwrap()
}

#[test]
fn signed_entry_passes_and_broken_signature_falls_back_to_digests() {
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let policy = policy_with_key(&kp);
    let log = signed_line(&kp, b"content", "/usr/bin/signed", false) + &signed_line(&kp, b"other", "/usr/bin/broken", true);
    let state = AppraisalState::new(BankSet::of(&[HashAlg::Sha1]));
    let a = appraise(Some(&policy), &state, log.as_bytes(), None, &AppraisalConfig::default()).unwrap();
    assert_eq!(a.failures.len(), 1, "{:?}", a.failures);
    assert_eq!(a.failures[0].entry, 1);
    assert_eq!(a.failures[0].path, "/usr/bin/broken");
    assert_eq!(a.failures[0].reason, FailureReason::NotInPolicy);
}
