//! Hashing file contents with several algorithms in one pass, and the build's progress report.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use cairn_core::alg::Hasher;
use cairn_core::{Digest, HashAlg};

/// Reads `r` to the end, hashing with every algorithm of `algs`; returns the digests and the size.
pub fn hash_reader<R: Read>(r: &mut R, algs: &[HashAlg], buf: &mut [u8]) -> io::Result<(Vec<Digest>, u64)> {
    let mut hashers: Vec<Hasher> = algs.iter().map(|a| Hasher::new(*a)).collect();
    let mut size = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hashers.iter_mut().for_each(|h| h.update(chunk));
        size += n as u64;
    }
    Ok((hashers.into_iter().map(Hasher::finish).collect(), size))
}

/// Files and bytes hashed so far, reported on stderr at most once a second and once at the end.
pub struct Progress {
    start: Instant,
    last: Instant,
    /// Files hashed.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Packages done.
    pub packages: u64,
    /// Packages to do (0 when not known in advance).
    pub packages_total: u64,
}

const EVERY: Duration = Duration::from_secs(1);

impl Progress {
    /// Starts the clock.
    pub fn new(packages_total: u64) -> Progress {
        let now = Instant::now();
        Progress { start: now, last: now, files: 0, bytes: 0, packages: 0, packages_total }
    }

    /// Counts a hashed file.
    pub fn file(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
        if self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            self.report("…");
        }
    }

    /// Counts a finished package.
    pub fn package(&mut self) {
        self.packages += 1;
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Prints one line: packages, files, bytes, rates.
    pub fn report(&self, what: &str) {
        let secs = self.seconds().max(1e-6);
        let total = if self.packages_total > 0 { format!("/{}", self.packages_total) } else { String::new() };
        let _ = writeln!(
            io::stderr(),
            "refdb build: {}{total} packages, {} files, {:.1} MiB in {secs:.2} s ({:.0} files/s, {:.1} MiB/s) {what}",
            self.packages,
            self.files,
            self.bytes as f64 / 1048576.0,
            self.files as f64 / secs,
            self.bytes as f64 / 1048576.0 / secs,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_gives_each_algorithms_digest() {
        let data = vec![7u8; 200_000];
        let mut buf = vec![0u8; 4096];
        let (d, n) = hash_reader(&mut data.as_slice(), &[HashAlg::Sha1, HashAlg::Sha256], &mut buf).unwrap();
        assert_eq!(n, 200_000);
        assert_eq!(d, [HashAlg::Sha1.hash(&data), HashAlg::Sha256.hash(&data)]);
    }
}
