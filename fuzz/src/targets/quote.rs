//! Fuzz target `quote`.

use cairn_core::crypto::VerifyingKey;
use cairn_core::quote::{verify_quote, Expected, QuoteParts};
use cairn_core::tpm::Public;

/// A whole quote check over input split into key, message, signature and PCRs.
pub fn quote(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0xA5);
    let (Some(k), Some(m), Some(s), Some(p)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if let Ok(public) = Public::parse_tpm2b(k) {
        let key = VerifyingKey::from_public(&public);
        let _ = verify_quote(&key, QuoteParts { message: m, signature: s, pcrs: p }, Expected::nonce(b"nonce"));
    }
}
