//! Fuzz target `revocation`.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::revocation::{sign, verify, RevocationKeySize, RevocationMessage, RevocationSigner, RevocationVerifier, SignedRevocation};

fn keys() -> &'static (RevocationSigner, RevocationVerifier) {
    static KEYS: OnceLock<(RevocationSigner, RevocationVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap_or_else(|e| panic!("key generation: {e}"));
        let verifier = signer.verifier().unwrap_or_else(|e| panic!("own public key: {e}"));
        (signer, verifier)
    })
}

/// Signed revocation messages: the input as `msg` with signatures made of its own bytes (one of
/// the key's length, so the RSA check itself runs, and its last line as signature text); the
/// message parser; every key loader. A message that parses must survive sign → verify unchanged.
pub fn revocation(data: &[u8]) {
    let (signer, verifier) = keys();
    let text = String::from_utf8_lossy(data).into_owned();
    let sized = B64.encode(data.iter().copied().cycle().take(if data.is_empty() { 0 } else { 256 }).collect::<Vec<u8>>());
    let last_line = text.rsplit('\n').next().unwrap_or("").to_owned();
    for signature in [sized, last_line] {
        let signed = SignedRevocation { msg: text.clone(), signature };
        assert!(verify(verifier, &signed).is_err(), "a signature made of the input verified");
    }
    if let Ok(message) = RevocationMessage::from_json(&text) {
        let signed = sign(signer, &message).unwrap_or_else(|e| panic!("signing a parsed message: {e}"));
        assert_eq!(verify(verifier, &signed).as_ref(), Ok(&message), "sign → verify changed the message");
    }
    let _ = RevocationVerifier::from_pem(&text);
    let _ = RevocationVerifier::from_spki_der(data);
    let _ = RevocationVerifier::from_certificate_der(data);
    let _ = RevocationSigner::from_pem(&text);
}
