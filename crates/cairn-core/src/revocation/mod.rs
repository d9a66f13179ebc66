//! Signed revocation messages, Keylime's way: what a verifier sends agents and webhooks when a
//! node fails attestation, and the check an agent makes before acting on one.
//!
//! Keylime's encoding, which Cairn matches in both directions:
//! - the message ([`RevocationMessage`]) is serialized to JSON text, and that text travels as a
//!   JSON *string* in `msg`;
//! - `signature` is standard base64 (with padding) of an RSA-PSS signature, SHA-256 with
//!   MGF1-SHA-256 and the maximum salt length, over the UTF-8 bytes of that `msg` string exactly
//!   as sent (never over a re-serialization);
//! - the pair is sent as the JSON object `{"msg": …, "signature": …}` ([`SignedRevocation`]) to
//!   `POST /v2.x/notifications/revocation` on agents and to webhooks.
//!
//! [`verify`] checks the signature first and only then parses `msg`: nothing unauthenticated is
//! interpreted. Each refusal is a specific [`RevocationError`] (no signature, bad base64, wrong
//! length, signature invalid, malformed message naming the field). Keys: [`keys`].
//!
//! ```
//! use cairn_core::revocation::{sign, verify, RevocationMessage, RevocationSigner, REVOCATION_TYPE};
//! let signer = RevocationSigner::generate().unwrap();
//! let message = RevocationMessage {
//!     kind: REVOCATION_TYPE.into(), ip: "192.0.2.7".into(), agent_id: "node-7".into(), port: 9002,
//!     tpm_policy: None, meta_data: None, event_time: "Mon Aug  3 12:00:00 2026".into(),
//!     event_id: None, severity_label: None, context: None,
//! };
//! let signed = sign(&signer, &message).unwrap();
//! let verifier = cairn_core::revocation::RevocationVerifier::from_pem(signer.public_key_pem()).unwrap();
//! assert_eq!(verify(&verifier, &signed).unwrap(), message);
//! ```

mod error;
pub mod keys;
mod message;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub use error::RevocationError;
pub use keys::{RevocationKeySize, RevocationSigner, RevocationVerifier};
pub use message::{EmbeddedJson, RevocationMessage, REVOCATION_TYPE};

/// A signed revocation message as it travels: `msg` is the message's JSON text, `signature`
/// base64 of the RSA-PSS signature over `msg`'s bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRevocation {
    /// The message, JSON text.
    pub msg: String,
    /// Base64 RSA-PSS/SHA-256 (maximum salt) signature of `msg`.
    pub signature: String,
}

/// Serializes `message` and signs the text.
pub fn sign(signer: &RevocationSigner, message: &RevocationMessage) -> Result<SignedRevocation, RevocationError> {
    let msg = serde_json::to_string(message).map_err(|e| RevocationError::Signing(format!("cannot serialize the message: {e}")))?;
    sign_text(signer, msg)
}

/// Signs message text exactly as given (a sender re-sending a message it keeps as text). The
/// text is not checked: [`verify`] parses it after the signature.
pub fn sign_text(signer: &RevocationSigner, msg: String) -> Result<SignedRevocation, RevocationError> {
    let signature = B64.encode(signer.sign_bytes(msg.as_bytes())?);
    Ok(SignedRevocation { msg, signature })
}

/// Checks `signed` with the revocation key, then parses its message.
pub fn verify(verifier: &RevocationVerifier, signed: &SignedRevocation) -> Result<RevocationMessage, RevocationError> {
    RevocationMessage::from_json(verify_text(verifier, signed)?)
}

/// Checks `signed` with the revocation key and returns its message text unparsed (Cairn's other
/// signed events, such as integrity-level changes, travel in the same envelope).
pub fn verify_text<'a>(verifier: &RevocationVerifier, signed: &'a SignedRevocation) -> Result<&'a str, RevocationError> {
    let text = signed.signature.trim();
    if text.is_empty() || text == "none" {
        return Err(RevocationError::MissingSignature);
    }
    let signature = B64.decode(text).map_err(|e| RevocationError::BadBase64(e.to_string()))?;
    verifier.verify_bytes(signed.msg.as_bytes(), &signature)?;
    Ok(&signed.msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn signer() -> &'static RevocationSigner {
        static S: OnceLock<RevocationSigner> = OnceLock::new();
        S.get_or_init(|| RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap())
    }

    fn message() -> RevocationMessage {
        RevocationMessage {
            kind: REVOCATION_TYPE.into(),
            ip: "192.0.2.7".into(),
            agent_id: "node-7".into(),
            port: 9002,
            tpm_policy: Some(EmbeddedJson::Text("{\"mask\": \"0x0\"}".into())),
            meta_data: Some(EmbeddedJson::Text("{}".into())),
            event_time: "Mon Aug  3 12:00:00 2026".into(),
            event_id: Some("quote.pcr_mismatch".into()),
            severity_label: Some("emergency".into()),
            context: Some(EmbeddedJson::text_of(&serde_json::json!({"message": "PCR 10 differs"}))),
        }
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let v = signer().verifier().unwrap();
        assert_eq!(v.bits(), 2048);
        let signed = sign(signer(), &message()).unwrap();
        assert_eq!(verify(&v, &signed).unwrap(), message());
        // The wire form: msg is a JSON string holding the message text.
        let wire = serde_json::to_value(&signed).unwrap();
        assert!(wire["msg"].as_str().unwrap().starts_with("{\"type\":\"revocation\""));

        let with = |msg: &str, sig: &str| SignedRevocation { msg: msg.into(), signature: sig.into() };
        assert_eq!(verify(&v, &with(&signed.msg, "")), Err(RevocationError::MissingSignature));
        assert_eq!(verify(&v, &with(&signed.msg, "none")), Err(RevocationError::MissingSignature));
        assert!(matches!(verify(&v, &with(&signed.msg, "@@@@")), Err(RevocationError::BadBase64(_))));
        assert_eq!(verify(&v, &with(&signed.msg, "AAAA")), Err(RevocationError::SignatureLength { len: 3, expected: 256 }));
        // Surrounding whitespace (a trailing newline from a file) is tolerated.
        assert!(verify(&v, &with(&signed.msg, &format!("{}\n", signed.signature))).is_ok());
        // The message is signed as sent: a different serialization of the same message fails.
        let pretty = serde_json::to_string_pretty(&message()).unwrap();
        assert_eq!(verify(&v, &with(&pretty, &signed.signature)), Err(RevocationError::BadSignature));
        // Every single-bit flip in the signature fails.
        let raw = B64.decode(&signed.signature).unwrap();
        for i in (0..raw.len() * 8).step_by(97) {
            let mut bad = raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(verify(&v, &with(&signed.msg, &B64.encode(&bad))), Err(RevocationError::BadSignature), "bit {i}");
        }
        // A signed text that is not a revocation message verifies but is refused by field.
        let odd = sign_text(signer(), "{\"type\":\"revocation\"}".into()).unwrap();
        let e = verify(&v, &odd).unwrap_err();
        assert_eq!(e, RevocationError::MalformedMessage { field: "ip".into(), detail: "missing".into() });
    }

    #[test]
    fn another_key_fails() {
        let other = RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap();
        let signed = sign(&other, &message()).unwrap();
        assert_eq!(verify(&signer().verifier().unwrap(), &signed), Err(RevocationError::BadSignature));
        assert!(verify(&other.verifier().unwrap(), &signed).is_ok());
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let pem = signer().to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = RevocationSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.public_key_pem(), signer().public_key_pem());
        let signed = sign(&again, &message()).unwrap();
        assert!(verify(&signer().verifier().unwrap(), &signed).is_ok());
        assert!(matches!(RevocationSigner::from_pkcs8_pem(signer().public_key_pem()), Err(RevocationError::PrivateKey(_))));
        assert!(matches!(RevocationVerifier::from_pem(&pem), Err(RevocationError::PublicKey(e)) if e.contains("private key")));
        assert!(matches!(RevocationVerifier::from_pem("hello"), Err(RevocationError::PublicKey(_))));
    }

    #[test]
    fn non_rsa_and_small_keys_are_named() {
        let ec = crate::crypto::spki::to_spki_der(&crate::tpm::PublicKey::Ecc {
            curve: crate::tpm::EccCurve::NistP256,
            x: vec![1; 32],
            y: vec![2; 32],
        })
        .unwrap();
        assert!(matches!(RevocationVerifier::from_spki_der(&ec), Err(RevocationError::WrongKeyType { .. })));
        let small = crate::crypto::spki::to_spki_der(&crate::tpm::PublicKey::Rsa { n: vec![0xC5; 128], e: 65537 }).unwrap();
        assert_eq!(RevocationVerifier::from_spki_der(&small).unwrap_err(), RevocationError::KeySize { bits: 1024 });
    }
}
