//! Verifier settings: what a TOML file (and the CLI's flags over it) may say, with defaults.
//!
//! Every key has a default so an empty file is a valid configuration; unknown keys are refused
//! so a typo is an error. Paths left unset derive from `state_dir`, the one directory the
//! verifier writes to. Durations are given in milliseconds so sub-second intervals are possible.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Keylime's default verifier port.
pub const DEFAULT_PORT: u16 = 8881;

/// The verifier's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierConfig {
    /// Address the tenant API listens on.
    pub ip: IpAddr,
    /// Port of the tenant API (TLS, client certificate required). 0 = any free port.
    pub port: u16,
    /// This verifier's id, reported to tenants.
    pub verifier_id: String,
    /// Directory for the database, the revocation key and auto-created TLS material.
    pub state_dir: PathBuf,
    /// SQLite database file (default `<state_dir>/verifier.sqlite`; may be the registrar's file).
    pub database: Option<PathBuf>,
    /// Time between the start of one round of a node and the next, in milliseconds.
    pub quote_interval_ms: u64,
    /// How long one quote request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// First retry delay after an agent did not answer, in milliseconds; doubles per miss.
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_max_ms: u64,
    /// Rounds in flight at once, across all nodes.
    pub max_in_flight: usize,
    /// Require the TPM clock's `safe` flag on every quote.
    pub require_safe_clock: bool,
    /// TLS server certificate chain (PEM). Unset together with `server_key` and `client_ca`: a
    /// local CA with server and client certificates is created in `tls_dir` on first start.
    pub server_cert: Option<PathBuf>,
    /// TLS server private key (PEM).
    pub server_key: Option<PathBuf>,
    /// CA (PEM) tenants' client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// Where the local CA lives when no TLS files are given (default `<state_dir>/tls`).
    pub tls_dir: Option<PathBuf>,
    /// Certificate (PEM) the verifier presents to agents (default: the local CA's client certificate).
    pub agent_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub agent_client_key: Option<PathBuf>,
    /// RSA private key (PKCS#8 PEM) that signs revocations (default
    /// `<state_dir>/revocation-key.pem`, created on first start with its public key beside it).
    pub revocation_key: Option<PathBuf>,
    /// URLs that receive every signed revocation (POST, JSON `{msg, signature}`).
    pub webhooks: Vec<String>,
    /// Delivery attempts per receiver before giving up.
    pub delivery_attempts: u32,
    /// Also send revocations to every other node's agent (`POST /vX/notifications/revocation`).
    pub notify_agents: bool,
    /// Largest request body accepted, in bytes (runtime policies can be large).
    pub max_body_bytes: usize,
    /// Long-poll agents that offer push-on-change and attest them as soon as their IMA log grows.
    pub push_on_change: bool,
    /// Reference database (`cairn refdb build`): when set, every node's integrity level is computed
    /// on every round and placement queries are answered.
    pub refdb: Option<PathBuf>,
    /// URLs that receive every integrity-level change (POST, JSON `{msg, signature}`, signed with the
    /// revocation key; `msg` is a JSON text whose `type` is `cairn_level_change`).
    pub level_webhooks: Vec<String>,
    /// A node qualifies for placement only if its last passing round is at most this old, in
    /// milliseconds (0: three quote intervals plus the request timeout).
    pub placement_max_age_ms: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            verifier_id: "default".into(),
            state_dir: PathBuf::from("/var/lib/cairn/verifier"),
            database: None,
            quote_interval_ms: 2000,
            request_timeout_ms: 10_000,
            retry_base_ms: 1000,
            retry_max_ms: 30_000,
            max_in_flight: 256,
            require_safe_clock: false,
            server_cert: None,
            server_key: None,
            client_ca: None,
            tls_dir: None,
            agent_client_cert: None,
            agent_client_key: None,
            revocation_key: None,
            webhooks: Vec::new(),
            delivery_attempts: 5,
            notify_agents: true,
            max_body_bytes: 64 << 20,
            push_on_change: true,
            refdb: None,
            level_webhooks: Vec::new(),
            placement_max_age_ms: 0,
        }
    }
}

impl VerifierConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<VerifierConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.database.clone().unwrap_or_else(|| self.state_dir.join("verifier.sqlite"))
    }

    /// The local CA directory.
    pub fn tls_dir_path(&self) -> PathBuf {
        self.tls_dir.clone().unwrap_or_else(|| self.state_dir.join("tls"))
    }

    /// The revocation key file.
    pub fn revocation_key_path(&self) -> PathBuf {
        self.revocation_key.clone().unwrap_or_else(|| self.state_dir.join("revocation-key.pem"))
    }

    /// The quote interval.
    pub fn quote_interval(&self) -> Duration {
        Duration::from_millis(self.quote_interval_ms.max(1))
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// How old a node's last pass may be for placement.
    pub fn placement_max_age(&self) -> Duration {
        match self.placement_max_age_ms {
            0 => self.quote_interval() * 3 + self.request_timeout(),
            ms => Duration::from_millis(ms),
        }
    }

    /// The retry delay after `misses` consecutive unanswered requests (1 = first miss).
    pub fn retry_delay(&self, misses: u32) -> Duration {
        let shift = misses.saturating_sub(1).min(20);
        let ms = self.retry_base_ms.saturating_mul(1u64 << shift).min(self.retry_max_ms.max(self.retry_base_ms));
        Duration::from_millis(ms.max(1))
    }

    /// Checks values that have no meaningful zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if self.delivery_attempts == 0 {
            return Err("delivery_attempts must be at least 1".into());
        }
        for w in &self.webhooks {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                return Err(format!("webhook {w:?} is not an http:// or https:// URL"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_and_typos_are_refused() {
        assert_eq!(VerifierConfig::from_toml("").unwrap(), VerifierConfig::default());
        let err = VerifierConfig::from_toml("quote_intervall_ms = 5").unwrap_err().to_string();
        assert!(err.contains("quote_intervall_ms"), "{err}");
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let c = VerifierConfig { retry_base_ms: 100, retry_max_ms: 1000, ..Default::default() };
        let ms: Vec<u128> = (1..=6).map(|n| c.retry_delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
    }
}
