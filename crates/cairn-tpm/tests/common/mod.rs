//! Shared test scaffolding: a swtpm per test (in its own temp dir), one CA per test binary,
//! tpm2-tools as the independent peer, and tpm2-tools' PCR file format.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cairn_core::pcr::PcrValues;
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use cairn_tpm::Tpm;

/// One local CA per test binary, kept (and reused) under cargo's per-target temp dir.
pub fn ca() -> &'static SwtpmCa {
    static CA: OnceLock<SwtpmCa> = OnceLock::new();
    CA.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("swtpm-ca-{name}"));
        SwtpmCa::create(&dir).unwrap()
    })
}

/// A swtpm with its own temp state dir, and a scratch dir for files given to tpm2-tools.
pub struct TestTpm {
    pub swtpm: Swtpm,
    pub dir: tempfile::TempDir,
}

impl TestTpm {
    /// A fresh swtpm (no EK certificates).
    pub fn plain() -> TestTpm {
        let dir = tempfile::tempdir().unwrap();
        let swtpm = Swtpm::start(&dir.path().join("state"), SwtpmOptions::default()).unwrap();
        TestTpm { swtpm, dir }
    }

    /// A swtpm manufactured by swtpm_setup with EK certificates from the binary's CA.
    pub fn with_ek_certs() -> TestTpm {
        let dir = tempfile::tempdir().unwrap();
        let opts = SwtpmOptions { with_ek_certs: Some(ca()), port: None };
        let swtpm = Swtpm::start(&dir.path().join("state"), opts).unwrap();
        TestTpm { swtpm, dir }
    }

    pub fn open(&self) -> Tpm {
        Tpm::open(&self.swtpm.tcti()).unwrap()
    }

    /// A path in the scratch dir.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a scratch file and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.file(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Runs a tpm2-tools program against this swtpm (our Context must be dropped first).
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new(program)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.swtpm.tcti())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        out
    }

    /// Like [`TestTpm::tool`], asserting success and returning stdout.
    pub fn tool_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.tool(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// tpm2-tools' PCR file (`tpm2_quote -o` / `tpm2_checkquote -f`): the in-memory, little-endian
/// TPML_PCR_SELECTION (u32 count, 16 slots of {u16 hash, u8 sizeofSelect, u8[4], pad}), a u32
/// count of TPML_DIGESTs, then each TPML_DIGEST (u32 count, 8 slots of {u16 size, u8[64]}),
/// digests in selection order, at most 8 per TPML_DIGEST.
pub fn tpm2_tools_pcr_file(values: &PcrValues) -> Vec<u8> {
    let mut out = Vec::new();
    let banks: Vec<_> = values.selection().banks().iter().filter(|b| b.mask != 0).collect();
    out.extend_from_slice(&(banks.len() as u32).to_le_bytes());
    for i in 0..16 {
        match banks.get(i) {
            Some(b) => {
                out.extend_from_slice(&b.alg.alg_id().0.to_le_bytes());
                out.push(3);
                out.extend_from_slice(&b.mask.to_le_bytes());
                out.push(0);
            }
            None => out.extend_from_slice(&[0; 8]),
        }
    }
    assert_eq!(out.len(), 132);
    let chunks: Vec<_> = values.values().chunks(8).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for i in 0..8 {
            let mut slot = [0u8; 66];
            if let Some(d) = chunk.get(i) {
                let b = d.as_bytes();
                slot[..2].copy_from_slice(&(b.len() as u16).to_le_bytes());
                slot[2..2 + b.len()].copy_from_slice(b);
            }
            out.extend_from_slice(&slot);
        }
    }
    out
}

/// Parses `tpm2_pcrread` output: `  sha256:` bank headers, then `    16: 0xABCD…` lines.
pub fn parse_pcrread(text: &str) -> Vec<(String, u8, String)> {
    let mut bank = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(b) = t.strip_suffix(':') {
            bank = b.to_owned();
        } else if let Some((pcr, val)) = t.split_once(':') {
            let val = val.trim().trim_start_matches("0x").to_ascii_lowercase();
            out.push((bank.clone(), pcr.trim().parse().unwrap(), val));
        }
    }
    out
}
