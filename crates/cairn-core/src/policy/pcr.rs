//! PCR policy: Keylime's `tpm_policy`, `{"<pcr>": ["hex", …], "mask": "0x…"}`.
//!
//! Each listed PCR must hold one of its listed values in the bank being judged. A list may mix
//! values of several banks (Keylime writes SHA-1 and SHA-256 values side by side); only values of
//! the judged bank's length are candidates, so a PCR whose list has none for that bank fails. The
//! mask says which PCRs the verifier asks the agent to quote; it is widened to cover every listed
//! PCR, because a PCR that is judged must be quoted. PCRs in the mask with no list are quoted but
//! not judged here (a measured-boot or IMA policy judges them).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::alg::{Digest, HashAlg};
use crate::error::ParseError;
use crate::eventlog::ReplayedPcrs;
use crate::pcr::{PcrIndex, PcrValues};

/// A parsed `tpm_policy`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrPolicy {
    mask: u32,
    allowed: BTreeMap<PcrIndex, Vec<Vec<u8>>>,
}

/// Why a PCR failed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcrFailure {
    /// The PCR is listed but the quote did not include it in this bank.
    NotQuoted {
        /// Bank judged.
        bank: HashAlg,
        /// PCR.
        pcr: PcrIndex,
    },
    /// The PCR holds a value the policy does not list.
    Mismatch {
        /// Bank judged.
        bank: HashAlg,
        /// PCR.
        pcr: PcrIndex,
        /// Value found.
        actual: Digest,
        /// Values allowed for this bank (hex).
        expected: Vec<String>,
    },
}

impl fmt::Display for PcrFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcrFailure::NotQuoted { bank, pcr } => write!(f, "PCR {bank}:{pcr} is in the policy but was not quoted"),
            PcrFailure::Mismatch { bank, pcr, actual, expected } if expected.is_empty() => {
                write!(f, "PCR {bank}:{pcr} is {actual}; the policy lists no {bank} value for it")
            }
            PcrFailure::Mismatch { bank, pcr, actual, expected } => {
                write!(f, "PCR {bank}:{pcr} is {actual}, expected one of [{}]", expected.join(", "))
            }
        }
    }
}

fn bad(detail: impl Into<String>) -> ParseError {
    ParseError::text("tpm_policy", detail)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, ParseError> {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    hex::decode(t).map_err(|e| bad(format!("{s:?} is not hex: {e}")))
}

impl PcrPolicy {
    /// An empty policy (judges nothing, quotes nothing).
    pub fn new() -> Self {
        PcrPolicy::default()
    }

    /// Parses the JSON text of a `tpm_policy`.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        Self::from_value(&v)
    }

    /// Reads a `tpm_policy` object. Values may be a list of hex strings or a single string.
    pub fn from_value(v: &Value) -> Result<Self, ParseError> {
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let mut p = PcrPolicy::new();
        for (k, val) in obj {
            if k == "mask" {
                let s = val.as_str().ok_or_else(|| bad("mask is not a string"))?;
                let t = s.trim().trim_start_matches("0x").trim_start_matches("0X");
                p.mask |= u32::from_str_radix(if t.is_empty() { "0" } else { t }, 16)
                    .map_err(|e| bad(format!("mask {s:?}: {e}")))?;
                continue;
            }
            let pcr: PcrIndex = k.parse().map_err(|_| bad(format!("key {k:?} is neither \"mask\" nor a PCR number")))?;
            let list = match val {
                Value::String(s) => vec![parse_hex(s)?],
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().ok_or_else(|| bad(format!("PCR {pcr}: a value is not a string"))).and_then(parse_hex))
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad(format!("PCR {pcr}: values are not a list of hex strings"))),
            };
            p.allow(pcr, list);
        }
        Ok(p)
    }

    /// Adds allowed values for `pcr` (and the PCR to the mask).
    pub fn allow(&mut self, pcr: PcrIndex, values: impl IntoIterator<Item = Vec<u8>>) {
        self.mask |= pcr.bit();
        self.allowed.entry(pcr).or_default().extend(values);
    }

    /// A policy pinning the PCRs in `mask` of bank `alg` to the values a replayed log gives.
    pub fn from_replay(pcrs: &ReplayedPcrs, alg: HashAlg, mask: u32) -> Option<Self> {
        let values = pcrs.pcr_values(alg, mask)?;
        let mut p = PcrPolicy::new();
        for (_, pcr, d) in values.iter() {
            p.allow(pcr, [d.as_bytes().to_vec()]);
        }
        Some(p)
    }

    /// PCRs to quote: the mask widened by every listed PCR.
    pub fn mask(&self) -> u32 {
        self.allowed.keys().fold(self.mask, |m, p| m | p.bit())
    }

    /// The PCRs the policy judges.
    pub fn judged(&self) -> impl Iterator<Item = PcrIndex> + '_ {
        self.allowed.keys().copied()
    }

    /// Judges bank `bank` of `values`; every failing PCR is reported.
    pub fn evaluate(&self, bank: HashAlg, values: &PcrValues) -> Result<(), Vec<PcrFailure>> {
        let mut failures = Vec::new();
        for (pcr, allowed) in &self.allowed {
            let Some(actual) = values.get(bank, *pcr) else {
                failures.push(PcrFailure::NotQuoted { bank, pcr: *pcr });
                continue;
            };
            let mut candidates = allowed.iter().filter(|a| a.len() == bank.len());
            if !candidates.any(|a| a.as_slice() == actual.as_bytes()) {
                let expected = allowed.iter().filter(|a| a.len() == bank.len()).map(hex::encode).collect();
                failures.push(PcrFailure::Mismatch { bank, pcr: *pcr, actual: *actual, expected });
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// The policy in Keylime's JSON form.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (pcr, vals) in &self.allowed {
            m.insert(pcr.to_string(), Value::Array(vals.iter().map(|v| Value::String(hex::encode(v))).collect()));
        }
        m.insert("mask".into(), Value::String(format!("{:#x}", self.mask())));
        Value::Object(m)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pcr::PcrSelection;

    fn values(pcrs: &[(u8, Digest)]) -> PcrValues {
        let sel: PcrSelection =
            format!("sha256:{}", pcrs.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>().join(",")).parse().unwrap();
        PcrValues::new(sel, pcrs.iter().map(|(_, d)| *d).collect()).unwrap()
    }

    #[test]
    fn listed_value_passes_and_other_value_fails_with_details() {
        let good = HashAlg::Sha256.hash(b"good");
        let policy = PcrPolicy::from_json(&format!(
            r#"{{"15": ["{}", "{}"], "mask": "0x8000"}}"#,
            "00".repeat(20),
            good.to_hex()
        ))
        .unwrap();
        assert_eq!(policy.mask(), 0x8000);
        assert!(policy.evaluate(HashAlg::Sha256, &values(&[(15, good)])).is_ok());
        let bad = HashAlg::Sha256.hash(b"bad");
        let f = policy.evaluate(HashAlg::Sha256, &values(&[(15, bad)])).unwrap_err();
        assert_eq!(f.len(), 1);
        let msg = f[0].to_string();
        assert!(msg.contains("sha256:15") && msg.contains(&bad.to_hex()) && msg.contains(&good.to_hex()), "{msg}");
        assert!(!msg.contains(&"00".repeat(20)), "the SHA-1 value is not a sha256 candidate: {msg}");
    }

    #[test]
    fn unquoted_pcr_fails_and_mask_covers_listed_pcrs() {
        let policy = PcrPolicy::from_json(r#"{"7": "0x00", "mask": "0x1"}"#).unwrap();
        assert_eq!(policy.mask(), 0x81);
        let f = policy.evaluate(HashAlg::Sha256, &values(&[(0, HashAlg::Sha256.zero())])).unwrap_err();
        assert!(matches!(f[0], PcrFailure::NotQuoted { .. }));
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [r#"[]"#, r#"{"x": []}"#, r#"{"32": []}"#, r#"{"1": ["zz"]}"#, r#"{"mask": "0xg"}"#, r#"{"1": [1]}"#] {
            assert!(PcrPolicy::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_round_trip() {
        let p = PcrPolicy::from_json(r#"{"0": ["aa", "bb"], "mask": "0x3"}"#).unwrap();
        assert_eq!(PcrPolicy::from_value(&p.to_json()).unwrap(), p);
    }
}
