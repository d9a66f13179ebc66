//! Agent API bodies (Keylime agent REST 2.x): info, keys, quotes. What an agent sends the
//! registrar is in [`crate::registrar`].
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

/// `POST /vX/keys/ukey`: the tenant's half U of the bootstrap key, with the auth tag and the
/// payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UkeyRequest {
    /// U, RSA-OAEP (SHA-1) encrypted to the agent's NK, base64.
    pub encrypted_key: String,
    /// hex(HMAC-SHA384(K, agent uuid)).
    pub auth_tag: String,
    /// base64(IV(16) ‖ AES-256-GCM(K, payload) ‖ tag(16)); absent when there is no payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// `POST /vX/keys/vkey`: the verifier's half V of the bootstrap key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VkeyRequest {
    /// V, RSA-OAEP (SHA-1) encrypted to the agent's NK, base64.
    pub encrypted_key: String,
}

/// `GET /vX/keys/verify?challenge=C` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVerifyResponse {
    /// hex(HMAC-SHA384(K, C)).
    pub hmac: String,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn key_bodies_as_keylime_tenant_and_verifier_send_them() {
        // The tenant sends payload only when it has one; the verifier sends V alone.
        let u: UkeyRequest = serde_json::from_value(json!({"encrypted_key": "RU5D", "auth_tag": "ab"})).unwrap();
        assert_eq!(u.payload, None);
        assert_eq!(serde_json::to_value(&u).unwrap(), json!({"encrypted_key": "RU5D", "auth_tag": "ab"}));
        let u: UkeyRequest =
            serde_json::from_value(json!({"encrypted_key": "RU5D", "auth_tag": "ab", "payload": "UA=="})).unwrap();
        assert_eq!(u.payload.as_deref(), Some("UA=="));
        let v: VkeyRequest = serde_json::from_value(json!({"encrypted_key": "Vg=="})).unwrap();
        assert_eq!(v.encrypted_key, "Vg==");
        assert_eq!(serde_json::to_value(KeyVerifyResponse { hmac: "00".into() }).unwrap(), json!({"hmac": "00"}));
    }
}

/// `GET /cairn/v1/hvm?from=N` (Cairn extension, host mode): the hypervisor measurement list from
/// entry `from` on (format: `cairn_core::hvm`). When `from` is past the end (the list restarted
/// after a reboot), the whole list is sent with `from = 0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HvmListResponse {
    /// The PCR the agent extends.
    pub pcr: u8,
    /// The banks it extends (`sha256`, …).
    pub banks: Vec<String>,
    /// Index of the first entry in `list`.
    pub from: u64,
    /// Entries in the whole list.
    pub total: u64,
    /// The lines, each ended by a newline.
    pub list: String,
}

/// One VM of a batch: its evidence leaf and inclusion proof (`cairn_core::vmbatch` encodings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmBatchItem {
    /// The VM id (UUID).
    pub vm: String,
    /// The encoded leaf, base64.
    pub leaf: String,
    /// The encoded inclusion proof, base64.
    pub proof: String,
}

/// `GET /cairn/v1/vms/batch?nonce=N&mask=M` (Cairn extension, host mode): every VM on the host as an
/// evidence leaf under ONE quote whose qualifying data is SHA-256(nonce ‖ root) (docs/vm-evidence.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmBatchResponse {
    /// Keylime's quote string `r<attest>:<signature>:<pcrs>` (the AK's hash bank, `mask` plus PCR 16).
    pub quote: String,
    /// The Merkle root, hex.
    pub root: String,
    /// Leaves in the tree.
    pub count: u32,
    /// The VMs, in tree order.
    pub vms: Vec<VmBatchItem>,
    /// QEMU processes left out, with the reason (e.g. no `-uuid`).
    #[serde(default)]
    pub skipped: Vec<String>,
}
