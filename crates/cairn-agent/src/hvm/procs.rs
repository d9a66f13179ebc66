//! Finding the processes to measure and their executable mappings, from `/proc`.
//!
//! A mapping is measured when it is executable and file-backed: `x` in its permissions and a path
//! (anonymous JIT code, `[vdso]` and `[vsyscall]` have no file to compare with).

use std::path::Path;

use cairn_core::hvm::{MapRange, Pid};

use super::glob::Selector;

/// A process to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: Pid,
    /// Its executable's path (` (deleted)` removed).
    pub exe: Vec<u8>,
}

/// An executable, file-backed mapping of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Its addresses.
    pub range: MapRange,
    /// The file offset at its start.
    pub offset: u64,
    /// The inode (0 for none).
    pub inode: u64,
    /// The file's path as the kernel shows it (` (deleted)` removed).
    pub path: Vec<u8>,
}

const DELETED: &[u8] = b" (deleted)";

fn strip_deleted(p: &[u8]) -> &[u8] {
    p.strip_suffix(DELETED).unwrap_or(p)
}

/// Every process whose executable a selector matches, plus `always` (the agent itself), by pid.
pub fn select(proc_root: &Path, selectors: &[Selector], always: Option<u32>) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir(proc_root) else { return Vec::new() };
    let mut out = Vec::new();
    for d in dir.flatten() {
        let Some(pid) = d.file_name().to_str().and_then(|s| s.parse::<u32>().ok()).and_then(Pid::new) else { continue };
        // Kernel threads have no executable; a process may exit while we look.
        let Ok(exe) = std::fs::read_link(d.path().join("exe")) else { continue };
        let exe = strip_deleted(std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str())).to_vec();
        if Some(pid.get()) == always || selectors.iter().any(|s| s.matches(&exe)) {
            out.push(Process { pid, exe });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The process with `pid`, if it exists.
pub fn by_pid(proc_root: &Path, pid: Pid) -> Option<Process> {
    let exe = std::fs::read_link(proc_root.join(pid.get().to_string()).join("exe")).ok()?;
    Some(Process { pid, exe: strip_deleted(std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str())).to_vec() })
}

/// The executable, file-backed mappings in the text of `/proc/PID/maps`.
pub fn executable_mappings(maps: &[u8]) -> Vec<Mapping> {
    maps.split(|b| *b == b'\n').filter_map(parse_maps_line).collect()
}

/// One maps line: `start-end perms offset dev inode [path]` (the path may hold spaces).
fn parse_maps_line(line: &[u8]) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || -> Option<&[u8]> {
        let s = rest.iter().position(|b| *b != b' ')?;
        rest = rest.get(s..)?;
        let e = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        let f = rest.get(..e)?;
        rest = rest.get(e..)?;
        Some(f)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let _dev = field()?;
    let inode = field()?;
    let path = rest.iter().position(|b| *b != b' ').and_then(|s| rest.get(s..)).unwrap_or_default();
    if perms.get(2) != Some(&b'x') || path.first() != Some(&b'/') {
        return None;
    }
    let hex = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| u64::from_str_radix(s, 16).ok());
    let dash = range.iter().position(|b| *b == b'-')?;
    let start = hex(range.get(..dash)?)?;
    let end = hex(range.get(dash + 1..)?)?;
    Some(Mapping {
        range: MapRange::new(start, end)?,
        offset: hex(offset)?,
        inode: std::str::from_utf8(inode).ok()?.parse().ok()?,
        path: strip_deleted(path).to_vec(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_executable_file_backed_mappings() {
        let maps = b"\
55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 131 /usr/bin/sleep
55d0c0a02000-55d0c0a06000 r-xp 00002000 08:01 131 /usr/bin/sleep
7f1a2b000000-7f1a2b100000 r-xp 00028000 08:01 99 /opt/my vm/lib.so (deleted)
7f1a2c000000-7f1a2c001000 rwxp 00000000 00:00 0 
7ffd1e9f3000-7ffd1e9f5000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";
        let m = executable_mappings(maps);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].range.start(), m[0].range.end(), m[0].offset, m[0].inode), (0x55d0_c0a0_2000, 0x55d0_c0a0_6000, 0x2000, 131));
        assert_eq!(m[0].path, b"/usr/bin/sleep");
        assert_eq!(m[1].path, b"/opt/my vm/lib.so");
    }

    #[test]
    fn this_process_is_found_by_pid_and_has_executable_mappings() {
        let me = Pid::new(std::process::id()).unwrap();
        let p = by_pid(Path::new("/proc"), me).unwrap();
        assert!(p.exe.starts_with(b"/"));
        let maps = std::fs::read("/proc/self/maps").unwrap();
        assert!(executable_mappings(&maps).iter().any(|m| m.path == p.exe));
        let selected = select(Path::new("/proc"), &[], Some(me.get()));
        assert_eq!(selected, vec![p]);
    }
}
