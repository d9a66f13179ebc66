//! `cairn agent`: run the Keylime-compatible agent (see the `cairn-agent` crate).
//!
//! Options come from a TOML file (`--config`), overridden by environment variables
//! (`CAIRN_AGENT_*`), overridden by flags. Every TOML key is the flag's name with `_` for `-`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_agent::{Agent, RawConfig};
use clap::Args;

const AFTER_HELP: &str = "\
CONFIGURATION FILE (--config, TOML; every key optional, flags and environment win):
    tcti = \"swtpm:host=127.0.0.1,port=2321\"
    state_dir = \"/var/lib/cairn/agent\"
    uuid = \"hash_ek\"                      # or \"generate\", or a literal uuid
    listen = \"0.0.0.0:9002\"
    contact_ip = \"192.0.2.10\"
    contact_port = 9002
    registrar = \"http://registrar.example:8890\"
    register = true
    ek = \"rsa2048\"
    ak_alg = \"rsa2048-rsassa\"
    hash = \"sha256\"
    ak_handle = \"0x81010010\"
    ima_log = \"/sys/kernel/security/ima/ascii_runtime_measurements\"
    uefi_log = \"/sys/kernel/security/tpm0/binary_bios_measurements\"
    client_ca = \"/etc/cairn/verifier-ca.pem\"
    revocation_cert = \"/etc/cairn/revocation.crt\"
    revocation_actions_dir = \"/var/lib/cairn/agent/revocation_actions\"
    push_on_change = false
    hvm = true                               # host mode (see HOST MODE)
    hvm_pcr = 13
    hvm_interval_ms = 30000
    hvm_exe = [\"qemu-system-*\", \"swtpm\", \"libvirtd\"]
    kind = \"host\"                         # or \"vm\": this TPM is a vTPM of an enrolled host
    vtpm_ca_dir = \"/var/lib/cairn/vtpm/.vtpm-ca\"  # host: publish this vTPM CA, certified by the AK

STATE DIRECTORY (created 0700): nk.der (node key, PKCS#8, 0600), mtls.key (0600), mtls.crt,
ak.pub and ek.pub (TPM2B_PUBLIC), uuid (when generated), revocation_actions/ (the default
actions directory). Keep it: a restarted agent with the same state directory and TPM presents
the same uuid, EK and AK, and re-registers them.

TPM SHARING: the agent opens the TPM for each operation and closes it right after, one
operation at a time, never holding an idle connection. So with swtpm (one client at a time)
an operator can run `cairn tpm pcr-extend --tcti … 10 sha256:<hex>` (or tpm2_pcrextend) beside a
running agent; it succeeds between two agent operations (retry if it lands during one).
Quotes reset and re-extend PCR 16 (it binds the node key), so do not use PCR 16 for anything else.

REVOCATION: POST /v2.x/notifications/revocation takes Keylime's {msg, signature}, signed by the
verifier's revocation key (RSA-PSS/SHA-256, maximum salt). Only messages that verify against
revocation_cert (PEM public key or certificate) are acted on; without revocation_cert every
notification is refused (403). A verified message (about any node, this one included) runs
every executable regular file in revocation_actions_dir (names starting with '.' skipped), one
after the other in name order, each with:
    stdin   the message JSON exactly as signed (type, ip, agent_id, port, tpm_policy, meta_data,
            event_time, event_id, severity_label, context)
    env     CAIRN_REVOKED_AGENT_ID, CAIRN_REVOKED_IP, CAIRN_REVOKED_PORT,
            CAIRN_REVOCATION_EVENT_ID, CAIRN_REVOCATION_SEVERITY (empty without an event),
            CAIRN_REVOKED_SELF (1 when the message names this agent, else 0)
    cwd     the actions directory
An action still running after 30 s is killed with its process group; exit status and the tail
of stdout/stderr are logged. The directory may be absent (no actions); it is read at every
notification. Actions run with the agent's rights: let no one else write to the directory.

PUSH-ON-CHANGE: with push_on_change, GET /cairn/v1/ima/changes?known=N&timeout_ms=T (same mutual
TLS as quotes) answers {\"entries\": M} as soon as the IMA log's complete entries M differ from N,
or after T ms (at most 60 s). A Cairn verifier keeps one such request open per agent and attests
the node at once when it returns; the round it triggers is an ordinary, fully checked round.

HOST MODE (--hvm): every --hvm-interval-ms the agent measures the processes whose executable matches
an --hvm-exe glob (a pattern without '/' matches the file name; default qemu-system-*, swtpm,
libvirtd) and itself: each executable file-backed mapping is read from /proc/PID/mem and compared
with the same range of the mapped file. New or changed results are appended to the hypervisor
measurement list (<state_dir>/hvm/list), extended into --hvm-pcr (default 13: not resettable, unused
unless systemd-stub measures system extensions on a UKI boot) and served at GET /cairn/v1/hvm?from=N.
Needs root (ptrace rights over the measured processes). Add the node with `cairn node add --hvm`.";

/// Run the Keylime-compatible agent: enrol at a registrar, serve quotes over mutual TLS.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct AgentArgs {
    /// TOML configuration file; see the example below.
    #[arg(long, short = 'c', env = "CAIRN_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// TPM connection (TCTI): `device:/dev/tpmrm0` (default), `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long, env = "CAIRN_AGENT_TCTI", value_name = "TCTI")]
    tcti: Option<String>,
    /// Directory for the agent's keys, certificate and uuid [default: /var/lib/cairn/agent].
    #[arg(long, env = "CAIRN_AGENT_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Agent uuid: `hash_ek` (default: hex SHA-256 of the EK public key PEM, as Keylime's
    /// hash_ek), `generate` (random, kept in the state directory), or a literal uuid.
    #[arg(long, env = "CAIRN_AGENT_UUID", value_name = "UUID")]
    uuid: Option<String>,
    /// Address to serve the agent API on (HTTPS) [default: 0.0.0.0:9002]; port 0 picks one.
    #[arg(long, env = "CAIRN_AGENT_LISTEN", value_name = "IP:PORT")]
    listen: Option<String>,
    /// IP address registered for verifiers to reach this agent [default: the listening IP,
    /// or 127.0.0.1 when listening on all addresses].
    #[arg(long, env = "CAIRN_AGENT_CONTACT_IP", value_name = "IP")]
    contact_ip: Option<String>,
    /// Port registered for verifiers [default: the port actually listened on].
    #[arg(long, env = "CAIRN_AGENT_CONTACT_PORT", value_name = "PORT")]
    contact_port: Option<u16>,
    /// Registrar base URL (its plain-HTTP registration port) [default: http://127.0.0.1:8890].
    #[arg(long, env = "CAIRN_AGENT_REGISTRAR", value_name = "URL")]
    registrar: Option<String>,
    /// Do not register at start (serve only).
    #[arg(long)]
    no_register: bool,
    /// Endorsement key: rsa2048 (default) or ecc256.
    #[arg(long, env = "CAIRN_AGENT_EK", value_name = "ALG")]
    ek: Option<String>,
    /// AK algorithm: rsa2048-rsassa (default), rsa2048-rsapss, rsa3072-rsassa, ecc-p256-ecdsa,
    /// ecc-p384-ecdsa, sm2-p256 (short forms rsa2048, ecc256, sm2 work too).
    #[arg(long, env = "CAIRN_AGENT_AK_ALG", value_name = "ALG")]
    ak_alg: Option<String>,
    /// AK signing hash, which is also the PCR bank quoted: sha256 (default), sha1, sha384, sha512.
    #[arg(long, env = "CAIRN_AGENT_HASH", value_name = "HASH")]
    hash: Option<String>,
    /// Persistent handle of the AK [default: per algorithm, e.g. 0x81010010 for rsa2048-rsassa].
    #[arg(long, env = "CAIRN_AGENT_AK_HANDLE", value_name = "HANDLE")]
    ak_handle: Option<String>,
    /// IMA ASCII measurement list served with quotes of PCR 10
    /// [default: /sys/kernel/security/ima/ascii_runtime_measurements].
    #[arg(long, env = "CAIRN_AGENT_IMA_LOG", value_name = "FILE")]
    ima_log: Option<PathBuf>,
    /// UEFI event log served (base64) with quotes of PCR 0
    /// [default: /sys/kernel/security/tpm0/binary_bios_measurements].
    #[arg(long, env = "CAIRN_AGENT_UEFI_LOG", value_name = "FILE")]
    uefi_log: Option<PathBuf>,
    /// CA certificate(s), PEM, that a verifier's TLS client certificate must chain to (mutual
    /// TLS, as Keylime's trusted_client_ca). Without it the agent runs in trust-all-with-logging
    /// mode: any client is served and a presented client certificate's fingerprint is logged.
    #[arg(long, env = "CAIRN_AGENT_CLIENT_CA", value_name = "PEM")]
    client_ca: Option<PathBuf>,
    /// The verifier's revocation public key or certificate, PEM (Keylime's revocation
    /// certificate). Without it every revocation notification is refused (403, logged).
    #[arg(long, env = "CAIRN_AGENT_REVOCATION_CERT", value_name = "PEM")]
    revocation_cert: Option<PathBuf>,
    /// Directory of revocation actions, run when a verified revocation arrives (see REVOCATION
    /// below) [default: <state_dir>/revocation_actions; may be absent].
    #[arg(long, env = "CAIRN_AGENT_REVOCATION_ACTIONS_DIR", value_name = "DIR")]
    revocation_actions_dir: Option<PathBuf>,
    /// Push-on-change: let a verifier long-poll `/cairn/v1/ima/changes` and attest this node the
    /// moment its IMA log grows, instead of at its next interval (see PUSH-ON-CHANGE below).
    #[arg(long, env = "CAIRN_AGENT_PUSH_ON_CHANGE")]
    push_on_change: bool,
    /// Host mode: measure the hypervisor's processes into the hvm PCR (see HOST MODE below).
    #[arg(long)]
    hvm: bool,
    /// The PCR host mode extends [default: 13].
    #[arg(long, env = "CAIRN_AGENT_HVM_PCR", value_name = "PCR")]
    hvm_pcr: Option<u8>,
    /// Milliseconds between host-mode measurement rounds [default: 30000].
    #[arg(long, env = "CAIRN_AGENT_HVM_INTERVAL_MS", value_name = "MS")]
    hvm_interval_ms: Option<u64>,
    /// Executable glob to measure in host mode (repeatable) [default: qemu-system-*, swtpm, libvirtd].
    #[arg(long = "hvm-exe", value_name = "GLOB")]
    hvm_exe: Vec<String>,
    /// What this node is: `host` [default] or `vm` (its TPM is a vTPM whose EK certificate an
    /// enrolled host's vTPM CA issued).
    #[arg(long, env = "CAIRN_AGENT_KIND", value_name = "KIND")]
    kind: Option<String>,
    /// Host: the vTPM CA directory (`cairn vtpm create --ca-dir`) to publish at registration,
    /// its key certified by the AK (TPM2_Certify).
    #[arg(long, env = "CAIRN_AGENT_VTPM_CA_DIR", value_name = "DIR")]
    vtpm_ca_dir: Option<PathBuf>,
    /// Log filter (tracing syntax), e.g. `info`, `cairn_agent=debug`.
    #[arg(long, env = "CAIRN_LOG", value_name = "FILTER", default_value = "info,tss_esapi=warn")]
    log: String,
}

impl AgentArgs {
    /// Runs the agent until SIGINT or SIGTERM.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        init_logging(&self.log);
        let file = match &self.config {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        let flags = RawConfig {
            tcti: self.tcti,
            state_dir: self.state_dir,
            uuid: self.uuid,
            listen: self.listen,
            contact_ip: self.contact_ip,
            contact_port: self.contact_port,
            registrar: self.registrar,
            register: self.no_register.then_some(false),
            ek: self.ek,
            ak_alg: self.ak_alg,
            hash: self.hash,
            ak_handle: self.ak_handle,
            ima_log: self.ima_log,
            uefi_log: self.uefi_log,
            client_ca: self.client_ca,
            revocation_cert: self.revocation_cert,
            revocation_actions_dir: self.revocation_actions_dir,
            push_on_change: self.push_on_change.then_some(true),
            hvm: self.hvm.then_some(true),
            hvm_pcr: self.hvm_pcr,
            hvm_interval_ms: self.hvm_interval_ms,
            hvm_exe: (!self.hvm_exe.is_empty()).then_some(self.hvm_exe),
            kind: self.kind,
            vtpm_ca_dir: self.vtpm_ca_dir,
        };
        let config = flags.over(file).validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async {
            let agent = Agent::start(config).await?;
            // One line on stdout, for scripts and tests: the uuid and the address served.
            println!("cairn agent {} listening on {}", agent.uuid, agent.addr);
            agent.run_until(super::registrar::shutdown_signal()).await;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}


fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
