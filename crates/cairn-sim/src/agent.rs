//! One simulated agent: its identity, its log, and the answers it gives.
//!
//! It answers what a verifier asks of a Keylime agent in pull mode — `GET /version` and
//! `GET /v{X}/quotes/integrity?nonce&mask&partial&ima_ml_entry` — with a genuine TPMS_ATTEST over
//! the nonce and the asked-for PCRs (sha256 bank) signed by its AK, its IMA lines from the asked
//! entry, and (with `partial=0`) the NK that PCR 16 binds. Anything else is 404, bad queries 400.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cairn_core::pcr::{BankSelection, PcrSelection, PcrValues};
use cairn_core::quote::encode_quote_string;
use cairn_core::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
use cairn_core::tpm::{encode_pcr_blob, Attest};
use cairn_proto::agent::QuoteResponse;
use cairn_proto::Envelope;

use crate::identity::{AkKey, Identity};
use crate::ima::{AgentLog, Universe, BANK};

/// What every simulated agent shares.
#[derive(Debug)]
pub struct Shared {
    /// The measurement sequence.
    pub universe: Universe,
    /// The NK every simulated agent presents (PEM): one RSA key for the run, bound into each
    /// agent's PCR 16 as a real agent binds its own.
    pub nk_pem: String,
    /// PCR 16 after binding the NK.
    pub pcr16: cairn_core::Digest,
    /// When the simulated TPMs were "switched on".
    pub started: Instant,
    /// Unix seconds of that moment (the agents' boot time).
    pub boottime: u64,
    /// Agents offer push-on-change (`/cairn/v1/ima/changes`; 404 when false).
    pub push_offered: bool,
    /// Pushes are answered now (a bench can hold them back to measure detection without push).
    pub push_active: std::sync::atomic::AtomicBool,
}

/// One agent.
pub struct SimAgent {
    /// Its id.
    pub uuid: String,
    /// Its keys.
    pub identity: Identity,
    /// Its log.
    pub log: Mutex<AgentLog>,
    /// Quotes served.
    pub quotes: std::sync::atomic::AtomicU64,
    /// Signalled whenever the log changes.
    pub changed: tokio::sync::Notify,
    shared: Arc<Shared>,
    clock_offset: u64,
}

impl std::fmt::Debug for SimAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAgent").field("uuid", &self.uuid).finish_non_exhaustive()
    }
}

/// An HTTP answer: status and JSON body.
pub(crate) type Reply = (u16, String);

impl SimAgent {
    /// An agent whose log starts with `initial` shared entries.
    pub fn new(uuid: String, identity: Identity, shared: Arc<Shared>, initial: usize, clock_offset: u64) -> SimAgent {
        SimAgent {
            uuid,
            identity,
            log: Mutex::new(AgentLog::new(initial)),
            quotes: Default::default(),
            changed: tokio::sync::Notify::new(),
            shared,
            clock_offset,
        }
    }

    /// The shared parts.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Answers one request.
    pub fn handle(&self, path: &str, query: Option<&str>) -> Reply {
        if path == "/version" {
            let v = cairn_proto::ApiVersion::CURRENT;
            return ok(&serde_json::json!({ "supported_version": format!("{}.{}", v.major, v.minor) }));
        }
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (Some(version), Some(rest)) = (parts.next(), parts.next()) else { return error(404, "not found") };
        if !version.starts_with('v') || cairn_proto::ApiVersion::from_path_segment(version).is_none() {
            return error(404, "unsupported API version");
        }
        match rest {
            "quotes/integrity" => self.integrity(query.unwrap_or_default()),
            _ => error(404, "not found"),
        }
    }

    /// The push-on-change long poll: answers once the log's length differs from `known` (while
    /// pushes are active), or at the timeout with the length unchanged.
    pub async fn changes(&self, query: Option<&str>) -> Reply {
        if !self.shared.push_offered {
            return error(404, "push-on-change is off");
        }
        let (mut known, mut timeout_ms) = (0usize, 30_000u64);
        for kv in query.unwrap_or_default().split('&') {
            match kv.split_once('=') {
                Some(("known", v)) => known = v.parse().unwrap_or(0),
                Some(("timeout_ms", v)) => timeout_ms = v.parse().unwrap_or(30_000).min(60_000),
                _ => {}
            }
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let len = self.log.lock().map(|l| l.len()).unwrap_or(known);
            if len != known && self.shared.push_active.load(std::sync::atomic::Ordering::Acquire) {
                return ok(&serde_json::json!({ "entries": len }));
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return ok(&serde_json::json!({ "entries": known })),
            }
        }
    }

    fn integrity(&self, query: &str) -> Reply {
        let (mut nonce, mut mask, mut partial, mut entry) = (None, 0u32, false, 0usize);
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "nonce" => nonce = Some(v),
                "mask" => match u32::from_str_radix(v.trim_start_matches("0x"), 16) {
                    Ok(m) => mask = m,
                    Err(_) => return error(400, "mask is not hex"),
                },
                "partial" => partial = v == "1",
                "ima_ml_entry" => match v.parse() {
                    Ok(e) => entry = e,
                    Err(_) => return error(400, "ima_ml_entry is not a number"),
                },
                _ => {}
            }
        }
        let Some(nonce) = nonce.filter(|n| !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric())) else {
            return error(400, "nonce must be 1 to 64 alphanumeric characters");
        };
        let (from, lines, pcr10) = match self.log.lock() {
            Ok(log) => {
                let (from, text) = log.text_from(&self.shared.universe, entry);
                (from, text, log.pcr10(&self.shared.universe))
            }
            Err(_) => return error(500, "log lock poisoned"),
        };
        let quote = match self.quote(nonce.as_bytes(), mask, pcr10) {
            Ok(q) => q,
            Err(e) => return error(500, &e),
        };
        self.quotes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (enc, sign) = match self.identity.ak_key {
            AkKey::Ecdsa(_) => ("ecc", "ecdsa"),
            AkKey::Rsa(_) => ("rsa", "rsassa"),
        };
        ok(&QuoteResponse {
            quote,
            hash_alg: BANK.name().to_owned(),
            enc_alg: enc.to_owned(),
            sign_alg: sign.to_owned(),
            pubkey: (!partial).then(|| self.shared.nk_pem.clone()),
            boottime: Some(self.shared.boottime),
            ima_measurement_list: (mask & 1 << 10 != 0).then_some(lines),
            ima_measurement_list_entry: (mask & 1 << 10 != 0).then_some(from as u64),
            mb_measurement_list: None,
        })
    }

    /// Quotes `mask` + PCR 16 in the sha256 bank over `nonce`.
    fn quote(&self, nonce: &[u8], mask: u32, pcr10: cairn_core::Digest) -> Result<String, String> {
        let selection = PcrSelection::new(vec![BankSelection { alg: BANK, mask: mask | 1 << 16 }]).map_err(|e| e.to_string())?;
        let values = selection
            .iter()
            .map(|(_, p)| match p.get() {
                10 => pcr10,
                16 => self.shared.pcr16,
                _ => BANK.zero(),
            })
            .collect();
        let values = PcrValues::new(selection.clone(), values).map_err(|e| e.to_string())?;
        let elapsed = u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let attest = Attest {
            magic: TPM_GENERATED_VALUE,
            qualified_signer: self.identity.ak.name(),
            extra_data: nonce.to_vec(),
            clock_info: ClockInfo { clock: self.clock_offset + elapsed, reset_count: 1, restart_count: 0, safe: true },
            firmware_version: 0x0001_0002_0003_0004,
            info: AttestInfo::Quote { selection, pcr_digest: values.composite_digest(BANK).as_bytes().to_vec() },
        };
        let message = attest.to_bytes();
        let signature = self.identity.ak_key.sign(&message).map_err(|e| e.to_string())?;
        Ok(encode_quote_string(&message, &signature, &encode_pcr_blob(&values)))
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn ok<T: serde::Serialize>(results: &T) -> Reply {
    (200, serde_json::to_string(&Envelope::ok(results)).unwrap_or_default())
}

fn error(code: u16, why: &str) -> Reply {
    (code, serde_json::to_string(&Envelope::<serde_json::Value>::error(code, why)).unwrap_or_default())
}
