//! Revocation notifications: the body a verifier POSTs to agents
//! (`/vX/notifications/revocation`) and to webhooks when a node fails attestation.
//!
//! `msg` is the revocation message as JSON *text* (a string inside the JSON body, as Keylime
//! sends it) and `signature` the base64 RSA-PSS signature over that text's bytes. Checking the
//! signature and reading the message are cairn-core's business (`cairn_core::revocation`).

use serde::{Deserialize, Serialize};

/// Path of the agent endpoint under the API version (`/v2.5/notifications/revocation`).
pub const AGENT_REVOCATION_PATH: &str = "notifications/revocation";

/// `POST /vX/notifications/revocation` body, and a revocation webhook's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationNotification {
    /// The revocation message, JSON text.
    pub msg: String,
    /// Base64 signature of `msg` by the verifier's revocation key.
    pub signature: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn msg_is_a_string_holding_json() {
        let body = r#"{"msg": "{\"type\": \"revocation\", \"agent_id\": \"a\"}", "signature": "AAAA"}"#;
        let n: RevocationNotification = serde_json::from_str(body).unwrap();
        assert_eq!(n.msg, r#"{"type": "revocation", "agent_id": "a"}"#);
        assert_eq!(serde_json::to_value(&n).unwrap()["signature"], "AAAA");
        // A message sent as an object, not as text, is not Keylime's wire form.
        assert!(serde_json::from_str::<RevocationNotification>(r#"{"msg": {"type": "revocation"}, "signature": ""}"#).is_err());
    }
}
