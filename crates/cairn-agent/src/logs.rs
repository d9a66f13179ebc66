//! The logs an integrity quote carries: IMA (incrementally), the UEFI event log, and boot time.
//!
//! IMA: the ASCII measurement list has one entry per line. A verifier that has replayed entries
//! `0..E` asks for `ima_ml_entry=E` and gets the complete lines from entry E on, with
//! `ima_measurement_list_entry = E`. A half-written last line (the kernel appending) is held back
//! until complete. When E is past the end, the list restarted (the node rebooted), so the whole
//! list is sent with entry 0 and the verifier replays from scratch — what Keylime's verifier does
//! when it sees entry 0. The agent judges nothing here: it only slices text.
//!
//! Files that cannot be read yield `None` (logged): a node without IMA or without a UEFI log
//! still answers quotes, and the verifier's policy decides whether a missing log matters.

use std::path::Path;

use base64::Engine;

/// Largest UEFI event log sent (real ones are well under 1 MiB).
pub const MAX_UEFI_LOG: u64 = 16 * 1024 * 1024;

/// IMA lines from entry `from` on: `(text, first entry sent)`.
pub fn ima_from(path: &Path, from: u64) -> Option<(String, u64)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("IMA log {}: {e}", path.display());
            return None;
        }
    };
    let (start, entry) = match line_start(&bytes, from) {
        Some(start) => (start, from),
        None => (0, 0),
    };
    // Only complete lines: up to and including the last newline.
    let end = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1).max(start);
    let text = bytes.get(start..end).unwrap_or_default();
    Some((String::from_utf8_lossy(text).into_owned(), entry))
}

/// Byte offset of line `n` (0-based) among complete lines, or `None` if there are fewer than
/// `n` complete lines. `n` equal to the number of complete lines gives the end (nothing new).
fn line_start(bytes: &[u8], n: u64) -> Option<usize> {
    if n == 0 {
        return Some(0);
    }
    let mut seen = 0u64;
    for i in memchr::memchr_iter(b'\n', bytes) {
        seen += 1;
        if seen == n {
            return Some(i + 1);
        }
    }
    None
}

/// The UEFI event log, base64.
pub fn uefi_log(path: &Path) -> Option<String> {
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > MAX_UEFI_LOG {
            return Err(std::io::Error::other(format!("{} bytes, more than {MAX_UEFI_LOG}", m.len())));
        }
        std::fs::read(path)
    });
    match read {
        Ok(b) => Some(base64::engine::general_purpose::STANDARD.encode(b)),
        Err(e) => {
            tracing::warn!("UEFI event log {}: {e}", path.display());
            None
        }
    }
}

/// Seconds since the epoch at which the node booted (`btime` in /proc/stat).
pub fn boottime() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ima_slices_complete_lines_from_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ima");
        std::fs::write(&p, "a\nb\nc\npartial").unwrap();
        assert_eq!(ima_from(&p, 0).unwrap(), ("a\nb\nc\n".into(), 0));
        assert_eq!(ima_from(&p, 1).unwrap(), ("b\nc\n".into(), 1));
        assert_eq!(ima_from(&p, 3).unwrap(), (String::new(), 3));
        // Past the end: the list restarted; everything from 0.
        assert_eq!(ima_from(&p, 4).unwrap(), ("a\nb\nc\n".into(), 0));
        assert_eq!(ima_from(&dir.path().join("missing"), 0), None);
        std::fs::write(&p, "").unwrap();
        assert_eq!(ima_from(&p, 0).unwrap(), (String::new(), 0));
    }

    #[test]
    fn uefi_log_is_base64_and_boottime_is_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bios");
        std::fs::write(&p, [0u8, 1, 2]).unwrap();
        assert_eq!(uefi_log(&p).unwrap(), "AAEC");
        assert_eq!(uefi_log(&dir.path().join("none")), None);
        assert!(boottime().unwrap() > 1_000_000_000);
    }
}
