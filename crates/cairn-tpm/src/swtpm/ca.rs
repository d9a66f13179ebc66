//! A local certificate authority for swtpm's EK and platform certificates.
//!
//! `swtpm_setup` delegates certificate creation to `swtpm_localca`, configured by two files
//! (`swtpm-localca.conf`, `swtpm-localca.options`); `swtpm_setup` itself reads a third
//! (`swtpm_setup.conf`). We write all three into the CA directory and pass them explicitly, so
//! the user's and the system's swtpm configuration are never read or touched.
//!
//! `swtpm_localca` creates its root and intermediate CA the first time it signs something. A
//! registrar must trust those before any TPM exists, so [`SwtpmCa::create`] makes it sign one
//! throw-away certificate at once, leaving the root and issuer PEMs in place.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{find_program, run};
use crate::error::TpmError;

/// Root CA certificate file name, as `swtpm_localca` names it.
const ROOT_CERT: &str = "swtpm-localca-rootca-cert.pem";
/// Intermediate (issuer) certificate file name, as configured below.
const ISSUER_CERT: &str = "issuercert.pem";

/// How long to wait for another process bootstrapping the same CA.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(30);

/// A directory holding a `swtpm_localca` CA and the configuration files pointing at it.
#[derive(Clone, Debug)]
pub struct SwtpmCa {
    dir: PathBuf,
}

impl SwtpmCa {
    /// Creates (or reopens) the CA in `dir`: writes the configuration files and, if the CA does
    /// not exist yet, has `swtpm_localca` create its root and intermediate.
    pub fn create(dir: &Path) -> Result<SwtpmCa, TpmError> {
        fs::create_dir_all(dir).map_err(TpmError::io(dir))?;
        let dir = fs::canonicalize(dir).map_err(TpmError::io(dir))?;
        let ca = SwtpmCa { dir };
        ca.write_config()?;
        if !ca.exists() {
            ca.bootstrap_once()?;
        }
        Ok(ca)
    }

    fn exists(&self) -> bool {
        self.root_pem().exists() && self.issuer_pem().exists()
    }

    /// Bootstraps the CA unless another process is doing it, in which case waits for that.
    /// (Test runners such as nextest run each test in its own process, all sharing one CA.)
    fn bootstrap_once(&self) -> Result<(), TpmError> {
        let lock = self.dir.join("bootstrap.lock");
        let deadline = Instant::now() + BOOTSTRAP_WAIT;
        loop {
            match fs::create_dir(&lock) {
                Ok(()) => {
                    let result = if self.exists() { Ok(()) } else { self.bootstrap() };
                    let _ = fs::remove_dir(&lock);
                    return result;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() > deadline {
                        // The holder died mid-way: take the lock over.
                        let _ = fs::remove_dir(&lock);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Err(e) => return Err(TpmError::Io { path: lock, source: e }),
            }
        }
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The self-signed root certificate (PEM).
    pub fn root_pem(&self) -> PathBuf {
        self.dir.join(ROOT_CERT)
    }

    /// The intermediate certificate that signs EK certificates (PEM).
    pub fn issuer_pem(&self) -> PathBuf {
        self.dir.join(ISSUER_CERT)
    }

    /// The `swtpm_setup` configuration file naming this CA.
    pub fn setup_config(&self) -> PathBuf {
        self.dir.join("swtpm_setup.conf")
    }

    fn localca_config(&self) -> PathBuf {
        self.dir.join("swtpm-localca.conf")
    }

    fn localca_options(&self) -> PathBuf {
        self.dir.join("swtpm-localca.options")
    }

    fn write_config(&self) -> Result<(), TpmError> {
        let d = self.dir.display();
        let localca = format!(
            "statedir = {d}\nsigningkey = {d}/signkey.pem\nissuercert = {d}/{ISSUER_CERT}\ncertserial = {d}/certserial\n"
        );
        let options = "--platform-manufacturer Cairn\n--platform-version 2.1\n--platform-model swtpm\n";
        let tool = find_program("swtpm_localca", &["/usr/share/swtpm/swtpm-localca"])?;
        let setup = format!(
            "create_certs_tool = {}\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\n",
            tool.display(),
            self.localca_config().display(),
            self.localca_options().display()
        );
        for (path, text) in [
            (self.localca_config(), localca),
            (self.localca_options(), options.to_owned()),
            (self.setup_config(), setup),
        ] {
            write_if_changed(&path, &text)?;
        }
        Ok(())
    }

    /// Signs a throw-away EK certificate so that `swtpm_localca` creates the CA now.
    fn bootstrap(&self) -> Result<(), TpmError> {
        let scratch = self.dir.join("bootstrap");
        fs::create_dir_all(&scratch).map_err(TpmError::io(&scratch))?;
        let tool = find_program("swtpm_localca", &["/usr/share/swtpm/swtpm-localca"])?;
        // Any 2048-bit modulus will do: the certificate is discarded.
        let modulus = "c5".repeat(256);
        let mut cmd = Command::new(tool);
        cmd.arg("--type")
            .arg("ek")
            .arg("--ek")
            .arg(modulus)
            .arg("--dir")
            .arg(&scratch)
            .args(["--tpm-spec-family", "2.0", "--tpm-spec-level", "0", "--tpm-spec-revision", "164"])
            .args(["--tpm-manufacturer", "id:00001014", "--tpm-model", "swtpm", "--tpm-version", "id:20191023"])
            .arg("--tpm2")
            .arg("--configfile")
            .arg(self.localca_config())
            .arg("--optsfile")
            .arg(self.localca_options())
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", &self.dir);
        let result = run(cmd, "swtpm_localca");
        let _ = fs::remove_dir_all(&scratch);
        result?;
        if self.root_pem().exists() && self.issuer_pem().exists() {
            Ok(())
        } else {
            Err(TpmError::ProgramFailed {
                program: "swtpm_localca",
                status: "succeeded".into(),
                output: format!("but {} or {} is missing", self.root_pem().display(), self.issuer_pem().display()),
            })
        }
    }
}

/// Writes `text` to `path` unless it already holds exactly that, via a temporary file and a
/// rename, so a concurrent reader (another test's swtpm_setup) never sees a truncated file.
fn write_if_changed(path: &Path, text: &str) -> Result<(), TpmError> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    fs::write(&tmp, text).map_err(TpmError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(TpmError::io(path))
}
