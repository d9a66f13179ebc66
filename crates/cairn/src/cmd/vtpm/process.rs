//! The vTPM's swtpm process and how its state key reaches it.
//!
//! The key reaches swtpm and swtpm_setup only through a file in a fresh 0700 directory on a tmpfs
//! (`$XDG_RUNTIME_DIR`, else `/dev/shm`), never a command line or the disk: swtpm is told to
//! delete the file once read (`remove=true`), and the directory goes when [`KeyFile`] drops.
//!
//! swtpm daemonizes itself (`-d`) after binding its sockets and, with `--flags startup-clear`,
//! after decrypting its state, so once it returns the vTPM is ready or has said why not. It
//! writes its pid file; [`running`] trusts a pid only while `/proc/PID/comm` is `swtpm`, so a
//! stale file never names another process.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

use super::layout::VmPaths;

/// How long swtpm may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The state key in a private tmpfs file, removed on drop.
pub struct KeyFile {
    dir: TempDir,
    path: PathBuf,
}

impl KeyFile {
    /// Writes `key` as binary (`hex = false`, for `swtpm --key format=binary`) or as hex text (for
    /// `swtpm_setup --keyfile`).
    pub fn new(key: &[u8], hex: bool) -> anyhow::Result<KeyFile> {
        let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_dir());
        let base = base.unwrap_or_else(|| PathBuf::from("/dev/shm"));
        let dir = tempfile::Builder::new()
            .prefix("cairn-vtpm-")
            .tempdir_in(&base)
            .with_context(|| format!("cannot make a private key directory in {}", base.display()))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.path().display()))?;
        let path = dir.path().join("key");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let written = if hex { f.write_all(hex::encode(key).as_bytes()) } else { f.write_all(key) };
        written.with_context(|| format!("cannot write {}", path.display()))?;
        Ok(KeyFile { dir, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        // Overwrite before unlinking, in case swtpm did not remove it.
        if let Ok(len) = std::fs::metadata(&self.path).map(|m| m.len()) {
            let _ = std::fs::write(&self.path, vec![0u8; usize::try_from(len).unwrap_or(0)]);
        }
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

/// Where the started swtpm listens.
#[derive(Clone, Copy, Debug)]
pub enum Listen {
    /// The unixio control socket QEMU's `-tpmdev emulator` uses; QEMU initialises the TPM.
    Qemu,
    /// Loopback TCP data port P and control port P+1, TPM started (for tests and tools: the
    /// `swtpm:` TCTI).
    Tcp(u16),
}

/// Starts swtpm daemonized on `paths`'s state with the state key in `key` (binary).
pub fn start(paths: &VmPaths, key: &KeyFile, listen: Listen) -> anyhow::Result<u32> {
    let pid_file = paths.pid();
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = Command::new("swtpm");
    cmd.args(["socket", "--tpm2", "-d"])
        .arg("--tpmstate")
        .arg(format!("dir={},mode=0600", paths.state().display()))
        .arg("--key")
        .arg(format!("file={},format=binary,mode=aes-256-cbc,remove=true", key.path().display()))
        .arg("--pid")
        .arg(format!("file={}", pid_file.display()))
        .arg("--log")
        .arg(format!("file={},truncate", paths.log().display()));
    match listen {
        Listen::Qemu => {
            let _ = std::fs::remove_file(paths.socket());
            cmd.arg("--ctrl").arg(format!("type=unixio,path={},mode=0600", paths.socket().display()));
        }
        Listen::Tcp(port) => {
            let ctrl = port.checked_add(1).context("--tcp port must be below 65535")?;
            cmd.arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
                .args(["--flags", "startup-clear"]);
        }
    }
    let out = cmd.output().context("cannot run swtpm (install swtpm)")?;
    if !out.status.success() {
        let log = std::fs::read_to_string(paths.log()).unwrap_or_default();
        bail!(
            "swtpm for {} failed to start ({}): {}{}",
            paths.root.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            log.trim()
        );
    }
    match running(paths) {
        Some(pid) => Ok(pid),
        None => bail!("swtpm for {} started but left no live pid in {}", paths.root.display(), pid_file.display()),
    }
}

/// The pid of the vTPM's swtpm, if it runs.
pub fn running(paths: &VmPaths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(paths.pid()).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    // A zombie (exited, not yet reaped) does not run.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    (comm.trim() == "swtpm" && state != Some("Z")).then_some(pid)
}

/// Stops the vTPM's swtpm (SIGTERM, then SIGKILL after a grace period); `Ok(None)` if it did not
/// run. Removes the pid file and the socket.
pub fn stop(paths: &VmPaths) -> anyhow::Result<Option<u32>> {
    let Some(pid) = running(paths) else {
        let _ = std::fs::remove_file(paths.pid());
        return Ok(None);
    };
    let target = rustix::process::Pid::from_raw(i32::try_from(pid).context("pid out of range")?)
        .context("pid 0 in the pid file")?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal swtpm (pid {pid})"))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Path::new(&format!("/proc/{pid}")).exists() && running(paths).is_some() {
        if Instant::now() > deadline {
            let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(50));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(paths.pid());
    let _ = std::fs::remove_file(paths.socket());
    Ok(Some(pid))
}
