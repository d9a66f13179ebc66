//! The revocation message itself: what a verifier says about a node that failed attestation.
//!
//! The shape is Keylime's (its verifier builds it when an agent fails): `type`, `ip`,
//! `agent_id`, `port`, `tpm_policy`, `meta_data`, `event_time`, and, when the failure has an
//! event, `event_id`, `severity_label` and `context`. Keylime puts JSON *text* in `tpm_policy`,
//! `meta_data` and `context` (each is `json.dumps` of an object), so those fields are
//! [`EmbeddedJson`]: a string is kept as the string, and an object some other sender puts there
//! directly is kept as the object. `port` is a number in Keylime's messages; a string of digits is
//! accepted too. Fields Cairn does not know are ignored, so a newer sender can add some.
//!
//! Parsing goes field by field so a refusal names the field that is wrong.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::RevocationError;

/// Keylime's `type` for a node that failed attestation.
pub const REVOCATION_TYPE: &str = "revocation";

/// A field holding JSON that Keylime sends as text inside the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbeddedJson {
    /// JSON text in a string, as Keylime sends it (e.g. `"{\"message\": \"…\"}"`).
    Text(String),
    /// A JSON value placed directly in the message.
    Value(Value),
}

impl EmbeddedJson {
    /// `value` as JSON text, the form Keylime sends.
    pub fn text_of(value: &Value) -> EmbeddedJson {
        EmbeddedJson::Text(value.to_string())
    }

    /// The JSON value: the text parsed, or the value as given. `None` if the text is not JSON.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            EmbeddedJson::Text(t) => serde_json::from_str(t).ok(),
            EmbeddedJson::Value(v) => Some(v.clone()),
        }
    }

    /// The field as text: the string as given, or the value serialized.
    pub fn to_text(&self) -> String {
        match self {
            EmbeddedJson::Text(t) => t.clone(),
            EmbeddedJson::Value(v) => v.to_string(),
        }
    }
}

impl Serialize for EmbeddedJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EmbeddedJson::Text(t) => s.serialize_str(t),
            EmbeddedJson::Value(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for EmbeddedJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => EmbeddedJson::Text(s),
            other => EmbeddedJson::Value(other),
        })
    }
}

/// A revocation message. Serializes to Keylime's field names and order; `None` event fields
/// are left out (as Keylime does for a failure without an event), a `None` policy or metadata is
/// `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevocationMessage {
    /// `type`: [`REVOCATION_TYPE`] for a failed attestation.
    #[serde(rename = "type")]
    pub kind: String,
    /// The revoked agent's IP address (as registered; text).
    pub ip: String,
    /// The revoked agent's uuid.
    pub agent_id: String,
    /// The revoked agent's port.
    pub port: u16,
    /// The agent's TPM policy (Keylime: JSON text).
    pub tpm_policy: Option<EmbeddedJson>,
    /// The agent's metadata (Keylime: JSON text).
    pub meta_data: Option<EmbeddedJson>,
    /// When the verifier decided, as Keylime writes it (`time.asctime()`, e.g.
    /// `Mon Aug  3 12:00:00 2026`); text, not interpreted.
    pub event_time: String,
    /// The failure's event id, e.g. `ima.validation.ima-ng.not_in_allowlist`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The failure's severity label, e.g. `emergency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_label: Option<String>,
    /// The failure's context (Keylime: JSON text of an object, e.g. `{"message": "…"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<EmbeddedJson>,
}

impl RevocationMessage {
    /// Parses the JSON text of a message (the `msg` of a signed revocation).
    pub fn from_json(text: &str) -> Result<RevocationMessage, RevocationError> {
        let value: Value = serde_json::from_str(text).map_err(|e| malformed("msg", format!("not JSON ({e})")))?;
        match value {
            Value::Object(map) => RevocationMessage::from_map(map),
            other => Err(malformed("msg", format!("a JSON {} where an object is needed", kind_of(&other)))),
        }
    }

    /// From a JSON object, field by field.
    pub fn from_map(mut map: Map<String, Value>) -> Result<RevocationMessage, RevocationError> {
        Ok(RevocationMessage {
            kind: required(&mut map, "type")?,
            ip: required(&mut map, "ip")?,
            agent_id: required(&mut map, "agent_id")?,
            port: port(map.remove("port"))?,
            tpm_policy: optional(&mut map, "tpm_policy")?,
            meta_data: optional(&mut map, "meta_data")?,
            event_time: required(&mut map, "event_time")?,
            event_id: optional(&mut map, "event_id")?,
            severity_label: optional(&mut map, "severity_label")?,
            context: optional(&mut map, "context")?,
        })
    }

    /// The message as compact JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and JSON values always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for RevocationMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::deserialize(d)?;
        RevocationMessage::from_map(map).map_err(serde::de::Error::custom)
    }
}

fn malformed(field: &str, detail: impl Into<String>) -> RevocationError {
    RevocationError::MalformedMessage { field: field.to_owned(), detail: detail.into() }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn typed<T: DeserializeOwned>(field: &str, v: Value) -> Result<T, RevocationError> {
    let found = kind_of(&v);
    serde_json::from_value(v).map_err(|e| malformed(field, format!("unexpected {found} ({e})")))
}

fn required<T: DeserializeOwned>(map: &mut Map<String, Value>, field: &str) -> Result<T, RevocationError> {
    match map.remove(field) {
        None | Some(Value::Null) => Err(malformed(field, "missing")),
        Some(v) => typed(field, v),
    }
}

fn optional<T: DeserializeOwned>(map: &mut Map<String, Value>, field: &str) -> Result<Option<T>, RevocationError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => typed(field, v).map(Some),
    }
}

/// A port: a number, or a string of digits, from 0 to 65535.
fn port(v: Option<Value>) -> Result<u16, RevocationError> {
    let out_of_range = |shown: &dyn std::fmt::Display| malformed("port", format!("{shown} is not a port number (0 to 65535)"));
    match v {
        None | Some(Value::Null) => Err(malformed("port", "missing")),
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| out_of_range(&n)),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(out_of_range(&format!("{s:?}")));
            }
            t.parse::<u16>().map_err(|_| out_of_range(&format!("{s:?}")))
        }
        Some(other) => Err(malformed("port", format!("unexpected {} (a number is needed)", kind_of(&other)))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A message as Keylime's verifier builds it (Python `json.dumps`, so ", " and ": ").
    const KEYLIME_MSG: &str = r#"{"type": "revocation", "ip": "127.0.0.1", "agent_id": "d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "port": 9002, "tpm_policy": "{\"mask\": \"0x400\"}", "meta_data": "{}", "event_time": "Mon Aug  3 12:00:00 2026", "event_id": "ima.validation.ima-ng.not_in_allowlist", "severity_label": "emergency", "context": "{\"message\": \"File not found in allowlist: /usr/bin/evil\"}"}"#;

    #[test]
    fn keylime_message_parses_and_keeps_embedded_text() {
        let m = RevocationMessage::from_json(KEYLIME_MSG).unwrap();
        assert_eq!(m.kind, REVOCATION_TYPE);
        assert_eq!((m.ip.as_str(), m.port), ("127.0.0.1", 9002));
        assert_eq!(m.agent_id, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
        assert_eq!(m.severity_label.as_deref(), Some("emergency"));
        let ctx = m.context.as_ref().unwrap();
        assert!(matches!(ctx, EmbeddedJson::Text(_)));
        assert_eq!(ctx.to_value().unwrap()["message"], "File not found in allowlist: /usr/bin/evil");
        assert_eq!(m.tpm_policy.unwrap().to_value().unwrap()["mask"], "0x400");
    }

    #[test]
    fn serializes_in_keylime_order_and_round_trips() {
        let m = RevocationMessage::from_json(KEYLIME_MSG).unwrap();
        let text = m.to_json();
        assert!(text.starts_with(r#"{"type":"revocation","ip":"127.0.0.1","agent_id":"#), "{text}");
        assert_eq!(RevocationMessage::from_json(&text).unwrap(), m);
        // Without an event the event fields are absent, not null.
        let bare = RevocationMessage { event_id: None, severity_label: None, context: None, ..m };
        let v: Value = serde_json::from_str(&bare.to_json()).unwrap();
        assert!(v.get("event_id").is_none() && v.get("context").is_none());
        assert_eq!(serde_json::from_value::<RevocationMessage>(v).unwrap(), bare);
    }

    #[test]
    fn tolerant_where_senders_differ() {
        let m = RevocationMessage::from_json(
            r#"{"type":"revocation","ip":"10.0.0.1","agent_id":"a","port":"9002","tpm_policy":null,
                "event_time":"t","context":{"message":"m"},"added_later":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(m.port, 9002);
        assert_eq!(m.tpm_policy, None);
        assert_eq!(m.meta_data, None);
        assert_eq!(m.context, Some(EmbeddedJson::Value(json!({"message": "m"}))));
        assert_eq!(m.context.unwrap().to_text(), r#"{"message":"m"}"#);
    }

    #[test]
    fn refusals_name_the_field() {
        let base = || serde_json::from_str::<Map<String, Value>>(KEYLIME_MSG).unwrap();
        for (field, value, expect) in [
            ("agent_id", None, "agent_id: missing"),
            ("agent_id", Some(json!(5)), "agent_id: unexpected number"),
            ("type", Some(json!(null)), "type: missing"),
            ("port", Some(json!(70000)), "port: 70000 is not a port"),
            ("port", Some(json!(-1)), "port: -1 is not a port"),
            ("port", Some(json!("9x")), "port: \"9x\" is not a port"),
            ("port", Some(json!([1])), "port: unexpected array"),
            ("event_time", Some(json!({})), "event_time: unexpected object"),
            ("severity_label", Some(json!(true)), "severity_label: unexpected boolean"),
        ] {
            let mut map = base();
            match value {
                Some(v) => map.insert(field.into(), v),
                None => map.remove(field),
            };
            let e = RevocationMessage::from_map(map).unwrap_err().to_string();
            assert!(e.contains(expect), "{field}: {e}");
        }
        for (text, expect) in [("[1]", "msg: a JSON array"), ("{", "msg: not JSON"), ("", "msg: not JSON")] {
            let e = RevocationMessage::from_json(text).unwrap_err().to_string();
            assert!(e.contains(expect), "{text:?}: {e}");
        }
    }
}
