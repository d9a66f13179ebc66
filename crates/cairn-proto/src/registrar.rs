//! Registrar API bodies (Keylime registrar REST 2.x): registration, activation, admin.
//!
//! Field names and optionality follow what Keylime's Python agent and rust-keylime actually send:
//! every field but `ek_tpm` and `aik_tpm` may be absent or `null`, `port` arrives as a number or
//! a numeric string, and fields this registrar does not use (IAK/IDevID) are accepted and kept
//! as sent. Binary values stay base64 text here; the registrar decodes and checks them.

use serde::{Deserialize, Deserializer, Serialize};

/// `POST /vX/agents/{uuid}` request body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// EK certificate, base64 DER as read from NV (may carry NV padding); `null` without one.
    #[serde(default)]
    pub ekcert: Option<String>,
    /// EK public area, base64 TPM2B_PUBLIC.
    pub ek_tpm: String,
    /// AK public area, base64 TPM2B_PUBLIC.
    pub aik_tpm: String,
    /// The agent's HTTPS server certificate (PEM), or absent/`"disabled"`.
    #[serde(default)]
    pub mtls_cert: Option<String>,
    /// Contact address of the agent.
    #[serde(default)]
    pub ip: Option<String>,
    /// Contact port of the agent (a number, or a numeric string as older agents send).
    #[serde(default, deserialize_with = "port_number_or_string")]
    pub port: Option<u16>,
    /// IAK public area (base64 TPM2B_PUBLIC), DevID-capable agents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_tpm: Option<String>,
    /// TPM2_Certify attestation of the AK by the IAK (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_attest: Option<String>,
    /// Signature over `iak_attest` (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_sign: Option<String>,
    /// IDevID public area (base64 TPM2B_PUBLIC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idevid_tpm: Option<String>,
    /// IAK certificate (base64 DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iak_cert: Option<String>,
    /// IDevID certificate (base64 DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idevid_cert: Option<String>,
    /// Cairn extension: what the node is, [`KIND_HOST`] (the default when absent) or [`KIND_VM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cairn_kind: Option<String>,
    /// Cairn extension: the host's vTPM CA, certified by this registration's AK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cairn_vtpm_ca: Option<VtpmCaEvidence>,
}

/// `cairn_kind` of a physical host (or any node whose EK is a TPM vendor's).
pub const KIND_HOST: &str = "host";
/// `cairn_kind` of a VM on a vTPM issued by an enrolled host's vTPM CA.
pub const KIND_VM: &str = "vm";

/// A host's vTPM CA and the TPM2_Certify proof that its key lives in the host TPM (all standard
/// base64).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VtpmCaEvidence {
    /// The CA certificate, DER.
    pub ca_cert: String,
    /// The CA key's TPM2B_PUBLIC.
    pub ca_public: String,
    /// TPMS_ATTEST of TPM2_Certify(CA key, AK) with qualifyingData = SHA-256(ca_cert).
    pub certify_attest: String,
    /// TPMT_SIGNATURE by the AK over `certify_attest`.
    pub certify_signature: String,
}

/// `POST /vX/agents/{uuid}` response `results`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// tpm2-tools credential file (MakeCredential output), base64.
    pub blob: String,
}

/// `PUT /vX/agents/{uuid}/activate` request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// hex(HMAC-SHA384(key = base64(secret), message = uuid)).
    pub auth_tag: String,
}

/// `GET /vX/agents/` response `results`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// Ids of the active (activated) agents, sorted.
    pub uuids: Vec<String>,
}

/// `GET /vX/agents/{uuid}` response `results`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// AK public area, base64 TPM2B_PUBLIC.
    pub aik_tpm: String,
    /// EK public area, base64 TPM2B_PUBLIC.
    pub ek_tpm: String,
    /// EK certificate, base64 DER, or `null`.
    pub ekcert: Option<String>,
    /// The agent's HTTPS certificate (PEM), or `null`.
    pub mtls_cert: Option<String>,
    /// Contact address, or `null`.
    pub ip: Option<String>,
    /// Contact port, or `null`.
    #[serde(default, deserialize_with = "port_number_or_string")]
    pub port: Option<u16>,
    /// How many times this agent has registered.
    pub regcount: u32,
    /// Cairn extension: `host` or `vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cairn_kind: Option<String>,
    /// Cairn extension: for a VM, the enrolled host whose vTPM CA issued its EK certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_agent_id: Option<String>,
}

/// Accepts `8890`, `"8890"` or `null` (Keylime's Python code carries ports as strings).
fn port_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(d)? {
        None => Ok(None),
        Some(Port::Number(n)) => Ok(Some(n)),
        Some(Port::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(Port::Text(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("port {s:?} is not a number from 0 to 65535"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The body rust-keylime's registrar client sends (IAK/IDevID disabled), shortened values.
    const RUST_KEYLIME: &str = r#"{"ekcert":"MIIEGTCC","ek_tpm":"AToAAQAL","aik_tpm":"ARgAAQAL","mtls_cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","ip":"127.0.0.1","port":9002}"#;

    #[test]
    fn reads_rust_keylime_registration() {
        let r: RegisterRequest = serde_json::from_str(RUST_KEYLIME).unwrap();
        assert_eq!(r.ek_tpm, "AToAAQAL");
        assert_eq!(r.port, Some(9002));
        assert_eq!(r.ip.as_deref(), Some("127.0.0.1"));
        assert!(r.iak_tpm.is_none());
    }

    #[test]
    fn reads_python_style_registration_with_idevid_fields() {
        let body = r#"{"ekcert":null,"ek_tpm":"A","aik_tpm":"B","mtls_cert":"disabled","ip":null,"port":"9002",
            "iak_tpm":"C","iak_attest":"D","iak_sign":"E","idevid_tpm":"F","iak_cert":"G","idevid_cert":"H","unknown":1}"#;
        let r: RegisterRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.port, Some(9002));
        assert_eq!(r.ekcert, None);
        assert_eq!(r.idevid_cert.as_deref(), Some("H"));
        assert!(r.cairn_kind.is_none() && r.cairn_vtpm_ca.is_none());
        let cairn = r#"{"ek_tpm":"A","aik_tpm":"B","cairn_kind":"host","cairn_vtpm_ca":{"ca_cert":"C","ca_public":"P","certify_attest":"T","certify_signature":"S"}}"#;
        let c: RegisterRequest = serde_json::from_str(cairn).unwrap();
        assert_eq!(c.cairn_kind.as_deref(), Some(KIND_HOST));
        assert_eq!(c.cairn_vtpm_ca.unwrap().certify_signature, "S");
        let minimal: RegisterRequest = serde_json::from_str(r#"{"ek_tpm":"A","aik_tpm":"B"}"#).unwrap();
        assert_eq!(minimal.port, None);
    }

    #[test]
    fn refuses_missing_keys_and_bad_ports() {
        let e = serde_json::from_str::<RegisterRequest>(r#"{"ek_tpm":"A"}"#).unwrap_err();
        assert!(e.to_string().contains("aik_tpm"), "{e}");
        let e = serde_json::from_str::<RegisterRequest>(r#"{"ek_tpm":"A","aik_tpm":"B","port":"70000"}"#).unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        assert!(serde_json::from_str::<RegisterRequest>(r#"{"ek_tpm":"A","aik_tpm":"B","port":-1}"#).is_err());
    }

    #[test]
    fn admin_record_matches_keylime_shape() {
        let rec = AgentRecord {
            aik_tpm: "A".into(),
            ek_tpm: "E".into(),
            ekcert: None,
            mtls_cert: None,
            ip: Some("10.0.0.1".into()),
            port: Some(9002),
            regcount: 1,
            cairn_kind: None,
            host_agent_id: None,
        };
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"aik_tpm":"A","ek_tpm":"E","ekcert":null,"mtls_cert":null,"ip":"10.0.0.1","port":9002,"regcount":1})
        );
        let back: AgentRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, rec);
        let list: AgentList = serde_json::from_str(r#"{"uuids":["a","b"]}"#).unwrap();
        assert_eq!(list.uuids, ["a", "b"]);
        let vm = AgentRecord { cairn_kind: Some(KIND_VM.into()), host_agent_id: Some("h".into()), ..rec };
        let v = serde_json::to_value(&vm).unwrap();
        assert_eq!((&v["cairn_kind"], &v["host_agent_id"]), (&serde_json::json!("vm"), &serde_json::json!("h")));
        let act: ActivateRequest = serde_json::from_str(r#"{"auth_tag":"00ff"}"#).unwrap();
        assert_eq!(act.auth_tag, "00ff");
    }
}
