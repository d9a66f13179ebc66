//! `cairn verifier`: run the verifier (continuous attestation, Keylime verifier API 2.x).
//!
//! Configuration is layered like the registrar's: built-in defaults, then the TOML file given
//! with `--config`, then environment variables (`CAIRN_VERIFIER_*`), then flags.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_verifier::{Verifier, VerifierConfig};
use clap::Args;

use super::registrar::{init_logging, shutdown_signal};

/// Verifier options. Every option is also a key of the TOML file (same name, `_` for `-`).
#[derive(Args)]
#[command(after_help = "\
Configuration file example (all keys optional; shown with their defaults):
    ip = \"127.0.0.1\"
    port = 8881                    # tenant API: TLS, client certificate required
    verifier_id = \"default\"
    state_dir = \"/var/lib/cairn/verifier\"
    # database = \"<state_dir>/verifier.sqlite\"   # may be the registrar's file
    quote_interval_ms = 2000       # one round per node per interval
    request_timeout_ms = 10000
    retry_base_ms = 1000           # unreachable agents: retry delay doubles up to retry_max_ms
    retry_max_ms = 30000
    max_in_flight = 256            # rounds in flight across all nodes
    require_safe_clock = false
    # server_cert = \"...\"  server_key = \"...\"  client_ca = \"...\"   # all three, or none
    # tls_dir = \"<state_dir>/tls\"               # local CA used when the three are unset
    # agent_client_cert = \"...\"  agent_client_key = \"...\"   # presented to agents
    # revocation_key = \"<state_dir>/revocation-key.pem\"   # RSA, PKCS#8; created if missing
    webhooks = []                  # e.g. [\"https://soc.example/hooks/cairn\"]
    delivery_attempts = 5
    notify_agents = true           # POST signed revocations to every other agent
    max_body_bytes = 67108864
    push_on_change = true          # long-poll agents that offer it; attest at once when IMA grows
    # refdb = \"/var/lib/cairn/refdb.sqlite\"   # cairn refdb build: integrity levels + placement
    level_webhooks = []            # receive signed integrity-level changes
    placement_max_age_ms = 0       # 0: 3 quote intervals + request timeout

Running it for real hosts: give the verifier the registrar's CA-signed client certificate (or
its own CA), make agents trust that CA (agent `client_ca`), give agents the revocation public key
(`<state_dir>/revocation-key.pub.pem`, agent `revocation_cert`), then add nodes with
`cairn node add UUID --verifier https://HOST:8881 --registrar https://HOST:8891 …`.
A node's state: pending → attested (every round passes) | failed (a check failed; revocation sent;
polling stops until `cairn node reactivate`) | unreachable (retried with backoff, never trusted).
SIGTERM or SIGINT stops the verifier gracefully. Log level: RUST_LOG (default info).")]
pub struct VerifierArgs {
    /// TOML configuration file; environment variables and flags override its keys.
    #[arg(long, value_name = "FILE", env = "CAIRN_VERIFIER_CONFIG")]
    config: Option<PathBuf>,
    /// Address the tenant API listens on [default: 127.0.0.1].
    #[arg(long, env = "CAIRN_VERIFIER_IP")]
    ip: Option<IpAddr>,
    /// Tenant API port (TLS, client certificate required); 0 picks a free port [default: 8881].
    #[arg(long, env = "CAIRN_VERIFIER_PORT")]
    port: Option<u16>,
    /// Directory for the database, revocation key and local CA [default: /var/lib/cairn/verifier].
    #[arg(long, value_name = "DIR", env = "CAIRN_VERIFIER_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// SQLite database file [default: <state_dir>/verifier.sqlite].
    #[arg(long, value_name = "FILE", env = "CAIRN_VERIFIER_DATABASE")]
    database: Option<PathBuf>,
    /// Milliseconds between one node's rounds [default: 2000].
    #[arg(long, value_name = "MS", env = "CAIRN_VERIFIER_QUOTE_INTERVAL_MS")]
    quote_interval_ms: Option<u64>,
    /// Directory of the local CA used when no server_cert/server_key/client_ca are given
    /// [default: <state_dir>/tls].
    #[arg(long, value_name = "DIR", env = "CAIRN_VERIFIER_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// A URL that receives every signed revocation (repeatable; adds to the file's list).
    #[arg(long = "webhook", value_name = "URL")]
    webhooks: Vec<String>,
    /// Reference database (`cairn refdb build`): compute every node's integrity level each round and
    /// answer placement queries (`GET /cairn/v1/placement`).
    #[arg(long, value_name = "FILE", env = "CAIRN_VERIFIER_REFDB")]
    refdb: Option<PathBuf>,
    /// A URL that receives every signed integrity-level change (repeatable; adds to the file's list).
    #[arg(long = "level-webhook", value_name = "URL")]
    level_webhooks: Vec<String>,
}

impl VerifierArgs {
    /// Runs the verifier until SIGTERM/SIGINT.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let config = self.config()?;
        init_logging();
        raise_open_files();
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
        runtime.block_on(serve(config))?;
        Ok(ExitCode::SUCCESS)
    }

    fn config(&self) -> anyhow::Result<VerifierConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                VerifierConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => VerifierConfig::default(),
        };
        if let Some(v) = self.ip {
            c.ip = v;
        }
        if let Some(v) = self.port {
            c.port = v;
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = v.clone();
        }
        if self.database.is_some() {
            c.database.clone_from(&self.database);
        }
        if self.tls_dir.is_some() {
            c.tls_dir.clone_from(&self.tls_dir);
        }
        if let Some(v) = self.quote_interval_ms {
            c.quote_interval_ms = v;
        }
        c.webhooks.extend(self.webhooks.iter().cloned());
        c.level_webhooks.extend(self.level_webhooks.iter().cloned());
        if self.refdb.is_some() {
            c.refdb.clone_from(&self.refdb);
        }
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

async fn serve(config: VerifierConfig) -> anyhow::Result<()> {
    let verifier = Verifier::bind(&config).await.context("starting the verifier")?;
    if let Some(ca) = &verifier.local_ca {
        println!("cairn verifier: local CA in {} (client certificate for tenants: {})", config.tls_dir_path().display(), ca.client_cert.display());
    }
    println!("cairn verifier: database {}", config.database_path().display());
    println!("cairn verifier: revocation public key {}", verifier.revocation_public_key.display());
    println!("cairn verifier: tenant API https://{} (client certificate required)", verifier.addr);
    let _ = std::io::stdout().flush();
    verifier.serve(shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// Every attested node holds a kept-alive connection (two with push-on-change): the soft limit on
/// open files is raised to the hard one, as servers of many connections do.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
        if soft < hard && setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }).is_ok() {
            tracing::info!(from = soft, to = hard, "open files limit raised");
        }
    }
}
