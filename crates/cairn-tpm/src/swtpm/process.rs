//! One swtpm process: manufacture, port choice, start-up, readiness, and a guaranteed stop.
//!
//! Ports: swtpm's TCTI expects the control port right after the data port, so we look for a
//! free pair (P, P+1) by binding both, release them, and start swtpm there. Another process can
//! take a port in between; swtpm then dies at once, and we try another pair.
//!
//! Lifetime: swtpm runs under a small `sh` guard whose stdin is a pipe from us. When the pipe
//! closes — on [`Swtpm::stop`], on drop, or because this process died in any way, even SIGKILL —
//! the guard kills swtpm by PID. So a crashed test never leaves a swtpm behind.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_program, run, SwtpmCa};
use crate::error::TpmError;
use crate::tpm::Tpm;

/// Fresh port pairs tried before giving up.
const START_ATTEMPTS: u32 = 8;
/// How long a started swtpm may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long swtpm may take to exit after being told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// File (in the state directory) receiving swtpm's diagnostics.
const LOG_FILE: &str = "swtpm.log";
/// The state file swtpm keeps once a TPM 2.0 has been manufactured.
const STATE_FILE: &str = "tpm2-00.permall";

/// Runs swtpm (`$0 "$@"`) in the background, prints its PID, kills it when stdin reaches EOF,
/// and exits with swtpm's status.
///
/// It first closes every descriptor it inherited above stderr. libtss2's swtpm TCTI opens its
/// sockets without close-on-exec, so a swtpm started while another thread of this process holds a
/// TPM connection would otherwise inherit that connection and keep it open after its owner closed
/// it; swtpm serves one client at a time and would then wait on the ghost forever. (bash, because
/// dash cannot name descriptors above 9.)
const GUARD: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; case $n in 0|1|2) ;; *) eval "exec $n>&-" 2>/dev/null ;; esac; done
exec 3<&0
"$0" "$@" 3<&- </dev/null >&2 &
p=$!
echo "$p"
( read -r _ <&3; kill -TERM "$p" 2>/dev/null ) &
w=$!
wait "$p"; rc=$?
kill "$w" 2>/dev/null
exit "$rc""#;

/// How to start a [`Swtpm`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SwtpmOptions<'a> {
    /// Manufacture the TPM with `swtpm_setup` (EK certificates from this CA, all four SHA
    /// banks) when the state directory holds no TPM yet.
    pub with_ek_certs: Option<&'a SwtpmCa>,
    /// Data port (control = port + 1); `None` picks a free pair.
    pub port: Option<u16>,
}

/// A running swtpm; stopped on drop.
#[derive(Debug)]
pub struct Swtpm {
    guard: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    port: u16,
    state_dir: PathBuf,
}

impl Swtpm {
    /// Starts swtpm with its state in `state_dir` (created if needed) and waits until it answers.
    pub fn start(state_dir: &Path, opts: SwtpmOptions<'_>) -> Result<Swtpm, TpmError> {
        fs::create_dir_all(state_dir).map_err(TpmError::io(state_dir))?;
        let state_dir = fs::canonicalize(state_dir).map_err(TpmError::io(state_dir))?;
        if let Some(ca) = opts.with_ek_certs {
            if !state_dir.join(STATE_FILE).exists() {
                manufacture(&state_dir, ca)?;
            }
        }
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = match opts.port {
                Some(p) => p,
                None => free_port_pair()?,
            };
            match Swtpm::spawn(&state_dir, port)?.wait_ready() {
                Ok(swtpm) => return Ok(swtpm),
                Err(Died(log)) if opts.port.is_none() => last = log,
                Err(Died(log)) => return Err(TpmError::SwtpmStart(log)),
            }
        }
        Err(TpmError::SwtpmStart(format!("no usable port pair after {START_ATTEMPTS} attempts; last: {last}")))
    }

    /// The TCTI string for [`Tpm::open`].
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The data port (the control port is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The swtpm process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stops swtpm and waits for it to exit.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn spawn(state_dir: &Path, port: u16) -> Result<Swtpm, TpmError> {
        let program = find_program("swtpm", &[])?;
        let log_path = state_dir.join(LOG_FILE);
        let log = File::create(&log_path).map_err(TpmError::io(&log_path))?;
        let ctrl = u32::from(port) + 1;
        let mut guard = Command::new("bash")
            .arg("-c")
            .arg(GUARD)
            .arg(program)
            .args(["socket", "--tpm2", "--flags", "startup-clear"])
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", state_dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|source| TpmError::Spawn { program: "sh (swtpm guard)", source })?;
        let stdin = guard.stdin.take();
        let mut line = String::new();
        if let Some(out) = guard.stdout.take() {
            // The guard prints swtpm's PID first thing; EOF here means it failed to start swtpm.
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let pid = line.trim().parse::<u32>().unwrap_or(0);
        let swtpm = Swtpm { guard, stdin, pid, port, state_dir: state_dir.to_owned() };
        if pid == 0 {
            return Err(TpmError::SwtpmStart(format!("the guard shell reported no PID: {}", swtpm.log_tail())));
        }
        Ok(swtpm)
    }

    /// Polls until the TPM answers a command, or swtpm exits (`Died` with its log).
    fn wait_ready(mut self) -> Result<Swtpm, Died> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let tcti = self.tcti();
        loop {
            if let Ok(Some(status)) = self.guard.try_wait() {
                return Err(Died(format!("swtpm exited ({status}): {}", self.log_tail())));
            }
            // Talk to the TPM only once *our* swtpm listens on both ports: another process may
            // hold them, and then our swtpm is about to die while theirs would answer.
            if self.owns_ports() {
                if let Ok(mut tpm) = Tpm::open(&tcti) {
                    if tpm.handle_exists(0x8100_0000).is_ok() {
                        return Ok(self);
                    }
                }
            }
            if Instant::now() > deadline {
                let log = format!("no answer within {READY_TIMEOUT:?}: {}", self.log_tail());
                self.shutdown();
                return Err(Died(log));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether our swtpm listens on its data and control ports. Where /proc cannot tell, falls
    /// back to "something accepts connections there".
    fn owns_ports(&self) -> bool {
        let ctrl = self.port.wrapping_add(1);
        match (listener_owner(self.pid, self.port), listener_owner(self.pid, ctrl)) {
            (Some(a), Some(b)) => a && b,
            _ => listening(self.port) && listening(ctrl),
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.state_dir.join(LOG_FILE)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Closes the guard's stdin (it then kills swtpm by PID) and reaps it; kills outright if it
    /// does not finish in time.
    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.guard.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        if self.pid != 0 {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        }
        let _ = self.guard.kill();
        let _ = self.guard.wait();
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.shutdown();
        }
    }
}

/// swtpm exited (or never answered) during start-up; the text says why.
struct Died(String);

/// Whether something accepts TCP connections on loopback `port`.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(200)).is_ok()
}

/// Whether process `pid` holds the loopback TCP listener on `port`: the listener's socket inode
/// (from /proc/net/tcp) is among the process's open files. `None` if /proc/net/tcp is unreadable.
fn listener_owner(pid: u32, port: u16) -> Option<bool> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let wanted = format!(":{port:04X}");
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is column 9.
            let local = cols.get(1)?;
            (local.ends_with(&wanted) && cols.get(3) == Some(&"0A")).then(|| cols.get(9).copied()).flatten()
        })
        .collect();
    if inodes.is_empty() {
        return Some(false);
    }
    // An unreadable fd directory means the process is gone.
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Some(false);
    };
    Some(fds.filter_map(Result::ok).filter_map(|e| fs::read_link(e.path()).ok()).any(|target| {
        let t = target.to_string_lossy();
        inodes.iter().any(|i| t == format!("socket:[{i}]"))
    }))
}

/// Lowest and highest data port picked: below Linux's default ephemeral range (32768–60999).
///
/// libtss2's swtpm TCTI opens a TCP connection per command, so a busy test run leaves thousands of
/// client sockets in TIME-WAIT on ephemeral ports; a swtpm listening port picked from that range
/// can collide with one of them and fail to bind. Below the range, client sockets never land.
const PORT_RANGE: std::ops::Range<u16> = 10_000..32_000;

/// A data port P such that P and P+1 could both be bound on loopback just now.
pub fn free_port_pair() -> Result<u16, TpmError> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed);
    let span = u64::from(PORT_RANGE.end - PORT_RANGE.start) / 2;
    for _ in 0..128 {
        // xorshift: cheap, different per process, thread and call.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = PORT_RANGE.start + 2 * u16::try_from(x % span).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(TpmError::SwtpmStart("found no free loopback port pair".into()))
}

/// Runs `swtpm_setup`: EK certificates from `ca`, platform certificate, all SHA banks.
fn manufacture(state_dir: &Path, ca: &SwtpmCa) -> Result<(), TpmError> {
    let mut cmd = Command::new(find_program("swtpm_setup", &[])?);
    cmd.arg("--tpm2")
        .arg("--tpmstate")
        .arg(state_dir)
        .args(["--create-ek-cert", "--create-platform-cert", "--not-overwrite"])
        .args(["--pcr-banks", "sha1,sha256,sha384,sha512"])
        .arg("--config")
        .arg(ca.setup_config())
        .env("HOME", ca.dir())
        .env("XDG_CONFIG_HOME", ca.dir());
    run(cmd, "swtpm_setup").map(|_| ())
}
