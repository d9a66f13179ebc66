//! Measuring one process: for each executable mapping, the code in memory, the same range of the
//! file, and the whole file.
//!
//! The memory side is read from `/proc/PID/mem` every round — that is the point. The file side is
//! opened through `/proc/PID/map_files/START-END`, so it is the very inode mapped (even when the
//! path was replaced or deleted since), and is cached per (device, inode, mtime, size): an unchanged
//! file is hashed once, however many processes map it and however many rounds pass.
//!
//! The kernel maps a file page by page and zero-fills past its end; pages wholly past the end are
//! not readable at all. So both sides cover `[offset, offset + len)` with the bytes past the end of
//! the file taken as zeros, and the memory side reads every page that holds file bytes — the tail
//! of the last page included, where planted code would sit in zeros.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use cairn_core::alg::Hasher;
use cairn_core::hvm::entry::PAGE_ALIGN;
use cairn_core::hvm::Measurement;
use cairn_core::{Digest, HashAlg};

use super::procs::{executable_mappings, Mapping, Process};

/// Read size.
const CHUNK: usize = 1 << 20;

/// What identifies a file's content for the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
}

#[derive(Debug, Default)]
struct FileDigests {
    whole: Option<Digest>,
    ranges: HashMap<(u64, u64), Digest>,
}

/// Counters of one or more rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Processes measured.
    pub processes: u64,
    /// Mappings measured.
    pub mappings: u64,
    /// Bytes of code read from process memory.
    pub mem_bytes: u64,
    /// Bytes of files hashed (cache misses only).
    pub file_bytes: u64,
    /// Mappings that could not be measured (process gone, permission).
    pub skipped: u64,
}

/// Measures processes; keeps the file cache between rounds.
#[derive(Debug)]
pub struct Measurer {
    proc_root: PathBuf,
    alg: HashAlg,
    cache: HashMap<FileKey, FileDigests>,
    used: HashSet<FileKey>,
    buf: Vec<u8>,
    /// Counters since the last [`Measurer::take_stats`].
    stats: Stats,
}

impl Measurer {
    /// A measurer reading `/proc` at `proc_root`, hashing with `alg`.
    pub fn new(proc_root: &Path, alg: HashAlg) -> Measurer {
        Measurer {
            proc_root: proc_root.to_owned(),
            alg,
            cache: HashMap::new(),
            used: HashSet::new(),
            buf: vec![0; CHUNK],
            stats: Stats::default(),
        }
    }

    /// The counters so far, reset.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// Forgets cached files no process mapped since the last call (bounded memory).
    pub fn end_round(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.cache.retain(|k, _| used.contains(k));
    }

    /// Every executable mapping of `p`; mappings that cannot be read are skipped and logged.
    pub fn measure(&mut self, p: &Process) -> Vec<Measurement> {
        let dir = self.proc_root.join(p.pid.get().to_string());
        let maps = match std::fs::read(dir.join("maps")) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(pid = p.pid.get(), "maps: {e}");
                return Vec::new();
            }
        };
        let mem = match File::open(dir.join("mem")) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(pid = p.pid.get(), "cannot read the memory of {}: {e}", String::from_utf8_lossy(&p.exe));
                self.stats.skipped += 1;
                return Vec::new();
            }
        };
        self.stats.processes += 1;
        let mut out = Vec::new();
        for m in executable_mappings(&maps) {
            match self.mapping(&dir, &mem, p, &m) {
                Ok(x) => {
                    self.stats.mappings += 1;
                    out.push(x);
                }
                Err(e) => {
                    self.stats.skipped += 1;
                    tracing::warn!(pid = p.pid.get(), range = %m.range, "cannot measure {}: {e}", String::from_utf8_lossy(&m.path));
                }
            }
        }
        out
    }

    fn mapping(&mut self, dir: &Path, mem: &File, p: &Process, m: &Mapping) -> io::Result<Measurement> {
        let file = File::open(dir.join("map_files").join(format!("{:x}-{:x}", m.range.start(), m.range.end())))
            .or_else(|_| File::open(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&m.path)))?;
        let md = file.metadata()?;
        let key = FileKey { dev: md.dev(), ino: md.ino(), mtime: md.mtime(), mtime_nsec: md.mtime_nsec(), size: md.size() };
        self.used.insert(key);
        let len = m.range.len();
        let whole = match self.cache.get(&key).and_then(|c| c.whole) {
            Some(d) => d,
            None => {
                let d = self.hash_file(&file, 0, key.size, key.size)?;
                self.cache.entry(key).or_default().whole = Some(d);
                d
            }
        };
        let disk = match self.cache.get(&key).and_then(|c| c.ranges.get(&(m.offset, len)).copied()) {
            Some(d) => d,
            None => {
                let file_bytes = key.size.saturating_sub(m.offset).min(len);
                let d = self.hash_file(&file, m.offset, file_bytes, len)?;
                self.cache.entry(key).or_default().ranges.insert((m.offset, len), d);
                d
            }
        };
        // Every page holding file bytes is readable; pages wholly past the end are not.
        let file_bytes = key.size.saturating_sub(m.offset).min(len);
        let readable = file_bytes.div_ceil(PAGE_ALIGN).saturating_mul(PAGE_ALIGN).min(len);
        let mem_digest = self.hash_at(mem, m.range.start(), readable, len)?;
        self.stats.mem_bytes += readable;
        Ok(Measurement {
            pid: p.pid,
            exe: p.exe.clone(),
            file: m.path.clone(),
            range: m.range,
            offset: m.offset,
            mem: mem_digest,
            disk,
            file_digest: whole,
        })
    }

    fn hash_file(&mut self, f: &File, offset: u64, bytes: u64, total: u64) -> io::Result<Digest> {
        self.stats.file_bytes += bytes;
        self.hash_at(f, offset, bytes, total)
    }

    /// Hash of `bytes` read at `offset`, then zeros up to `total`.
    fn hash_at(&mut self, f: &File, offset: u64, bytes: u64, total: u64) -> io::Result<Digest> {
        let mut h = Hasher::new(self.alg);
        let mut done = 0u64;
        while done < bytes {
            let want = usize::try_from((bytes - done).min(CHUNK as u64)).unwrap_or(CHUNK);
            let buf = self.buf.get_mut(..want).unwrap_or_default();
            let n = f.read_at(buf, offset + done)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("ended at offset {:#x}", offset + done)));
            }
            h.update(buf.get(..n).unwrap_or_default());
            done += n as u64;
        }
        let zeros = [0u8; 4096];
        let mut pad = total.saturating_sub(bytes);
        while pad > 0 {
            let n = usize::try_from(pad.min(zeros.len() as u64)).unwrap_or(zeros.len());
            h.update(zeros.get(..n).unwrap_or_default());
            pad -= n as u64;
        }
        Ok(h.finish())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hvm::procs::by_pid;
    use cairn_core::hvm::{Pid, Verdict};

    #[test]
    fn this_process_code_matches_its_files_and_files_are_hashed_once() {
        let me = by_pid(Path::new("/proc"), Pid::new(std::process::id()).unwrap()).unwrap();
        let mut m = Measurer::new(Path::new("/proc"), HashAlg::Sha256);
        let first = m.measure(&me);
        assert!(!first.is_empty());
        for x in &first {
            assert_eq!(x.verdict(), Verdict::Ok, "{}: {:?}", String::from_utf8_lossy(&x.file), x.range);
        }
        let own = first.iter().find(|x| x.file == me.exe).unwrap();
        assert_eq!(own.file_digest, HashAlg::Sha256.hash(&std::fs::read(String::from_utf8_lossy(&me.exe).as_ref()).unwrap()));
        let s1 = m.take_stats();
        assert!(s1.mem_bytes > 0 && s1.file_bytes > 0);
        m.end_round();
        let again = m.measure(&me);
        let s2 = m.take_stats();
        assert_eq!(s2.file_bytes, 0, "unchanged files are not hashed again");
        assert_eq!(s2.mem_bytes, s1.mem_bytes);
        assert_eq!(again.len(), first.len());
    }
}
