//! `cairn node`: the tenant CLI — add nodes to the verifier (with what the registrar knows of
//! them), read their status, remove, stop or reactivate them.
//!
//! Every call is mutual TLS: the client certificate and CA come from `--tls-dir` (the local CA
//! directory `cairn registrar` / `cairn verifier` create) or from `--cert`, `--key`, `--ca`.
//! `add` does what Keylime's tenant does: it reads the agent's AK, mTLS certificate and contact
//! address from the registrar's admin API, then posts them with the policies to the verifier.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_proto::registrar::AgentRecord;
use cairn_proto::verifier::{AddAgentRequest, AgentView};
use cairn_proto::Envelope;
use clap::{Args, Subcommand};

use super::node_bootstrap as bootstrap;

/// API version the CLI speaks.
const API: &str = "v2.5";

/// Where the verifier and registrar are and how to authenticate.
#[derive(Args, Clone)]
pub struct Endpoints {
    /// Verifier tenant API.
    #[arg(long, value_name = "URL", env = "CAIRN_VERIFIER_URL", default_value = "https://127.0.0.1:8881", global = true)]
    verifier: String,
    /// Registrar TLS (admin) API.
    #[arg(long, value_name = "URL", env = "CAIRN_REGISTRAR_URL", default_value = "https://127.0.0.1:8891", global = true)]
    registrar: String,
    /// Directory holding ca-cert.pem, client-cert.pem and client-key.pem (a Cairn local CA).
    #[arg(long, value_name = "DIR", env = "CAIRN_TLS_DIR", default_value = "/var/lib/cairn/verifier/tls", global = true)]
    tls_dir: PathBuf,
    /// Client certificate (PEM) [default: <tls-dir>/client-cert.pem].
    #[arg(long, value_name = "FILE", env = "CAIRN_CLIENT_CERT", global = true)]
    cert: Option<PathBuf>,
    /// Client key (PEM) [default: <tls-dir>/client-key.pem].
    #[arg(long, value_name = "FILE", env = "CAIRN_CLIENT_KEY", global = true)]
    key: Option<PathBuf>,
    /// CA (PEM) the servers' certificates chain to [default: <tls-dir>/ca-cert.pem].
    #[arg(long, value_name = "FILE", env = "CAIRN_CA", global = true)]
    ca: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

impl Endpoints {
    /// `DELETE /agents/{uuid}` at the verifier; whether it was removed.
    pub fn delete(&self, http: &reqwest::blocking::Client, uuid: &str) -> anyhow::Result<bool> {
        let url = format!("{}/{API}/agents/{uuid}", self.verifier.trim_end_matches('/'));
        Ok(call(http, reqwest::Method::DELETE, &url, None)? == ExitCode::SUCCESS)
    }

    /// Endpoints with the files of a Cairn local CA directory.
    pub fn local(verifier: String, registrar: String, tls_dir: PathBuf) -> Endpoints {
        Endpoints { verifier, registrar, tls_dir, cert: None, key: None, ca: None, json: false }
    }

    /// An HTTPS client with the tenant's certificate.
    pub fn client(&self) -> anyhow::Result<reqwest::blocking::Client> {
        client(self)
    }

    /// The verifier's base URL (no trailing slash).
    pub fn verifier_url(&self) -> &str {
        self.verifier.trim_end_matches('/')
    }

    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Every node's view from the verifier.
    pub fn nodes(&self, http: &reqwest::blocking::Client) -> anyhow::Result<Vec<AgentView>> {
        let url = format!("{}/cairn/v1/nodes", self.verifier.trim_end_matches('/'));
        get::<Vec<AgentView>>(http, &url)?.context("the verifier refused to list nodes")
    }
}

/// Policies and settings of a node.
#[derive(Args, Clone, Default)]
pub struct NodeOptions {
    /// Runtime (IMA) policy file, Keylime JSON format; stored under the node's id unless
    /// --runtime-policy-name is given.
    #[arg(long, value_name = "FILE")]
    runtime_policy: Option<PathBuf>,
    /// Use (or store the given file as) the named runtime policy.
    #[arg(long, value_name = "NAME")]
    runtime_policy_name: Option<String>,
    /// Measured-boot reference state file (Keylime JSON shape, see `cairn policy create measured-boot`).
    #[arg(long, value_name = "FILE")]
    mb_refstate: Option<PathBuf>,
    /// Use (or store the given file as) the named measured-boot policy.
    #[arg(long, value_name = "NAME")]
    mb_policy_name: Option<String>,
    /// PCR policy, Keylime's tpm_policy JSON: '{"15": ["0000…"], "mask": "0x8000"}'.
    #[arg(long, value_name = "JSON")]
    tpm_policy: Option<String>,
    /// Accepted quote hash algorithm (repeatable) [default: any the AK uses].
    #[arg(long = "accept-hash", value_name = "ALG")]
    accept_hash: Vec<String>,
    /// Agent address, instead of the one it registered.
    #[arg(long)]
    ip: Option<String>,
    /// Agent port, instead of the one it registered.
    #[arg(long)]
    port: Option<u16>,
    /// Metadata JSON stored with the node and sent in its revocations.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// A payload (file or directory) delivered to the node only after it attests: encrypted under a
    /// fresh key K, K split into U (to the agent now, after its identity quote checks out) and V (to
    /// the verifier, released after the node's first passing round). The agent writes it to
    /// memory-backed storage; a zip is unpacked and its autorun.sh run. A directory is sent as a
    /// zip of its files (paths relative to it, modes kept).
    #[arg(long, value_name = "FILE|DIR")]
    payload: Option<PathBuf>,
    /// With --payload: keep K in FILE (mode 0600) for `cairn node verify-key`.
    #[arg(long, value_name = "FILE", requires = "payload")]
    save_key: Option<PathBuf>,
    /// With --payload: return once U and V are handed over, without waiting for the release.
    #[arg(long, requires = "payload")]
    no_wait: bool,
    /// Host mode: the node is a hypervisor host whose agent runs with --hvm; every round also fetches
    /// its hypervisor measurement list, replays it against the quoted hvm PCR and fails the node when
    /// code in memory differs from its file.
    #[arg(long)]
    hvm: bool,
    /// The PCR the host's agent extends (implies --hvm) [default: 13].
    #[arg(long, value_name = "PCR")]
    hvm_pcr: Option<u8>,
    /// The host's name as schedulers know it (Nova compute host, Kubernetes node); placement queries
    /// and `cairn placement labels` report it [default: the node's address].
    #[arg(long, value_name = "NAME")]
    host_name: Option<String>,
    /// The node is a VM running on this host node (added to the same verifier): it is trusted only while
    /// its host is attested, and turns `host_untrusted` the moment the host fails or stops answering
    /// [default: the host the registrar enrolled the VM under (its vTPM CA issued the VM's EK)].
    #[arg(long, value_name = "HOST_UUID")]
    on_host: Option<String>,
    /// For a VM (host from --on-host or the registrar): its policy for its host-side evidence (a JSON file: qemu_code,
    /// launch_config, disks, kernel, initrd, vtpm_ek, memory — docs/vm-evidence.md). Each host round
    /// then fetches the host's VM batch once and judges the VM's leaf; a failing leaf fails the VM.
    #[arg(long, value_name = "FILE")]
    vm_policy: Option<PathBuf>,
    /// With --vm-policy: the VM's QEMU `-uuid` [default: the node's agent id, when it is a UUID].
    #[arg(long, value_name = "UUID", requires = "vm_policy")]
    vm_uuid: Option<String>,
    /// Print nothing on success (benchmarks).
    #[arg(skip)]
    quiet: bool,
}

impl NodeOptions {
    /// Options delivering `payload`, quietly (benchmarks).
    pub fn with_payload_quiet(payload: PathBuf) -> NodeOptions {
        NodeOptions { payload: Some(payload), quiet: true, ..NodeOptions::default() }
    }

    /// Options using the named runtime policy, storing `file` under that name first.
    pub fn with_runtime_policy(file: PathBuf, name: &str) -> NodeOptions {
        NodeOptions { runtime_policy: Some(file), runtime_policy_name: Some(name.to_owned()), ..NodeOptions::default() }
    }
}

/// Tenant commands.
#[derive(Args)]
#[command(after_help = "\
Examples:
    cairn node add d432fbb3-… --runtime-policy policy.json --mb-refstate mb.json
    cairn node add d432fbb3-… --hvm    # a hypervisor host whose agent runs with --hvm
    cairn node add 5e0a…-vm --on-host d432fbb3-… --vm-policy vm.json --vm-uuid 6f1c2a3e-…
    cairn node list                 # table of every node: state, passes, last attestation, reason
    cairn node status d432fbb3-… --json
    cairn node reactivate d432fbb3-…   # after fixing a failed node
Exit codes: 0 done, 1 the verifier or registrar refused (the reason is printed), 2 usage or I/O error.")]
pub struct NodeArgs {
    #[command(flatten)]
    endpoints: Endpoints,
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Add a registered agent to the verifier with its policies; attestation starts at once.
    Add {
        /// The agent's id.
        uuid: String,
        #[command(flatten)]
        options: NodeOptions,
    },
    /// Replace a node's policies: remove it and add it again with these options (give every option
    /// again, as with Keylime's tenant); its history starts anew.
    Update {
        /// The agent's id.
        uuid: String,
        #[command(flatten)]
        options: NodeOptions,
    },
    /// Remove a node from the verifier.
    Delete {
        /// The agent's id.
        uuid: String,
    },
    /// One node's status, with the reasons it failed.
    Status {
        /// The agent's id.
        uuid: String,
    },
    /// Every node.
    List,
    /// Attest a failed or stopped node again, from scratch.
    Reactivate {
        /// The agent's id.
        uuid: String,
    },
    /// Stop attesting a node (it reads as FAIL until reactivated).
    Stop {
        /// The agent's id.
        uuid: String,
    },
    /// Check that a node holds the bootstrap key K (Keylime's `/keys/verify` challenge).
    VerifyKey {
        /// The agent's id.
        uuid: String,
        /// The key file written by `add --payload … --save-key FILE`.
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
}

impl NodeArgs {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let e = &self.endpoints;
        let http = client(e)?;
        let verifier = format!("{}/{API}", e.verifier.trim_end_matches('/'));
        match &self.command {
            NodeCommand::Add { uuid, options } => add(&http, e, uuid, options),
            NodeCommand::Update { uuid, options } => {
                let code = call(&http, reqwest::Method::DELETE, &format!("{verifier}/agents/{uuid}"), None)?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
                add(&http, e, uuid, options)
            }
            NodeCommand::Delete { uuid } => done(call(&http, reqwest::Method::DELETE, &format!("{verifier}/agents/{uuid}"), None)?, uuid, "deleted"),
            NodeCommand::Reactivate { uuid } => {
                done(call(&http, reqwest::Method::PUT, &format!("{verifier}/agents/{uuid}/reactivate"), None)?, uuid, "reactivated")
            }
            NodeCommand::VerifyKey { uuid, key_file } => verify_key(&http, e, uuid, key_file),
            NodeCommand::Stop { uuid } => done(call(&http, reqwest::Method::PUT, &format!("{verifier}/agents/{uuid}/stop"), None)?, uuid, "stopped"),
            NodeCommand::Status { uuid } => {
                let Some(view) = get::<AgentView>(&http, &format!("{verifier}/agents/{uuid}"))? else { return Ok(ExitCode::from(1)) };
                if e.json {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                } else {
                    print_table(std::slice::from_ref(&view));
                    for f in &view.failures {
                        println!("  {}: {}", f.check, f.message);
                    }
                    if let Some(b) = &view.vm_batch {
                        let vm = view.vm_uuid.as_deref().unwrap_or("-");
                        println!("VM evidence (vm {vm}, host {}): {} at {}", b.host, b.outcome, b.checked_at);
                        for f in &b.failures {
                            println!("  {}: {}", f.check, f.message);
                        }
                    }
                    if let Some(level) = &view.integrity_level {
                        println!("integrity level: {level}");
                        for r in &view.integrity_level_reasons {
                            println!("  {}", level_reason(r));
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            NodeCommand::List => {
                let url = format!("{}/cairn/v1/nodes", e.verifier.trim_end_matches('/'));
                let Some(views) = get::<Vec<AgentView>>(&http, &url)? else { return Ok(ExitCode::from(1)) };
                if e.json {
                    println!("{}", serde_json::to_string_pretty(&views)?);
                } else {
                    print_table(&views);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn done(code: ExitCode, uuid: &str, what: &str) -> anyhow::Result<ExitCode> {
    if code == ExitCode::SUCCESS {
        println!("{uuid}: {what}");
    }
    Ok(code)
}

/// `cairn node add`: the registrar's record of the agent plus `o`, posted to the verifier.
pub fn add(http: &reqwest::blocking::Client, e: &Endpoints, uuid: &str, o: &NodeOptions) -> anyhow::Result<ExitCode> {
    add_timed(http, e, uuid, o).map(|(code, _)| code)
}

/// As [`add`]; also returns the time from the start of the add to the agent proving it holds the
/// bootstrap key, when a payload was sent and waited for.
pub fn add_timed(
    http: &reqwest::blocking::Client,
    e: &Endpoints,
    uuid: &str,
    o: &NodeOptions,
) -> anyhow::Result<(ExitCode, Option<std::time::Duration>)> {
    let started = std::time::Instant::now();
    let reg_url = format!("{}/{API}/agents/{uuid}", e.registrar.trim_end_matches('/'));
    let Some(reg) = get::<AgentRecord>(http, &reg_url)? else { return Ok((ExitCode::from(1), None)) };
    let ip = o.ip.clone().or(reg.ip.clone()).context("the registrar has no address for this agent: give --ip")?;
    let port = o.port.or(reg.port).context("the registrar has no port for this agent: give --port")?;
    let on_host = match (&o.on_host, &reg.host_agent_id) {
        (Some(given), Some(issuer)) if given != issuer => {
            anyhow::bail!("--on-host {given}, but the registrar enrolled {uuid} as a VM of host {issuer} (whose vTPM CA issued its EK certificate)")
        }
        (given, issuer) => given.clone().or_else(|| issuer.clone()),
    };
    let runtime_policy = match &o.runtime_policy {
        Some(p) => Some(B64.encode(read_text(p)?)),
        None => None,
    };
    let mb = match &o.mb_refstate {
        Some(p) => Some(read_text(p)?),
        None => None,
    };
    let vm_policy = match &o.vm_policy {
        Some(p) => Some(read_text(p)?),
        None => None,
    };
    if let Some(t) = &o.tpm_policy {
        serde_json::from_str::<serde_json::Value>(t).context("--tpm-policy is not JSON")?;
    }
    let body = AddAgentRequest {
        cloudagent_ip: ip,
        cloudagent_port: port,
        ak_tpm: Some(reg.aik_tpm),
        mtls_cert: reg.mtls_cert,
        tpm_policy: o.tpm_policy.clone(),
        runtime_policy_name: o.runtime_policy_name.clone(),
        runtime_policy,
        mb_policy: mb,
        mb_policy_name: o.mb_policy_name.clone(),
        metadata: o.metadata.clone(),
        accept_tpm_hash_algs: if o.accept_hash.is_empty() { None } else { Some(o.accept_hash.clone()) },
        supported_version: Some(API.trim_start_matches('v').to_owned()),
        hvm_pcr: (o.hvm || o.hvm_pcr.is_some()).then(|| o.hvm_pcr.unwrap_or(cairn_agent::hvm::DEFAULT_PCR)),
        host_name: o.host_name.clone(),
        host_agent_id: on_host,
        vm_policy,
        vm_uuid: o.vm_uuid.clone(),
        ..AddAgentRequest::default()
    };
    let mut body = body;
    let bootstrap = match &o.payload {
        Some(path) => {
            let cert = body.mtls_cert.clone().context("the registrar holds no mTLS certificate for this agent")?;
            let agent = AgentEndpoint::new(e, &body.cloudagent_ip, body.cloudagent_port, &cert)?;
            let ak = body.ak_tpm.clone().unwrap_or_default();
            let payload = super::payload_zip::read(path)?;
            if let (Some(files), false) = (payload.zipped_files, o.quiet) {
                println!("payload: {} zipped ({files} files, {} bytes)", path.display(), payload.bytes.len());
            }
            let sent = bootstrap::send_u(&agent, uuid, &ak, &payload.bytes)?;
            body.v = Some(sent.v_b64.clone());
            Some((agent, sent))
        }
        None => None,
    };
    let url = format!("{}/{API}/agents/{uuid}", e.verifier.trim_end_matches('/'));
    let code = call(http, reqwest::Method::POST, &url, Some(serde_json::to_value(&body)?))?;
    if code != ExitCode::SUCCESS {
        return Ok((code, None));
    }
    if !o.quiet {
        println!("{uuid}: added; attestation started");
    }
    let mut released = None;
    if let Some((agent, sent)) = bootstrap {
        if let Some(file) = &o.save_key {
            bootstrap::save_key(file, &sent.k)?;
        }
        if !o.no_wait {
            bootstrap::wait_released(&agent, &sent.k, std::time::Duration::from_secs(120))?;
            let took = started.elapsed();
            released = Some(took);
            if !o.quiet {
                println!("{uuid}: the node attested and holds the key: payload released ({} ms after add)", took.as_millis());
            }
        }
    }
    Ok((ExitCode::SUCCESS, released))
}

fn verify_key(http: &reqwest::blocking::Client, e: &Endpoints, uuid: &str, key_file: &Path) -> anyhow::Result<ExitCode> {
    let reg_url = format!("{}/{API}/agents/{uuid}", e.registrar.trim_end_matches('/'));
    let Some(reg) = get::<AgentRecord>(http, &reg_url)? else { return Ok(ExitCode::from(1)) };
    let cert = reg.mtls_cert.context("the registrar holds no mTLS certificate for this agent")?;
    let ip = reg.ip.context("the registrar has no address for this agent")?;
    let port = reg.port.context("the registrar has no port for this agent")?;
    let agent = AgentEndpoint::new(e, &ip, port, &cert)?;
    let k = bootstrap::load_key(key_file)?;
    match bootstrap::verify_once(&agent, &k)? {
        true => {
            println!("{uuid}: holds the bootstrap key");
            Ok(ExitCode::SUCCESS)
        }
        false => {
            eprintln!("{uuid}: does not hold this bootstrap key");
            Ok(ExitCode::from(1))
        }
    }
}

/// An agent's API, reached with the tenant's certificate and the agent's pinned certificate.
pub struct AgentEndpoint {
    http: reqwest::blocking::Client,
    base: String,
}

impl AgentEndpoint {
    fn new(e: &Endpoints, ip: &str, port: u16, agent_cert_pem: &str) -> anyhow::Result<AgentEndpoint> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(agent_cert_pem.as_bytes()) {
            roots.add(c.context("the agent's mTLS certificate")?)?;
        }
        let cert = e.cert.clone().unwrap_or_else(|| e.tls_dir.join("client-cert.pem"));
        let key = e.key.clone().unwrap_or_else(|| e.tls_dir.join("client-key.pem"));
        let chain = CertificateDer::pem_file_iter(&cert)
            .with_context(|| format!("cannot read the client certificate {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("cannot read the client key {}", key.display()))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let http = reqwest::blocking::Client::builder().use_preconfigured_tls(tls).timeout(std::time::Duration::from_secs(30)).build()?;
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_owned() };
        Ok(AgentEndpoint { http, base: format!("https://{host}:{port}/{API}") })
    }

    /// GET a path; the `results` or the agent's reason.
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<Result<serde_json::Value, String>> {
        let url = format!("{}{path_and_query}", self.base);
        let resp = self.http.get(&url).send().with_context(|| format!("cannot reach the agent at {url}"))?;
        Ok(results(resp))
    }

    /// POST a body; Ok or the agent's reason.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Result<serde_json::Value, String>> {
        let url = format!("{}{path}", self.base);
        let resp = self.http.post(&url).json(body).send().with_context(|| format!("cannot reach the agent at {url}"))?;
        Ok(results(resp))
    }
}

fn results(resp: reqwest::blocking::Response) -> Result<serde_json::Value, String> {
    let status = resp.status();
    let env = resp.json::<Envelope<serde_json::Value>>();
    match env {
        Ok(e) if status.is_success() => Ok(e.results),
        Ok(e) => Err(format!("HTTP {status}: {}", e.status)),
        Err(err) => Err(format!("HTTP {status}: unreadable reply ({err})")),
    }
}

fn read_text(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

fn client(e: &Endpoints) -> anyhow::Result<reqwest::blocking::Client> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = e.cert.clone().unwrap_or_else(|| e.tls_dir.join("client-cert.pem"));
    let key = e.key.clone().unwrap_or_else(|| e.tls_dir.join("client-key.pem"));
    let ca = e.ca.clone().unwrap_or_else(|| e.tls_dir.join("ca-cert.pem"));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).with_context(|| format!("cannot read the CA {}", ca.display()))? {
        roots.add(c.with_context(|| format!("{}", ca.display()))?)?;
    }
    let chain = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("cannot read the client certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("cannot read the client key {}", key.display()))?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(std::time::Duration::from_secs(60))
        .build()?)
}

/// A request whose result is only success or the server's reason (printed); exit 1 on refusal.
fn call(http: &reqwest::blocking::Client, method: reqwest::Method, url: &str, body: Option<serde_json::Value>) -> anyhow::Result<ExitCode> {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    let why = resp.json::<Envelope<serde_json::Value>>().map(|e| e.status).unwrap_or_default();
    eprintln!("refused ({status}): {why}");
    Ok(ExitCode::from(1))
}

/// A GET's `results`, or None after printing the server's reason.
pub(crate) fn get<T: serde::de::DeserializeOwned>(http: &reqwest::blocking::Client, url: &str) -> anyhow::Result<Option<T>> {
    let resp = http.get(url).send().with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body = resp.bytes()?;
    if !status.is_success() {
        let why = serde_json::from_slice::<Envelope<serde_json::Value>>(&body).map(|e| e.status).unwrap_or_default();
        eprintln!("{url}: {status}: {why}");
        return Ok(None);
    }
    match serde_json::from_slice::<Envelope<T>>(&body) {
        Ok(e) => Ok(Some(e.results)),
        Err(err) => bail!("{url}: unexpected reply: {err}"),
    }
}

/// One integrity-level reason in a line: what keeps the node below `ima_all_ok`.
pub fn level_reason(r: &serde_json::Value) -> String {
    let t = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
    let paths = || r["paths"].as_array().map(|p| p.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    match r["kind"].as_str() {
        Some("boot_untrusted") => format!("boot untrusted: {}", t("reason")),
        Some("digest_not_found") => format!("unknown digest {} of {}", t("digest"), t("path")),
        Some("security_update") => {
            format!("{} {} has a security fix in {} (newest {}): {}", t("package"), t("installed"), t("fixed_in"), t("newest"), paths())
        }
        Some("update") => format!("{} {} has an update to {}: {}", t("package"), t("installed"), t("newest"), paths()),
        _ => r.to_string(),
    }
}

/// The fleet table.
pub fn print_table(views: &[AgentView]) {
    println!(
        "{:<64} {:<11} {:<6} {:>6}  {:<19} {:<28} REASON",
        "NODE", "STATE", "STATUS", "PASSES", "LAST ATTESTED (UTC)", "INTEGRITY LEVEL"
    );
    for v in views {
        let reason = v.failures.first().map(|f| format!("{}: {}", f.check, f.message)).unwrap_or_default();
        let reason: String = reason.chars().take(100).collect();
        println!(
            "{:<64} {:<11} {:<6} {:>6}  {:<19} {:<28} {reason}",
            v.agent_id,
            v.cairn_state,
            v.attestation_status,
            v.attestation_count,
            utc(v.last_successful_attestation),
            v.integrity_level.as_deref().unwrap_or("-")
        );
    }
}

fn utc(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    cairn_verifier::revoke::Civil::utc(unix).to_string()
}
