//! Verifier bodies: Keylime's tenant-facing API 2.x (`/vX/agents/{uuid}`, named policies) and
//! Cairn's read API (`/cairn/v1/…`). Keylime sends several values as JSON *strings* holding JSON
//! (`tpm_policy`, `metadata`) and the runtime policy base64-encoded; those shapes are kept.

use serde::{Deserialize, Deserializer, Serialize};

/// `POST /vX/agents/{uuid}`: add a node (Keylime's tenant sends this).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddAgentRequest {
    /// The agent's contact address.
    pub cloudagent_ip: String,
    /// Its port (Keylime sends a number or a string).
    #[serde(deserialize_with = "port_from_any")]
    pub cloudagent_port: u16,
    /// The AK, base64 TPM2B_PUBLIC (as the registrar's `aik_tpm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ak_tpm: Option<String>,
    /// The agent's HTTPS certificate, PEM (as the registrar's `mtls_cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_cert: Option<String>,
    /// PCR policy: a JSON string `{"<pcr>": [hex…], "mask": "0x…"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_policy: Option<String>,
    /// Named runtime policy to use (or the name to save `runtime_policy` under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy_name: Option<String>,
    /// Runtime policy JSON, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy: Option<String>,
    /// Detached signature of the runtime policy (not supported: refused when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy_sig: Option<String>,
    /// Key of that signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy_key: Option<String>,
    /// Measured-boot reference state, JSON text (`"null"` = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_refstate: Option<String>,
    /// The same under its newer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_policy: Option<String>,
    /// Named measured-boot policy to use (or the name to save the given one under).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_policy_name: Option<String>,
    /// IMA signature keys, a JSON string (merged into the runtime policy's keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ima_sign_verification_keys: Option<String>,
    /// Free metadata, a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Keylime's per-agent revocation key; Cairn signs with the verifier's own key and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_key: Option<String>,
    /// Accepted quote hash algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_tpm_hash_algs: Option<Vec<String>>,
    /// Accepted encryption algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_tpm_encryption_algs: Option<Vec<String>>,
    /// Accepted signing algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_tpm_signing_algs: Option<Vec<String>>,
    /// The agent's API version (`"2.5"`, no `v`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_version: Option<String>,
    /// The bootstrap key half V, base64 (issue for key release; stored, not yet released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Cairn: the node is a host in host mode; its agent extends this PCR with the hypervisor
    /// measurement list, which the verifier fetches, replays and judges every round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hvm_pcr: Option<u8>,
    /// Cairn: the host's name as schedulers know it (Nova's compute host, a Kubernetes node name),
    /// reported by placement queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Cairn: the node is a VM running on this host node (attested by the same verifier); it is
    /// trusted only while its host is attested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_agent_id: Option<String>,
    /// Cairn, with `host_agent_id`: the VM's policy for its host-side evidence (a JSON string, the
    /// `cairn_core::vmbatch::VmPolicy` format); the host's VM batch is then fetched and judged every
    /// host round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_policy: Option<String>,
    /// Cairn, with `vm_policy`: the VM's id in its host's batch (QEMU's `-uuid`); default: the node's
    /// agent id, when that is a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_uuid: Option<String>,
}

fn port_from_any<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Num(u16),
        Text(String),
    }
    match Port::deserialize(d)? {
        Port::Num(n) => Ok(n),
        Port::Text(s) => s.trim().parse().map_err(|_| serde::de::Error::custom(format!("port {s:?} is not a number 0–65535"))),
    }
}

/// One failed check, as the verifier reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// Stable name of the check (`nonce_mismatch`, `ima_entry`, `unreachable`, …).
    pub check: String,
    /// What was compared and found wrong (entry, path, expected and actual).
    pub message: String,
}

/// `GET /vX/agents/{uuid}`: Keylime's fields, then Cairn's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Keylime operational state (3 GET_QUOTE, 4 GET_QUOTE_RETRY, 7 FAILED, 9 INVALID_QUOTE, 10 TENANT_FAILED).
    pub operational_state: i64,
    /// PASS, FAIL or PENDING.
    pub attestation_status: String,
    /// Contact address.
    pub ip: String,
    /// Contact port.
    pub port: u16,
    /// The PCR policy (JSON string).
    pub tpm_policy: String,
    /// Metadata (JSON string).
    pub meta_data: String,
    /// 1 when a measured-boot policy applies.
    pub has_mb_refstate: u8,
    /// 1 when a runtime policy applies.
    pub has_runtime_policy: u8,
    /// Accepted hash algorithms.
    pub accept_tpm_hash_algs: Vec<String>,
    /// Accepted encryption algorithms.
    pub accept_tpm_encryption_algs: Vec<String>,
    /// Accepted signing algorithms.
    pub accept_tpm_signing_algs: Vec<String>,
    /// The quote hash in use.
    pub hash_alg: String,
    /// The AK's key type.
    pub enc_alg: String,
    /// The AK's signing scheme.
    pub sign_alg: String,
    /// This verifier's id.
    pub verifier_id: String,
    /// The address this verifier serves the tenant API on (Keylime's tenant sends `delete` and
    /// `reactivate` there).
    pub verifier_ip: String,
    /// Its port.
    pub verifier_port: u16,
    /// Id of the last revocation sent for this node.
    pub last_event_id: Option<String>,
    /// Rounds that passed.
    pub attestation_count: u64,
    /// Unix seconds of the last quote received (0 = none).
    pub last_received_quote: i64,
    /// Unix seconds of the last passing round (0 = none).
    pub last_successful_attestation: i64,
    /// Cairn: the node id.
    pub agent_id: String,
    /// Cairn: `pending`, `attested`, `unreachable`, `failed` or `stopped`.
    pub cairn_state: String,
    /// Cairn: why the node is failed or unreachable (empty otherwise).
    pub failures: Vec<FailureView>,
    /// Cairn: the named runtime policy in use.
    pub runtime_policy_name: Option<String>,
    /// Cairn: the named measured-boot policy in use.
    pub mb_policy_name: Option<String>,
    /// Cairn: the hvm PCR when the node is attested in host mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hvm_pcr: Option<u8>,
    /// Cairn: the host's name for schedulers, when the tenant gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Cairn: for a VM, the host node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_agent_id: Option<String>,
    /// Cairn: for a VM with a VM policy, its id in the host's VM batch (QEMU's `-uuid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_uuid: Option<String>,
    /// Cairn: for a VM with a VM policy, the last judgement of its host-side evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_batch: Option<VmBatchView>,
    /// Cairn: the integrity level of the last judged round (`boot_untrusted` … `ima_all_ok`); absent
    /// when the verifier has no reference database or has not judged the node yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_level: Option<String>,
    /// Cairn: why the node is below `ima_all_ok`, worst first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrity_level_reasons: Vec<serde_json::Value>,
}

/// The last judgement of a VM's host-side evidence (its leaf in the host's VM batch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmBatchView {
    /// The host node whose batch judged it.
    pub host: String,
    /// Unix seconds of that judgement.
    pub checked_at: i64,
    /// `pass` or `fail`.
    pub outcome: String,
    /// Why it failed (empty on a pass).
    pub failures: Vec<FailureView>,
}

/// One host that qualifies for a placement query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementHost {
    /// The node id.
    pub agent_id: String,
    /// The host's name for schedulers (the tenant's `host_name`, else the node's address).
    pub host_name: String,
    /// The node's address.
    pub ip: String,
    /// Its integrity level now.
    pub integrity_level: String,
    /// Unix seconds of its last passing round.
    pub last_successful_attestation: i64,
}

/// `GET /cairn/v1/placement?trusted_host=L|min_trusted_host=L` results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The exact level asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_host: Option<String>,
    /// The lowest level asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_trusted_host: Option<String>,
    /// Hosts that qualify now, by agent id.
    pub hosts: Vec<PlacementHost>,
    /// Every level, worst first (what the two parameters accept).
    pub levels: Vec<String>,
}

/// `GET /vX/agents/`: Keylime lists uuids; Cairn adds each node's view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// Node ids (Keylime's shape: a list of lists of one id).
    pub uuids: Vec<Vec<String>>,
    /// Cairn: every node's view.
    pub agents: Vec<AgentView>,
}

/// `POST|PUT /vX/allowlists/{name}` (runtime policies) body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimePolicyRequest {
    /// The policy JSON, base64.
    #[serde(default)]
    pub runtime_policy: Option<String>,
    /// Detached signature (not supported: refused when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy_sig: Option<String>,
    /// Key of that signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_policy_key: Option<String>,
    /// A PCR policy stored beside it (kept for Keylime clients; not applied by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_policy: Option<String>,
}

/// `POST|PUT /vX/mbpolicies/{name}` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbPolicyRequest {
    /// The reference state JSON text.
    #[serde(default)]
    pub mb_policy: Option<String>,
    /// The same under its older name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_refstate: Option<String>,
}

/// One event of a node's history (`GET /cairn/v1/nodes/{uuid}/history`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryView {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `added`, `pass`, `fail`, `unreachable`, `reachable`, `reactivated`, `stopped`, `revocation`.
    pub kind: String,
    /// Details.
    pub detail: serde_json::Value,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keylime_tenant_body_parses_with_string_port_and_unknown_fields_refused_nowhere() {
        let body = r#"{"v": null, "cloudagent_ip": "10.0.0.5", "cloudagent_port": "9002", "tpm_policy": "{\"mask\": \"0x0\"}",
            "runtime_policy_name": null, "runtime_policy": "", "mb_refstate": "null", "metadata": "{}",
            "accept_tpm_hash_algs": ["sha256"], "supported_version": "2.1", "extra": 1}"#;
        let r: AddAgentRequest = serde_json::from_str(body).unwrap();
        assert_eq!((r.cloudagent_ip.as_str(), r.cloudagent_port), ("10.0.0.5", 9002));
        assert_eq!(r.runtime_policy.as_deref(), Some(""));
        let bad = r#"{"cloudagent_ip": "x", "cloudagent_port": "ninety"}"#;
        assert!(serde_json::from_str::<AddAgentRequest>(bad).unwrap_err().to_string().contains("ninety"));
    }
}
