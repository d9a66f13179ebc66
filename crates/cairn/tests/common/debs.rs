//! Real Debian packages for tests: `apt-get download` fetches them, `dpkg-deb` extracts them and
//! `sha256sum`/`sha1sum` hash their files, so every expectation (names, versions, paths, digests)
//! comes from the packages actually downloaded and independent tools. Include with
//! `#[path = "common/debs.rs"] mod debs;`.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Small packages of every Debian release (each a few hundred kB).
pub const PACKAGES: [&str; 3] = ["hostname", "sed", "grep"];

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn run(cmd: &mut Command, what: &str) -> String {
    ok(&cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}")), what)
}

/// One downloaded package, as dpkg-deb and sha256sum see it.
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub deb: PathBuf,
    /// (installed path, sha256 hex, sha1 hex) of every regular file.
    pub files: Vec<(String, String, String)>,
}

impl Pkg {
    /// An executable of the package (what IMA measures), else its first file.
    pub fn program(&self) -> &(String, String, String) {
        self.files.iter().find(|f| f.0.contains("/bin/")).unwrap_or(&self.files[0])
    }
}

/// Downloads [`PACKAGES`] into a fresh directory and reads them back with dpkg-deb.
pub fn download() -> (TempDir, Vec<Pkg>) {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new("apt-get")
        .arg("download")
        .args(PACKAGES)
        .current_dir(dir.path())
        .output()
        .expect("apt-get runs");
    assert!(
        o.status.success(),
        "apt-get download {PACKAGES:?} failed: it needs Debian's package lists (apt-get update) and the network:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut pkgs = Vec::new();
    for name in PACKAGES {
        let deb = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{name}_")))
            .unwrap_or_else(|| panic!("apt-get download left no {name}_*.deb"));
        let field = |f: &str| run(Command::new("dpkg-deb").args(["-f", s(&deb), f]), "dpkg-deb -f").trim().to_string();
        assert_eq!(field("Package"), name);
        let version = field("Version");
        let root = dir.path().join(format!("x-{name}"));
        run(Command::new("dpkg-deb").args(["-x", s(&deb), s(&root)]), "dpkg-deb -x");
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        paths.sort();
        assert!(!paths.is_empty(), "{name} has no files");
        let sums = |tool: &str| -> Vec<String> {
            let out = run(Command::new(tool).args(&paths), tool);
            out.lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
        };
        let (sha256, sha1) = (sums("sha256sum"), sums("sha1sum"));
        let files = paths
            .iter()
            .zip(sha256)
            .zip(sha1)
            .map(|((p, a), b)| (format!("/{}", p.strip_prefix(&root).unwrap().display()), a, b))
            .collect();
        pkgs.push(Pkg { name: name.to_string(), version, deb, files });
    }
    (dir, pkgs)
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

/// A version newer than `v`, checked with dpkg.
pub fn newer(v: &str) -> String {
    let n = format!("{v}+cairn1");
    assert!(Command::new("dpkg").args(["--compare-versions", &n, "gt", v]).status().unwrap().success());
    n
}

pub fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// ima-ng template data: `d-ng` (`sha256:` NUL digest) and `n-ng` (path NUL), each length-prefixed.
pub fn ima_ng_data(sha256_hex: &str, path: &str) -> Vec<u8> {
    let mut d = b"sha256:\0".to_vec();
    d.extend(hex::decode(sha256_hex).unwrap());
    let mut n = path.as_bytes().to_vec();
    n.push(0);
    let mut out = Vec::new();
    for f in [d, n] {
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    out
}

