//! Agent API bodies (Keylime agent REST 2.x): info, keys, quotes, and the registration the agent
//! sends to a registrar.
//!
//! Field names and optionality follow what Keylime's verifier and tenant read and what Keylime's
//! and rust-keylime's agents send, so either side can be a Keylime component. Binary values stay
//! base64 or PEM text here: decoding them is cairn-core's business, never the wire layer's.

use serde::{Deserialize, Serialize};

/// `GET /vX/agent/info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's uuid.
    pub agent_uuid: String,
    /// Hash of the quotes (`sha256`, …).
    pub tpm_hash_alg: String,
    /// The EK's algorithm (`rsa2048`, `ecc256`, …).
    pub tpm_enc_alg: String,
    /// The AK's signature scheme (`rsassa`, `rsapss`, `ecdsa`, …).
    pub tpm_sign_alg: String,
    /// The AK's persistent handle.
    pub ak_handle: u32,
}

/// `GET /vX/keys/pubkey`: the node key (NK), PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubkeyResponse {
    /// SubjectPublicKeyInfo, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub pubkey: String,
}

/// `GET /vX/quotes/identity` and `GET /vX/quotes/integrity` replies.
///
/// The identity quote carries no logs; the integrity quote carries them when their PCRs are in
/// the mask. Absent values are sent as JSON `null`, as Keylime's agents do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteResponse {
    /// `r<b64 TPMS_ATTEST>:<b64 TPMT_SIGNATURE>:<b64 PCR blob>`.
    pub quote: String,
    /// Hash of the quote (and of the PCR bank quoted).
    pub hash_alg: String,
    /// The EK's algorithm (`rsa2048`, …).
    pub enc_alg: String,
    /// The AK's signature scheme.
    pub sign_alg: String,
    /// The NK public key, PEM: sent with `partial=0` and always with the identity quote.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Seconds since the epoch at which the node booted.
    #[serde(default)]
    pub boottime: Option<u64>,
    /// IMA ASCII lines from entry `ima_measurement_list_entry` on (PCR 10 in the mask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ima_measurement_list: Option<String>,
    /// The index of the first IMA entry sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ima_measurement_list_entry: Option<u64>,
    /// The UEFI event log, base64 (PCR 0 in the mask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_measurement_list: Option<String>,
}

/// `POST /vX/agents/{uuid}` at the registrar: what an agent registers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// EK certificate, base64 DER as read from NV (absent on TPMs without one).
    #[serde(default)]
    pub ekcert: Option<String>,
    /// EK, base64 TPM2B_PUBLIC.
    #[serde(default)]
    pub ek_tpm: Option<String>,
    /// AK, base64 TPM2B_PUBLIC.
    pub aik_tpm: String,
    /// IAK, base64 TPM2B_PUBLIC (DevID registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_tpm: Option<String>,
    /// IAK certificate, base64 DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_cert: Option<String>,
    /// IDevID key, base64 TPM2B_PUBLIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idevid_tpm: Option<String>,
    /// IDevID certificate, base64 DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idevid_cert: Option<String>,
    /// TPMS_ATTEST of the IAK certifying the AK, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_attest: Option<String>,
    /// The IAK's signature over `iak_attest`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_sign: Option<String>,
    /// The agent's self-signed TLS certificate, PEM (or `"disabled"`).
    #[serde(default)]
    pub mtls_cert: Option<String>,
    /// Where the verifier reaches the agent.
    #[serde(default)]
    pub ip: Option<String>,
    /// The agent's port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// The registrar's reply to a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationResponse {
    /// tpm2-tools credential file (MakeCredential to the EK, bound to the AK name), base64.
    pub blob: String,
}

/// `PUT /vX/agents/{uuid}/activate` at the registrar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// hex(HMAC-SHA384(key = b64(secret), msg = uuid)).
    pub auth_tag: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registration_as_rust_keylime_sends_it() {
        // rust-keylime's body, with its optional DevID fields null.
        let body = json!({
            "ekcert": "MIIB", "ek_tpm": "AAEA", "aik_tpm": "AAEB",
            "iak_tpm": null, "idevid_tpm": null, "iak_attest": null, "iak_sign": null,
            "mtls_cert": "-----BEGIN CERTIFICATE-----\n...", "ip": "127.0.0.1", "port": 9002
        });
        let r: RegistrationRequest = serde_json::from_value(body).unwrap();
        assert_eq!(r.ekcert.as_deref(), Some("MIIB"));
        assert_eq!(r.port, Some(9002));
        assert_eq!(r.iak_tpm, None);
        // Ours omits absent DevID fields and keeps the rest.
        let ours = serde_json::to_value(&r).unwrap();
        assert_eq!(ours.get("iak_tpm"), None);
        assert_eq!(ours["aik_tpm"], "AAEB");
        // A body without aik_tpm is refused.
        assert!(serde_json::from_value::<RegistrationRequest>(json!({"ek_tpm": "AA"})).is_err());
        // DevID registration fields are read.
        let devid = json!({"aik_tpm": "A", "iak_tpm": "B", "iak_cert": "C", "idevid_tpm": "D", "idevid_cert": "E"});
        let r: RegistrationRequest = serde_json::from_value(devid).unwrap();
        assert_eq!((r.iak_cert.as_deref(), r.idevid_cert.as_deref(), r.ekcert), (Some("C"), Some("E"), None));
    }

    #[test]
    fn registrar_replies_and_activation() {
        let r: RegistrationResponse = serde_json::from_value(json!({"blob": "utzA3gAAAAE="})).unwrap();
        assert_eq!(r.blob, "utzA3gAAAAE=");
        let a = serde_json::to_value(ActivateRequest { auth_tag: "ab".into() }).unwrap();
        assert_eq!(a, json!({"auth_tag": "ab"}));
    }

    #[test]
    fn integrity_quote_as_keylime_verifier_reads_it() {
        let body = json!({
            "quote": "rAA:AA:AA", "hash_alg": "sha256", "enc_alg": "rsa2048", "sign_alg": "rsassa",
            "pubkey": null, "boottime": 1700000000u64,
            "ima_measurement_list": "10 abc ima-ng sha256:00 /x\n", "ima_measurement_list_entry": 5,
            "mb_measurement_list": null
        });
        let q: QuoteResponse = serde_json::from_value(body).unwrap();
        assert_eq!(q.ima_measurement_list_entry, Some(5));
        assert_eq!(q.pubkey, None);
        // An identity quote has no log fields at all.
        let id = QuoteResponse {
            quote: "r".into(),
            hash_alg: "sha256".into(),
            enc_alg: "rsa2048".into(),
            sign_alg: "ecdsa".into(),
            pubkey: Some("PEM".into()),
            boottime: Some(1),
            ima_measurement_list: None,
            ima_measurement_list_entry: None,
            mb_measurement_list: None,
        };
        let v = serde_json::to_value(&id).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 6);
        assert_eq!(v["pubkey"], "PEM");
    }

    #[test]
    fn info_shape() {
        let i: AgentInfo = serde_json::from_value(json!({
            "agent_uuid": "d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "tpm_hash_alg": "sha256",
            "tpm_enc_alg": "rsa2048", "tpm_sign_alg": "rsassa", "ak_handle": 2164326416u32
        }))
        .unwrap();
        assert_eq!(i.ak_handle, 0x8101_0010);
    }
}
