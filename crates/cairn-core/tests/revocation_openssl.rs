//! Revocation signatures against the `openssl` command as an independent peer, both ways:
//! messages openssl signs (RSA-PSS, SHA-256, MGF1-SHA-256, maximum salt — Keylime's parameters)
//! verify with Cairn, through a public key PEM and through a certificate; messages Cairn signs
//! verify with `openssl dgst -verify` at the maximum salt length and, because the salt really is
//! the maximum, fail at the digest length. Keys in PKCS#8 and PKCS#1 (Keylime's storage form) load.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::revocation::{
    sign, verify, EmbeddedJson, RevocationError, RevocationMessage, RevocationSigner, RevocationVerifier, SignedRevocation, REVOCATION_TYPE,
};

/// What Keylime's verifier signs: Python `json.dumps` of its message (", " and ": " separators).
const KEYLIME_STYLE_MSG: &str = r#"{"type": "revocation", "ip": "192.0.2.44", "agent_id": "d432fbb3-d2f1-4a97-9ef7-75bd81c06000", "port": 9002, "tpm_policy": "{\"mask\": \"0x400\"}", "meta_data": "{\"cert_serial\": 2}", "event_time": "Mon Aug  3 12:00:00 2026", "event_id": "ima.validation.ima-ng.not_in_allowlist", "severity_label": "emergency", "context": "{\"message\": \"File not found in allowlist: /root/evil.sh\"}"}"#;

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command (Debian package openssl)");
    out
}

fn openssl_ok(dir: &Path, args: &[&str]) {
    let out = openssl(dir, args);
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An RSA-2048 key made by openssl: PKCS#8 `key.pem`, PKCS#1 `key1.pem`, `pub.pem`, `cert.pem`.
fn openssl_key() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    openssl_ok(&d, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"]);
    openssl_ok(&d, &["pkey", "-in", "key.pem", "-traditional", "-out", "key1.pem"]);
    openssl_ok(&d, &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
    openssl_ok(&d, &["req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=revocation", "-days", "2", "-out", "cert.pem"]);
    (dir, d)
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn pss_opts(saltlen: &str) -> Vec<String> {
    ["rsa_padding_mode:pss", &format!("rsa_pss_saltlen:{saltlen}"), "rsa_mgf1_md:sha256"]
        .iter()
        .flat_map(|o| ["-sigopt".to_string(), o.to_string()])
        .collect()
}

#[test]
fn openssl_signed_messages_verify_with_cairn() {
    let (_keep, d) = openssl_key();
    std::fs::write(d.join("msg.json"), KEYLIME_STYLE_MSG).unwrap();
    let sign_with = |saltlen: &str, out: &str| {
        let mut args = vec!["dgst".to_string(), "-sha256".into(), "-sign".into(), "key.pem".into()];
        args.extend(pss_opts(saltlen));
        args.extend(["-out".into(), out.into(), "msg.json".into()]);
        openssl_ok(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        B64.encode(std::fs::read(d.join(out)).unwrap())
    };
    let signed = SignedRevocation { msg: KEYLIME_STYLE_MSG.into(), signature: sign_with("max", "sig.bin") };
    for source in ["pub.pem", "cert.pem"] {
        let v = RevocationVerifier::from_pem(&read(d.join(source))).unwrap();
        let m = verify(&v, &signed).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!((m.kind.as_str(), m.agent_id.as_str(), m.port), (REVOCATION_TYPE, "d432fbb3-d2f1-4a97-9ef7-75bd81c06000", 9002));
        assert_eq!(m.context.unwrap().to_value().unwrap()["message"], "File not found in allowlist: /root/evil.sh");
        // The same signature over one changed byte of msg fails.
        let tampered = SignedRevocation { msg: KEYLIME_STYLE_MSG.replace("9002", "9003"), ..signed.clone() };
        assert_eq!(verify(&v, &tampered), Err(RevocationError::BadSignature));
    }
    // Keylime signs with the maximum salt and Cairn checks for exactly that: a digest-length salt
    // (valid PSS, but not Keylime's parameters) is refused.
    let digest_salt = SignedRevocation { msg: KEYLIME_STYLE_MSG.into(), signature: sign_with("digest", "sig32.bin") };
    let v = RevocationVerifier::from_pem(&read(d.join("pub.pem"))).unwrap();
    assert_eq!(verify(&v, &digest_salt), Err(RevocationError::BadSignature));
}

#[test]
fn cairn_signed_messages_verify_with_openssl() {
    let (_keep, d) = openssl_key();
    let message = RevocationMessage {
        kind: REVOCATION_TYPE.into(),
        ip: "192.0.2.45".into(),
        agent_id: "node-45".into(),
        port: 9002,
        tpm_policy: Some(EmbeddedJson::Text("{}".into())),
        meta_data: Some(EmbeddedJson::Text("{}".into())),
        event_time: "Mon Aug  3 12:00:00 2026".into(),
        event_id: Some("quote.invalid".into()),
        severity_label: Some("emergency".into()),
        context: Some(EmbeddedJson::text_of(&serde_json::json!({"message": "quote signature invalid"}))),
    };
    // Three signers: openssl's key as PKCS#8 and as PKCS#1, and a key Cairn generated.
    let generated = RevocationSigner::generate().unwrap();
    std::fs::write(d.join("gen.pub.pem"), generated.public_key_pem()).unwrap();
    let signers = [
        (RevocationSigner::from_pkcs8_pem(&read(d.join("key.pem"))).unwrap(), "pub.pem", 222),
        (RevocationSigner::from_pem(&read(d.join("key1.pem"))).unwrap(), "pub.pem", 222),
        (generated, "gen.pub.pem", 384 - 32 - 2),
    ];
    for (i, (signer, public, max_salt)) in signers.iter().enumerate() {
        let signed = sign(signer, &message).unwrap();
        std::fs::write(d.join("msg.json"), &signed.msg).unwrap();
        std::fs::write(d.join("sig.bin"), B64.decode(&signed.signature).unwrap()).unwrap();
        let check = |saltlen: &str| {
            let mut args = vec!["dgst".to_string(), "-sha256".into(), "-verify".into(), public.to_string()];
            args.extend(pss_opts(saltlen));
            args.extend(["-signature".into(), "sig.bin".into(), "msg.json".into()]);
            let out = openssl(&d, &args.iter().map(String::as_str).collect::<Vec<_>>());
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let (ok, said) = check("max");
        assert!(ok && said.contains("Verified OK"), "signer {i}: openssl says {said}");
        let (ok, _) = check(&max_salt.to_string());
        assert!(ok, "signer {i}: the salt is {max_salt} bytes");
        let (ok, said) = check("digest");
        assert!(!ok, "signer {i}: a 32-byte salt must not verify: {said}");
        // And Cairn's own check agrees.
        assert_eq!(verify(&signer.verifier().unwrap(), &signed).unwrap(), message);
    }
}

#[test]
fn keys_openssl_writes_are_read_and_non_rsa_keys_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ok(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem"]);
    openssl_ok(d, &["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"]);
    openssl_ok(d, &["req", "-x509", "-new", "-key", "ec.pem", "-subj", "/CN=ec", "-days", "2", "-out", "ec.crt"]);
    openssl_ok(d, &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"]);
    openssl_ok(d, &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub.pem"]);
    openssl_ok(d, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "small.pem"]);
    openssl_ok(d, &["pkey", "-in", "small.pem", "-pubout", "-out", "small.pub.pem"]);
    for f in ["ec.pub.pem", "ec.crt", "ed.pub.pem"] {
        let e = RevocationVerifier::from_pem(&read(d.join(f))).unwrap_err();
        assert!(matches!(e, RevocationError::WrongKeyType { .. }), "{f}: {e}");
    }
    assert_eq!(RevocationVerifier::from_pem(&read(d.join("small.pub.pem"))).unwrap_err(), RevocationError::KeySize { bits: 1024 });
    let e = RevocationSigner::from_pem(&read(d.join("small.pem"))).unwrap_err();
    assert!(matches!(&e, RevocationError::PrivateKey(why) if why.contains("smaller than 2048")), "{e}");
    assert!(matches!(RevocationSigner::from_pem(&read(d.join("ec.pem"))), Err(RevocationError::PrivateKey(_))));
}
