//! Push-on-change: the agent tells a watching verifier, at once, that its IMA log grew.
//!
//! `GET /cairn/v1/ima/changes?known=N&timeout_ms=T` is a long poll over the same mutual-TLS
//! connection the verifier already uses: it answers `{"entries": M}` as soon as the log holds a
//! number of complete entries M ≠ N (grown, or restarted after a reboot), or after T ms (at most
//! [`MAX_WAIT`]) with M = N. The verifier then attests the node at once instead of at its next
//! interval, so a bad measurement is judged within one round trip of being made. The answer is
//! only a hint — the round it triggers is an ordinary, fully checked round — so it carries no
//! evidence and needs nothing signed.
//!
//! Off unless the operator enables it (`push_on_change`): then the endpoint answers 404. The log
//! is watched by size, every [`POLL`]; only appended bytes are read to count new lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use crate::error::AgentError;

/// Longest a request is held.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often the log's size is looked at while a request waits.
pub const POLL: Duration = Duration::from_millis(50);

/// Query of the long poll.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    /// Entries the verifier has already judged.
    pub known: Option<u64>,
    /// How long to wait for a change, ms.
    pub timeout_ms: Option<u64>,
}

/// Counts complete entries of the IMA log, reading only what was appended since the last count.
#[derive(Debug)]
pub struct ImaWatch {
    path: PathBuf,
    enabled: bool,
    /// (bytes counted, complete lines in them).
    seen: Mutex<(u64, u64)>,
}

impl ImaWatch {
    /// A watch of `path`; `enabled` = the operator turned push-on-change on.
    pub fn new(path: PathBuf, enabled: bool) -> ImaWatch {
        ImaWatch { path, enabled, seen: Mutex::new((0, 0)) }
    }

    /// Whether the endpoint is served.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Complete entries in the log now.
    pub fn entries(&self) -> Result<u64, AgentError> {
        let io = |e: std::io::Error| AgentError::Io { path: self.path.clone(), source: e };
        let size = std::fs::metadata(&self.path).map_err(io)?.len();
        let mut seen = self.seen.lock().map_err(|_| AgentError::Config("IMA watch lock poisoned".into()))?;
        if size == seen.0 {
            return Ok(seen.1); // nothing appended: no open, no read (this runs every POLL per waiting request)
        }
        if size < seen.0 {
            *seen = (0, 0); // the list restarted
        }
        let mut f = std::fs::File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(seen.0)).map_err(io)?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut read, mut lines, mut last_newline) = (seen.0, seen.1, seen.0);
        while read < size {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            for i in memchr::memchr_iter(b'\n', buf.get(..n).unwrap_or_default()) {
                lines += 1;
                last_newline = read + i as u64 + 1;
            }
            read += n as u64;
        }
        // Count up to the last complete line only: a half-written line is counted when finished.
        *seen = (last_newline, lines);
        Ok(lines)
    }

    /// Waits until the entry count differs from `known`, or `timeout`; the count.
    pub async fn wait(&self, known: u64, timeout: Duration) -> Result<u64, AgentError> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        loop {
            let n = self.entries()?;
            if n != known || tokio::time::Instant::now() >= deadline {
                return Ok(n);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn counts_complete_lines_incrementally_and_answers_on_growth() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ima");
        std::fs::write(&p, "a\nb\npart").unwrap();
        let w = std::sync::Arc::new(ImaWatch::new(p.clone(), true));
        assert_eq!(w.entries().unwrap(), 2);
        assert_eq!(w.wait(2, Duration::from_millis(60)).await.unwrap(), 2, "no change: answered at the timeout");
        let waiter = tokio::spawn({
            let w = w.clone();
            async move { w.wait(2, Duration::from_secs(20)).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(120)).await;
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"ial\nc\n").unwrap();
        assert_eq!(waiter.await.unwrap(), 4);
        std::fs::write(&p, "x\n").unwrap();
        assert_eq!(w.entries().unwrap(), 1, "a shorter log restarted");
    }
}
