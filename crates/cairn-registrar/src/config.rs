//! Registrar settings: what a TOML file (and the CLI's flags over it) may say, with defaults.
//!
//! Every key has a default so an empty file is a valid configuration; unknown keys are refused
//! so a typo is an error, not a silently ignored setting. Paths left unset derive from
//! `state_dir`, which is the one directory the registrar writes to.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Keylime's default registration (HTTP) port.
pub const DEFAULT_PORT: u16 = 8890;
/// Keylime's default TLS (admin) port.
pub const DEFAULT_TLS_PORT: u16 = 8891;
/// Default request body limit.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The registrar's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Address both ports bind to.
    pub ip: IpAddr,
    /// Registration port (plain HTTP: agents register and activate here). 0 = any free port.
    pub port: u16,
    /// TLS port (every endpoint, client certificate required). 0 = any free port.
    pub tls_port: u16,
    /// Directory for the database and auto-created TLS material.
    pub state_dir: PathBuf,
    /// SQLite database file (default `<state_dir>/registrar.sqlite`).
    pub database: Option<PathBuf>,
    /// Directory of trusted EK CA certificates, PEM or DER, roots and intermediates
    /// (default `<state_dir>/tpm_cert_store`). Every certificate in it is a trust anchor.
    pub trust_dir: Option<PathBuf>,
    /// Register agents that send no EK certificate (their EK is then trusted on first use).
    pub accept_without_ek_cert: bool,
    /// TLS server certificate chain (PEM). Unset together with `server_key` and `client_ca`:
    /// a local CA, server and client certificate are created in `<state_dir>/tls` on first start.
    pub server_cert: Option<PathBuf>,
    /// TLS server private key (PEM).
    pub server_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that client certificates on the TLS port must chain to.
    pub client_ca: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            tls_port: DEFAULT_TLS_PORT,
            state_dir: PathBuf::from("/var/lib/cairn/registrar"),
            database: None,
            trust_dir: None,
            accept_without_ek_cert: false,
            server_cert: None,
            server_key: None,
            client_ca: None,
            max_body_bytes: DEFAULT_MAX_BODY,
        }
    }
}

impl RegistrarConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<RegistrarConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.database.clone().unwrap_or_else(|| self.state_dir.join("registrar.sqlite"))
    }

    /// The trust directory.
    pub fn trust_dir_path(&self) -> PathBuf {
        self.trust_dir.clone().unwrap_or_else(|| self.state_dir.join("tpm_cert_store"))
    }

    /// Where auto-created TLS material lives.
    pub fn auto_tls_dir(&self) -> PathBuf {
        self.state_dir.join("tls")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults_and_typos_are_refused() {
        assert_eq!(RegistrarConfig::from_toml("").unwrap(), RegistrarConfig::default());
        let c = RegistrarConfig::from_toml("port = 9000\nstate_dir = \"/srv/r\"\naccept_without_ek_cert = true").unwrap();
        assert_eq!((c.port, c.tls_port, c.accept_without_ek_cert), (9000, DEFAULT_TLS_PORT, true));
        assert_eq!(c.database_path(), PathBuf::from("/srv/r/registrar.sqlite"));
        assert_eq!(c.trust_dir_path(), PathBuf::from("/srv/r/tpm_cert_store"));
        let e = RegistrarConfig::from_toml("prot = 1").unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
    }
}
