//! Keylime's response envelope: `{"code": 200, "status": "Success", "results": {...}}`.

use serde::{Deserialize, Serialize};

/// Every Keylime JSON response is wrapped in this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// HTTP status code, repeated.
    pub code: u16,
    /// "Success" or a human-readable reason.
    pub status: String,
    /// The payload (an empty object when there is none).
    pub results: T,
}

impl<T> Envelope<T> {
    /// A 200 "Success" envelope.
    pub fn ok(results: T) -> Self {
        Envelope { code: 200, status: "Success".into(), results }
    }
}

impl Envelope<serde_json::Value> {
    /// An error envelope with an empty `results` object.
    pub fn error(code: u16, status: impl Into<String>) -> Self {
        Envelope { code, status: status.into(), results: serde_json::json!({}) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_keylime() {
        let e = Envelope::ok(serde_json::json!({"blob": "x"}));
        assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!({"code": 200, "status": "Success", "results": {"blob": "x"}}));
        let e: Envelope<serde_json::Value> = serde_json::from_str(r#"{"code":400,"status":"bad","results":{}}"#).unwrap();
        assert_eq!(e.code, 400);
    }
}
