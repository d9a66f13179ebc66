//! Property: checking a signed revocation message returns a result, never panics, whatever the
//! `msg` and `signature` text; so do parsing a message and loading a public key from arbitrary
//! text or bytes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::revocation::{
    sign_text, verify, RevocationKeySize, RevocationMessage, RevocationSigner, RevocationVerifier, SignedRevocation,
};
use proptest::prelude::*;

fn signer() -> &'static RevocationSigner {
    static S: OnceLock<RevocationSigner> = OnceLock::new();
    S.get_or_init(|| RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap())
}

fn verifier() -> &'static RevocationVerifier {
    static V: OnceLock<RevocationVerifier> = OnceLock::new();
    V.get_or_init(|| signer().verifier().unwrap())
}

/// JSON-ish text: fragments of a revocation message in any order and number.
fn jsonish() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"type\"",
        "\"revocation\"",
        "\"ip\"",
        "\"agent_id\"",
        "\"port\"",
        "9002",
        "-1",
        "1e999",
        "\"event_time\"",
        "\"context\"",
        "null",
        "true",
        "\"\\u0000\"",
        "\"\\ud800\"",
        " ",
    ]);
    prop::collection::vec(parts, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn verify_never_panics_on_text(msg in ".{0,200}", signature in ".{0,400}") {
        let _ = verify(verifier(), &SignedRevocation { msg, signature });
    }

    #[test]
    fn verify_never_panics_on_right_sized_signatures(msg in jsonish(), raw in prop::collection::vec(any::<u8>(), 256)) {
        let signed = SignedRevocation { msg, signature: B64.encode(&raw) };
        prop_assert!(verify(verifier(), &signed).is_err());
    }

    #[test]
    fn parsing_never_panics_and_signed_text_is_judged_as_parsed(msg in jsonish()) {
        let parsed = RevocationMessage::from_json(&msg);
        // Whatever the text, a valid signature over it yields exactly what parsing yields.
        let signed = sign_text(signer(), msg).unwrap();
        prop_assert_eq!(verify(verifier(), &signed), parsed);
    }

    #[test]
    fn key_loading_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), text in ".{0,300}") {
        let _ = RevocationVerifier::from_spki_der(&bytes);
        let _ = RevocationVerifier::from_certificate_der(&bytes);
        let _ = RevocationVerifier::from_pem(&text);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", B64.encode(&bytes));
        let _ = RevocationVerifier::from_pem(&pem);
        let _ = RevocationSigner::from_pem(&pem.replace("PUBLIC", "PRIVATE"));
    }
}
