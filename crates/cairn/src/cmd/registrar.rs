//! `cairn registrar`: run the registrar (Keylime registrar REST API 2.x), or create TLS material.
//!
//! Configuration is layered: built-in defaults, then the TOML file given with `--config`, then
//! environment variables (`CAIRN_REGISTRAR_*`), then flags. The merged configuration is handed
//! to `cairn-registrar`, which does everything else.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_registrar::tls::ensure_local_ca;
use cairn_registrar::{Registrar, RegistrarConfig};
use clap::{Args, Subcommand};

/// Registrar options. Every option is also a key of the TOML file (same name, `_` for `-`).
#[derive(Args)]
#[command(after_help = "\
Configuration file example (all keys optional; shown with their defaults):

    ip = \"127.0.0.1\"
    port = 8890                    # registration port, plain HTTP (agents)
    tls_port = 8891                # every endpoint, client certificate required (tenant, verifier)
    state_dir = \"/var/lib/cairn/registrar\"
    # database = \"<state_dir>/registrar.sqlite\"
    # trust_dir = \"<state_dir>/tpm_cert_store\"   # TPM vendor CA certificates, PEM or DER
    accept_without_ek_cert = false
    # server_cert = \"...\"  server_key = \"...\"  client_ca = \"...\"   # all three, or none
    max_body_bytes = 1048576

With no server_cert/server_key/client_ca, a local CA, a server certificate and a client
certificate are created in <state_dir>/tls on first start (their paths are printed); give the
client certificate and key, and ca-cert.pem, to the tenant and verifier.
SIGTERM or SIGINT stops the registrar gracefully. Log level: RUST_LOG (default info).")]
pub struct RegistrarArgs {
    #[command(subcommand)]
    action: Option<RegistrarAction>,
    /// TOML configuration file; environment variables and flags override its keys.
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRAR_CONFIG")]
    config: Option<PathBuf>,
    /// Address both ports listen on [default: 127.0.0.1].
    #[arg(long, env = "CAIRN_REGISTRAR_IP")]
    ip: Option<IpAddr>,
    /// Registration port (plain HTTP; agents register and activate here); 0 picks a free port
    /// [default: 8890].
    #[arg(long, env = "CAIRN_REGISTRAR_PORT")]
    port: Option<u16>,
    /// TLS port (all endpoints, admin included; clients must present a certificate issued by
    /// the client CA); 0 picks a free port [default: 8891].
    #[arg(long, env = "CAIRN_REGISTRAR_TLS_PORT")]
    tls_port: Option<u16>,
    /// Directory for the database and auto-created TLS files [default: /var/lib/cairn/registrar].
    #[arg(long, value_name = "DIR", env = "CAIRN_REGISTRAR_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// SQLite database file (created if missing) [default: <state_dir>/registrar.sqlite].
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRAR_DATABASE")]
    database: Option<PathBuf>,
    /// Directory of trusted TPM vendor CA certificates (roots and intermediates, PEM or DER,
    /// *.pem *.crt *.cer *.der); an EK certificate must chain to one of them
    /// [default: <state_dir>/tpm_cert_store].
    #[arg(long, value_name = "DIR", env = "CAIRN_REGISTRAR_TRUST_DIR")]
    trust_dir: Option<PathBuf>,
    /// Register agents that send no EK certificate (their EK is trusted on first use)
    /// [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", env = "CAIRN_REGISTRAR_ACCEPT_WITHOUT_EK_CERT")]
    accept_without_ek_cert: Option<bool>,
    /// TLS server certificate chain, PEM (with --server-key and --client-ca).
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRAR_SERVER_CERT")]
    server_cert: Option<PathBuf>,
    /// TLS server private key, PEM.
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRAR_SERVER_KEY")]
    server_key: Option<PathBuf>,
    /// CA certificate(s), PEM, that client certificates on the TLS port must chain to.
    #[arg(long, value_name = "FILE", env = "CAIRN_REGISTRAR_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES", env = "CAIRN_REGISTRAR_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
}

#[derive(Subcommand)]
enum RegistrarAction {
    /// Create a local CA, a server certificate and a client certificate in DIR (kept when they
    /// exist) and print their paths; point server_cert/server_key/client_ca at them.
    InitCa {
        /// Directory for ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem.
        dir: PathBuf,
        /// Extra DNS name or IP address for the server certificate (repeatable); localhost,
        /// 127.0.0.1 and ::1 are always included.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

impl RegistrarArgs {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(RegistrarAction::InitCa { dir, hosts }) = &self.action {
            let ca = ensure_local_ca(dir, hosts).with_context(|| format!("creating TLS files in {}", dir.display()))?;
            print_ca(&ca, if ca.created { "created" } else { "already present" });
            return Ok(ExitCode::SUCCESS);
        }
        let config = self.config()?;
        init_logging();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")?;
        runtime.block_on(serve(config))?;
        Ok(ExitCode::SUCCESS)
    }

    /// Defaults ← file ← environment and flags (clap merges those two).
    fn config(&self) -> anyhow::Result<RegistrarConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                RegistrarConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => RegistrarConfig::default(),
        };
        if let Some(v) = self.ip {
            c.ip = v;
        }
        if let Some(v) = self.port {
            c.port = v;
        }
        if let Some(v) = self.tls_port {
            c.tls_port = v;
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = v.clone();
        }
        let set = |slot: &mut Option<PathBuf>, v: &Option<PathBuf>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        set(&mut c.database, &self.database);
        set(&mut c.trust_dir, &self.trust_dir);
        set(&mut c.server_cert, &self.server_cert);
        set(&mut c.server_key, &self.server_key);
        set(&mut c.client_ca, &self.client_ca);
        if let Some(v) = self.accept_without_ek_cert {
            c.accept_without_ek_cert = v;
        }
        if let Some(v) = self.max_body_bytes {
            c.max_body_bytes = v;
        }
        Ok(c)
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn serve(config: RegistrarConfig) -> anyhow::Result<()> {
    let registrar = Registrar::bind(&config).await.context("starting the registrar")?;
    if let Some(ca) = &registrar.local_ca {
        print_ca(ca, if ca.created { "created (no TLS files configured)" } else { "in use (no TLS files configured)" });
    }
    println!("cairn registrar: database {}", config.database_path().display());
    println!("cairn registrar: trust dir {} ({} certificates)", config.trust_dir_path().display(), registrar.trusted_certs);
    println!("cairn registrar: registration port http://{}", registrar.http_addr);
    println!("cairn registrar: TLS port https://{} (client certificate required)", registrar.tls_addr);
    let _ = std::io::stdout().flush();
    tracing::info!(http = %registrar.http_addr, tls = %registrar.tls_addr, "registrar started");
    registrar.serve(shutdown_signal()).await.context("serving")?;
    Ok(())
}

fn print_ca(ca: &cairn_registrar::tls::LocalCa, what: &str) {
    println!("cairn registrar: local CA {what}:");
    println!("  CA certificate (trust it on clients): {}", ca.ca_cert.display());
    println!("  server certificate / key:             {} / {}", ca.server.server_cert.display(), ca.server.server_key.display());
    println!("  client certificate / key (tenant, verifier): {} / {}", ca.client_cert.display(), ca.client_key.display());
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
