//! Revocation actions: the local programs an agent runs when a verified revocation arrives.
//!
//! The interface (also in `cairn agent --help` and the README):
//! - every **executable regular file** in the actions directory (symbolic links to one count;
//!   names starting with `.` are skipped) runs, one after the other, in byte order of name;
//! - its **stdin** is the revocation message exactly as the verifier signed it (JSON text);
//! - its **environment** is the agent's plus `CAIRN_REVOKED_AGENT_ID`, `CAIRN_REVOKED_IP`,
//!   `CAIRN_REVOKED_PORT`, `CAIRN_REVOCATION_EVENT_ID` and `CAIRN_REVOCATION_SEVERITY` (empty
//!   when the message has no event), and `CAIRN_REVOKED_SELF` (`1` when the message names this
//!   agent, else `0`); its working directory is the actions directory;
//! - after [`ACTION_TIMEOUT`] it is killed with its process group; its exit status and the
//!   tails of its stdout and stderr are logged. A failing action does not stop the next one.
//!
//! Actions of one notification finish before those of the next start, so they never overlap.
//! The directory is listed at each notification (actions can be added without a restart) and may
//! be absent. It is the operator's: a directory others can write to is warned about, since its
//! programs run with the agent's rights.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::revocation::RevocationMessage;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Mutex;

/// How long an action may run before it is killed.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an action's stdout and stderr is kept for the log.
const TAIL: usize = 2048;
/// How long output is still read after an action ended (a background child may hold the pipe).
const DRAIN: Duration = Duration::from_secs(2);

/// The actions directory and the lock that keeps notifications' actions apart.
#[derive(Debug)]
pub struct Actions {
    dir: PathBuf,
    timeout: Duration,
    running: Mutex<()>,
}

/// How one action ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited (or died of a signal) by itself.
    Exited(ExitStatus),
    /// It outlived the timeout and was killed.
    TimedOut,
    /// It could not be started.
    NotStarted(std::io::Error),
}

/// One action's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// The program.
    pub path: PathBuf,
    /// How it ended.
    pub ended: Ended,
    /// The last bytes of its stdout, lossy UTF-8.
    pub stdout_tail: String,
    /// The last bytes of its stderr, lossy UTF-8.
    pub stderr_tail: String,
}

impl Actions {
    /// Actions in `dir`, killed after [`ACTION_TIMEOUT`].
    pub fn new(dir: PathBuf) -> Actions {
        Actions::with_timeout(dir, ACTION_TIMEOUT)
    }

    /// Actions in `dir`, killed after `timeout`.
    pub fn with_timeout(dir: PathBuf, timeout: Duration) -> Actions {
        Actions { dir, timeout, running: Mutex::new(()) }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs every action for `message` (whose signed text is `msg`) in a background task.
    pub fn spawn(self: &Arc<Self>, msg: String, message: RevocationMessage, own_uuid: &str) -> tokio::task::JoinHandle<Vec<Outcome>> {
        let me = self.clone();
        let is_self = message.agent_id == own_uuid;
        tokio::spawn(async move { me.run_all(&msg, &message, is_self).await })
    }

    /// Runs every action for `message`, in name order, after any still running for an earlier
    /// notification; logs and returns each outcome.
    pub async fn run_all(&self, msg: &str, message: &RevocationMessage, is_self: bool) -> Vec<Outcome> {
        let _turn = self.running.lock().await;
        let programs = match self.list().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), "cannot list the revocation actions: {e}");
                return Vec::new();
            }
        };
        if programs.is_empty() {
            tracing::info!(dir = %self.dir.display(), agent_id = %message.agent_id, "no revocation actions to run");
            return Vec::new();
        }
        let env = environment(message, is_self);
        let mut outcomes = Vec::with_capacity(programs.len());
        for path in programs {
            tracing::info!(action = %path.display(), agent_id = %message.agent_id, "running revocation action");
            let outcome = run_one(&path, &self.dir, msg.as_bytes(), &env, self.timeout).await;
            log(&outcome);
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Executable regular files of the directory, by name; none if it is absent.
    async fn list(&self) -> std::io::Result<Vec<PathBuf>> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_programs(&dir)).await.map_err(std::io::Error::other)?
    }
}

fn list_programs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if let Ok(meta) = std::fs::metadata(dir) {
        if meta.permissions().mode() & 0o022 != 0 {
            tracing::warn!(dir = %dir.display(), "the revocation actions directory is writable by group or others");
        }
    }
    let mut programs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => programs.push(path),
            Ok(_) => tracing::debug!(file = %path.display(), "not an executable regular file: not an action"),
            Err(e) => tracing::warn!(file = %path.display(), "skipped: {e}"),
        }
    }
    programs.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(programs)
}

fn environment(m: &RevocationMessage, is_self: bool) -> Vec<(&'static str, String)> {
    vec![
        ("CAIRN_REVOKED_AGENT_ID", m.agent_id.clone()),
        ("CAIRN_REVOKED_IP", m.ip.clone()),
        ("CAIRN_REVOKED_PORT", m.port.to_string()),
        ("CAIRN_REVOCATION_EVENT_ID", m.event_id.clone().unwrap_or_default()),
        ("CAIRN_REVOCATION_SEVERITY", m.severity_label.clone().unwrap_or_default()),
        ("CAIRN_REVOKED_SELF", if is_self { "1" } else { "0" }.to_owned()),
    ]
}

/// Runs `path` with `input` on stdin; kills it (and its process group) after `timeout`.
pub async fn run_one(path: &Path, cwd: &Path, input: &[u8], env: &[(&str, String)], timeout: Duration) -> Outcome {
    run_program(path, &[], cwd, input, env, timeout).await
}

/// Runs `program` with `args` and `input` on stdin in its own process group, in `cwd`, with the
/// agent's environment plus `env`; kills the group after `timeout`. The outcome's `path` is
/// `program`.
pub async fn run_program(
    program: &Path,
    args: &[&std::ffi::OsStr],
    cwd: &Path,
    input: &[u8],
    env: &[(&str, String)],
    timeout: Duration,
) -> Outcome {
    let path = program;
    // Through bash, which closes every descriptor above stderr first: a TPM connection the TPM owner
    // has open at this moment must not live on in the action (see cairn_tpm::spawn).
    let (wrapper, argv) = cairn_tpm::spawn::without_inherited_fds(program.as_os_str(), args);
    let mut cmd = Command::new(wrapper);
    cmd.args(argv)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome { path: path.to_owned(), ended: Ended::NotStarted(e), stdout_tail: String::new(), stderr_tail: String::new() }
        }
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let input = input.to_vec();
    // The action may not read its input; a closed pipe is not an error of the agent's.
    let writer = tokio::spawn(async move {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&input).await;
            let _ = s.shutdown().await;
        }
    });
    let out = tokio::spawn(read_tail(child.stdout.take()));
    let err = tokio::spawn(read_tail(child.stderr.take()));
    let ended = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Ended::Exited(s),
            Err(e) => Ended::NotStarted(e),
        },
        () = tokio::time::sleep(timeout) => {
            kill_group(pid);
            let _ = child.kill().await;
            Ended::TimedOut
        }
    };
    writer.abort();
    let stdout_tail = drain(out).await;
    let stderr_tail = drain(err).await;
    Outcome { path: path.to_owned(), ended, stdout_tail, stderr_tail }
}

fn kill_group(pid: Option<u32>) {
    let pid = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // The group may be gone already; nothing more can be done either way.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

async fn read_tail<R: AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(buf.get(..n).unwrap_or(&[]));
                if kept.len() > 2 * TAIL {
                    kept.drain(..kept.len() - TAIL);
                }
            }
        }
    }
    let start = kept.len().saturating_sub(TAIL);
    kept.split_off(start)
}

async fn drain(reader: tokio::task::JoinHandle<Vec<u8>>) -> String {
    let abort = reader.abort_handle();
    match tokio::time::timeout(DRAIN, reader).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim_end().to_owned(),
        _ => {
            abort.abort();
            "(output still held open by a background process; not read)".to_owned()
        }
    }
}

fn log(o: &Outcome) {
    let action = o.path.display();
    match &o.ended {
        Ended::Exited(s) if s.success() => tracing::info!(%action, "revocation action succeeded"),
        Ended::Exited(s) => tracing::warn!(%action, status = %s, "revocation action failed"),
        Ended::TimedOut => tracing::warn!(%action, "revocation action killed after {:?}", ACTION_TIMEOUT),
        Ended::NotStarted(e) => tracing::error!(%action, "revocation action could not run: {e}"),
    }
    if !o.stdout_tail.is_empty() {
        tracing::info!(%action, "stdout (tail): {}", o.stdout_tail);
    }
    if !o.stderr_tail.is_empty() {
        tracing::warn!(%action, "stderr (tail): {}", o.stderr_tail);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn message() -> RevocationMessage {
        RevocationMessage::from_json(
            r#"{"type":"revocation","ip":"192.0.2.1","agent_id":"n1","port":9002,"event_time":"t","severity_label":"emergency"}"#,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn runs_executables_in_name_order_and_reports_each() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        script(d, "20-second", "echo second $CAIRN_REVOKED_AGENT_ID $CAIRN_REVOKED_PORT $CAIRN_REVOKED_SELF; cat >&2; exit 3", 0o700);
        script(d, "10-first", "echo first \"[$CAIRN_REVOCATION_EVENT_ID]\" $CAIRN_REVOCATION_SEVERITY", 0o700);
        script(d, "15-not-executable", "echo never", 0o600);
        script(d, ".hidden", "echo never", 0o700);
        fs::create_dir(d.join("30-a-directory")).unwrap();
        let actions = Actions::new(d.to_owned());
        let out = actions.run_all("{\"the\":\"message\"}", &message(), false).await;
        let names: Vec<_> = out.iter().map(|o| o.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["10-first", "20-second"]);
        assert!(matches!(out[0].ended, Ended::Exited(s) if s.success()));
        assert_eq!(out[0].stdout_tail, "first [] emergency");
        assert!(matches!(out[1].ended, Ended::Exited(s) if s.code() == Some(3)));
        assert_eq!(out[1].stdout_tail, "second n1 9002 0");
        assert_eq!(out[1].stderr_tail, "{\"the\":\"message\"}");
    }

    #[tokio::test]
    async fn an_action_outliving_the_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A background child keeps the pipes open; the group kill ends it too.
        script(d, "hang", "sleep 600 & echo started; wait", 0o700);
        let actions = Actions::with_timeout(d.to_owned(), Duration::from_secs(2));
        let out = actions.run_all("{}", &message(), true).await;
        assert!(matches!(out[0].ended, Ended::TimedOut), "{:?}", out[0].ended);
        // Had the background `sleep` survived, its open pipe would have left the output unread.
        assert!(!out[0].stdout_tail.contains("not read"), "{}", out[0].stdout_tail);
    }

    #[tokio::test]
    async fn an_absent_directory_means_no_actions() {
        let actions = Actions::new(PathBuf::from("/nonexistent/cairn/revocation_actions"));
        assert!(actions.run_all("{}", &message(), false).await.is_empty());
    }
}
