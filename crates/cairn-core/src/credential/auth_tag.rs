//! Keylime's proof that an agent activated its credential, and constant-time comparison.
//!
//! After TPM2_ActivateCredential the agent sends `auth_tag = hex(HMAC-SHA384(key = base64(secret)
//! as ASCII, message = agent UUID))`; the registrar recomputes it from the secret it made. The
//! comparison runs in constant time so a network peer learns nothing from timing.

use aws_lc_rs::hmac;
use base64::Engine;
use subtle::ConstantTimeEq;

/// Keylime's auth_tag for `secret` and `agent_uuid`, lower-case hex.
pub fn keylime_auth_tag(secret: &[u8], agent_uuid: &str) -> String {
    let key_text = base64::engine::general_purpose::STANDARD.encode(secret);
    let key = hmac::Key::new(hmac::HMAC_SHA384, key_text.as_bytes());
    hex::encode(hmac::sign(&key, agent_uuid.as_bytes()).as_ref())
}

/// Whether the agent's `claimed` tag (hex, any case) is the expected one, in constant time.
pub fn auth_tag_matches(secret: &[u8], agent_uuid: &str, claimed: &str) -> bool {
    let expected = keylime_auth_tag(secret, agent_uuid);
    ct_eq(expected.as_bytes(), claimed.to_ascii_lowercase().as_bytes())
}

/// Constant-time equality (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
