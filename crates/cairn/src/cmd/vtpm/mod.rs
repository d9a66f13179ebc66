//! `cairn vtpm create|start|stop|destroy|list`: one swtpm per VM, its state encrypted at rest with
//! a key only the host TPM can unseal, its EK certified by a host vTPM CA. See docs/vtpm.md.

mod ca;
mod layout;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cairn_tpm::swtpm::free_port_pair;
use cairn_tpm::vtpm::SealedKey;
use cairn_tpm::{EkKind, Tpm};
use clap::{Args, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use layout::{default_ca_dir, Entry, VmId, VmPaths};
use process::{KeyFile, Listen};

/// Bytes of the vTPM state key (AES-256).
const KEY_LEN: usize = 32;
/// Longest unix socket path (sun_path holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Fresh port pairs tried for the short start-up that reads the new vTPM's EK.
const READ_EK_ATTEMPTS: u32 = 4;

/// vTPMs for VMs: one host-managed swtpm each, state sealed to the host TPM.
#[derive(Subcommand)]
pub enum VtpmCommand {
    /// Create a VM's vTPM: seal a new state key to the host TPM, manufacture the vTPM with an EK
    /// certificate from the vTPM CA, record it in the inventory.
    Create(CreateArgs),
    /// Unseal the state key with the host TPM and start the VM's swtpm; prints the socket path.
    Start(StartArgs),
    /// Stop the VM's swtpm.
    Stop(VmArgs),
    /// Stop the VM's swtpm and delete its state, sealed key and inventory entry.
    Destroy(VmArgs),
    /// The inventory, with each vTPM running or stopped.
    List(ListArgs),
}

impl VtpmCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            VtpmCommand::Create(a) => a.run(),
            VtpmCommand::Start(a) => a.run(),
            VtpmCommand::Stop(a) => a.stop(),
            VtpmCommand::Destroy(a) => a.destroy(),
            VtpmCommand::List(a) => a.run(),
        }
    }
}

/// A VM and the vTPM directory.
#[derive(Args)]
pub struct VmArgs {
    /// VM id (letters, digits, '.', '_', '-').
    vm: String,
    /// Directory holding one subdirectory per VM.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

impl VmArgs {
    fn paths(&self) -> anyhow::Result<(VmId, VmPaths)> {
        let vm = VmId::parse(&self.vm)?;
        let paths = VmPaths::new(&self.dir, &vm)?;
        Ok((vm, paths))
    }

    fn stop(self) -> anyhow::Result<ExitCode> {
        let (vm, paths) = self.paths()?;
        Entry::read(&paths)?;
        match process::stop(&paths)? {
            Some(pid) => println!("stopped vTPM of {} (pid {pid})", vm.as_str()),
            None => println!("vTPM of {} was not running", vm.as_str()),
        }
        Ok(ExitCode::SUCCESS)
    }

    fn destroy(self) -> anyhow::Result<ExitCode> {
        let (vm, paths) = self.paths()?;
        if !paths.root.is_dir() {
            bail!("no vTPM for VM {} in {}", vm.as_str(), paths.root.display());
        }
        process::stop(&paths)?;
        std::fs::remove_dir_all(&paths.root).with_context(|| format!("cannot remove {}", paths.root.display()))?;
        println!("destroyed vTPM of {}", vm.as_str());
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `cairn vtpm create`.
#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// The host TPM the state key is sealed to, e.g. device:/dev/tpmrm0.
    #[arg(long, value_name = "TCTI")]
    host_tcti: String,
    /// The vTPM CA directory (its key lives in the host TPM; created if missing) [default: DIR/.vtpm-ca].
    #[arg(long, value_name = "CADIR")]
    ca_dir: Option<PathBuf>,
}

impl CreateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let (vm, paths) = self.vm.paths()?;
        if paths.root.exists() {
            bail!("a vTPM for VM {} exists already in {}", vm.as_str(), paths.root.display());
        }
        let ca_dir = self.ca_dir.clone().unwrap_or_else(|| default_ca_dir(&self.vm.dir));
        std::fs::create_dir_all(&self.vm.dir).with_context(|| format!("cannot create {}", self.vm.dir.display()))?;
        make_private_dir(&paths.root)?;
        let result = self.create(&vm, &paths, &ca_dir);
        if result.is_err() {
            let _ = process::stop(&paths);
            let _ = std::fs::remove_dir_all(&paths.root);
        }
        let entry = result?;
        println!("created vTPM of {}: EK sha256 {}, state {}", entry.vm, entry.ek_public_sha256, entry.state_dir.display());
        Ok(ExitCode::SUCCESS)
    }

    fn create(&self, vm: &VmId, paths: &VmPaths, ca_dir: &Path) -> anyhow::Result<Entry> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut_slice()).map_err(|_| anyhow::anyhow!("no randomness for the state key"))?;
        let sealed = {
            let mut host = Tpm::open(&self.host_tcti)?;
            host.seal(key.as_slice()).context("sealing the state key to the host TPM")?
        };
        write(&paths.sealed_pub(), &sealed.public)?;
        write(&paths.sealed_priv(), &sealed.private)?;

        let now = unix_now();
        let ca = ca::VtpmCa::open_or_create(ca_dir, &self.host_tcti, now).context("preparing the vTPM CA")?;
        make_private_dir(&paths.state())?;
        manufacture(paths, key.as_slice())?;
        let (ek, cert) = certify_ek(paths, key.as_slice(), |ek| ca.issue_ek_certificate(&self.host_tcti, &ek.public, now))?;
        write(&paths.ek_cert(), &cert)?;

        let entry = Entry {
            vm: vm.as_str().to_owned(),
            state_dir: paths.state(),
            socket: paths.socket(),
            ek_public_sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ek.public)),
            ek_name: hex::encode(&ek.name),
            ek_cert: paths.ek_cert(),
            ca_dir: std::path::absolute(ca_dir).unwrap_or_else(|_| ca_dir.to_owned()),
            sealed_key: [file_name(&paths.sealed_pub()), file_name(&paths.sealed_priv())],
            created: u64::try_from(now).unwrap_or(0),
        };
        entry.write(paths)?;
        Ok(entry)
    }
}

/// Runs swtpm_setup on the (empty) state directory: EKs without certificates (the vTPM CA writes
/// the RSA-2048 EK's next), the state encrypted with `key`. An empty configuration keeps any
/// site-wide swtpm_setup.conf (and its certificate tool) out of it.
fn manufacture(paths: &VmPaths, key: &[u8]) -> anyhow::Result<()> {
    let key_file = KeyFile::new(key, true)?;
    let config = paths.root.join("swtpm_setup.conf");
    write(&config, b"")?;
    let out = Command::new("swtpm_setup")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(paths.state())
        .args(["--createek", "--pcr-banks", "sha256", "--cipher", "aes-256-cbc"])
        .arg("--keyfile")
        .arg(key_file.path())
        .arg("--config")
        .arg(&config)
        .env("HOME", &paths.root)
        .env("XDG_CONFIG_HOME", &paths.root)
        .output();
    let _ = std::fs::remove_file(&config);
    let out = out.context("cannot run swtpm_setup (install swtpm-tools)")?;
    if !out.status.success() {
        bail!(
            "swtpm_setup failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Starts the new vTPM briefly on loopback TCP, reads its RSA-2048 EK, writes the certificate
/// `issue` makes for it into the EK certificate index, and reads that back.
fn certify_ek(
    paths: &VmPaths,
    key: &[u8],
    issue: impl Fn(&cairn_tpm::Ek) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(cairn_tpm::Ek, Vec<u8>)> {
    let mut last = None;
    for _ in 0..READ_EK_ATTEMPTS {
        let port = free_port_pair()?;
        let key_file = KeyFile::new(key, false)?;
        if let Err(e) = process::start(paths, &key_file, Listen::Tcp(port)) {
            last = Some(e);
            continue;
        }
        let done = (|| -> anyhow::Result<_> {
            let mut tpm = Tpm::open(&format!("swtpm:host=127.0.0.1,port={port}"))?;
            let ek = tpm.ek(EkKind::Rsa2048)?;
            let cert = issue(&ek)?;
            tpm.write_ek_certificate(EkKind::Rsa2048, &cert).context("writing the EK certificate into the vTPM")?;
            let stored = tpm.ek_certificate(EkKind::Rsa2048)?.context("the vTPM holds no RSA-2048 EK certificate")?;
            if stored != cert {
                bail!("the vTPM's EK certificate reads back different from what was written");
            }
            Ok((ek, cert))
        })();
        process::stop(paths)?;
        return done.context("certifying the new vTPM's EK");
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")).context("starting the new vTPM to certify its EK"))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Arguments of `cairn vtpm start`.
#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    vm: VmArgs,
    /// The host TPM holding the state key, e.g. device:/dev/tpmrm0.
    #[arg(long, value_name = "TCTI")]
    host_tcti: String,
    /// For tests and tools: serve the TPM on loopback TCP PORT (control PORT+1), started, instead
    /// of QEMU's control socket; prints the TCTI.
    #[arg(long, value_name = "PORT")]
    tcp: Option<u16>,
}

impl StartArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let (vm, paths) = self.vm.paths()?;
        let entry = Entry::read(&paths)?;
        if let Some(pid) = process::running(&paths) {
            bail!("the vTPM of {} runs already (pid {pid})", vm.as_str());
        }
        let listen = match self.tcp {
            Some(port) => Listen::Tcp(port),
            None => {
                let len = paths.socket().as_os_str().len();
                if len > MAX_SOCKET_PATH {
                    bail!("socket path {} is {len} bytes, over the {MAX_SOCKET_PATH} a unix socket allows", paths.socket().display());
                }
                Listen::Qemu
            }
        };
        let sealed = SealedKey {
            public: crate::cmd::read(&paths.root.join(&entry.sealed_key[0]))?,
            private: crate::cmd::read(&paths.root.join(&entry.sealed_key[1]))?,
        };
        let key = {
            let mut host = Tpm::open(&self.host_tcti)?;
            host.unseal(&sealed)
                .with_context(|| format!("unsealing the state key of {} with the host TPM {}", vm.as_str(), self.host_tcti))?
        };
        let key_file = KeyFile::new(key.bytes(), false)?;
        drop(key);
        let pid = process::start(&paths, &key_file, listen)?;
        drop(key_file);
        match self.tcp {
            Some(port) => println!("swtpm:host=127.0.0.1,port={port}"),
            None => println!("{}", paths.socket().display()),
        }
        eprintln!("started vTPM of {} (pid {pid})", vm.as_str());
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `cairn vtpm list`.
#[derive(Args)]
pub struct ListArgs {
    /// Directory holding one subdirectory per VM.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ListArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let mut rows = Vec::new();
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(l) => l.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", self.dir.display())),
        };
        let mut names: Vec<String> = listing;
        names.sort();
        for name in names {
            let Ok(vm) = VmId::parse(&name) else { continue };
            let paths = VmPaths::new(&self.dir, &vm)?;
            if !paths.entry().is_file() {
                continue;
            }
            let entry = Entry::read(&paths)?;
            rows.push((entry, process::running(&paths)));
        }
        if self.json {
            let out: Vec<_> = rows
                .iter()
                .map(|(e, pid)| {
                    json!({
                        "vm": e.vm,
                        "state": if pid.is_some() { "running" } else { "stopped" },
                        "pid": pid,
                        "socket": e.socket,
                        "state_dir": e.state_dir,
                        "ek_public_sha256": e.ek_public_sha256,
                        "ek_name": e.ek_name,
                        "ek_cert": e.ek_cert,
                        "ca_dir": e.ca_dir,
                        "sealed_key": e.sealed_key,
                        "created": e.created,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{:<24} {:<8} {:>8} {:<16} SOCKET", "VM", "STATE", "PID", "EK SHA-256");
            for (e, pid) in &rows {
                let short = e.ek_public_sha256.get(..16).unwrap_or(&e.ek_public_sha256);
                let pid = pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
                let state = if pid == "-" { "stopped" } else { "running" };
                println!("{:<24} {state:<8} {pid:>8} {short:<16} {}", e.vm, e.socket.display());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Creates a directory (and its parents) readable by its owner only.
fn make_private_dir_all(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Creates a directory readable by its owner only.
fn make_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
