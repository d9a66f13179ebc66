//! Where a vTPM lives on disk, and its inventory entry.
//!
//! ```text
//! DIR/.vtpm-ca/          the vTPM CA (key blobs of the host TPM, certificate), unless --ca-dir names another
//! DIR/VM/vtpm.json       inventory entry
//! DIR/VM/state/          swtpm state, encrypted with the state key (AES-256-CBC)
//! DIR/VM/statekey.pub    sealed state key: TPM2B_PUBLIC of the host TPM's sealed data object
//! DIR/VM/statekey.priv   sealed state key: TPM2B_PRIVATE, wrapped by the host's storage primary
//! DIR/VM/ek-rsa2048.crt  the vTPM's EK certificate (DER, as stored in its NV)
//! DIR/VM/swtpm.sock      control socket QEMU connects to (while running)
//! DIR/VM/swtpm.pid       swtpm's process id (while running)
//! DIR/VM/swtpm.log       swtpm's log
//! ```
//!
//! VM ids are plain names (letters, digits, `.`, `_`, `-`, not starting with `.`), so an id can never
//! climb out of DIR or collide with the CA directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Inventory file name inside a VM's directory.
const ENTRY: &str = "vtpm.json";

/// A validated VM id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmId(String);

impl VmId {
    /// Checks `s` is a plain name of 1 to 64 characters.
    pub fn parse(s: &str) -> anyhow::Result<VmId> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > 64 || s.starts_with('.') || !s.chars().all(ok_char) {
            bail!("VM id {s:?}: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'");
        }
        Ok(VmId(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The paths of one VM's vTPM under DIR.
#[derive(Clone, Debug)]
pub struct VmPaths {
    /// DIR/VM.
    pub root: PathBuf,
}

impl VmPaths {
    /// The paths for `vm` under `dir` (made absolute: swtpm runs from `/` once daemonized).
    pub fn new(dir: &Path, vm: &VmId) -> anyhow::Result<VmPaths> {
        let dir = std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
        Ok(VmPaths { root: dir.join(vm.as_str()) })
    }

    /// Inventory entry.
    pub fn entry(&self) -> PathBuf {
        self.root.join(ENTRY)
    }

    /// swtpm state directory.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Sealed object, public part.
    pub fn sealed_pub(&self) -> PathBuf {
        self.root.join("statekey.pub")
    }

    /// Sealed object, private part.
    pub fn sealed_priv(&self) -> PathBuf {
        self.root.join("statekey.priv")
    }

    /// EK certificate.
    pub fn ek_cert(&self) -> PathBuf {
        self.root.join("ek-rsa2048.crt")
    }

    /// Control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("swtpm.sock")
    }

    /// Pid file.
    pub fn pid(&self) -> PathBuf {
        self.root.join("swtpm.pid")
    }

    /// swtpm log.
    pub fn log(&self) -> PathBuf {
        self.root.join("swtpm.log")
    }
}

/// The default CA directory under DIR.
pub fn default_ca_dir(dir: &Path) -> PathBuf {
    dir.join(".vtpm-ca")
}

/// One VM's inventory entry (`DIR/VM/vtpm.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// VM id.
    pub vm: String,
    /// swtpm state directory.
    pub state_dir: PathBuf,
    /// Control socket path QEMU connects to.
    pub socket: PathBuf,
    /// The vTPM's RSA-2048 EK: SHA-256 of its TPM2B_PUBLIC, hex.
    pub ek_public_sha256: String,
    /// The EK's TPM name (nameAlg ‖ H(TPMT_PUBLIC)), hex.
    pub ek_name: String,
    /// EK certificate file (DER).
    pub ek_cert: PathBuf,
    /// The CA directory that issued the EK certificate.
    pub ca_dir: PathBuf,
    /// Sealed state key blobs (file names inside the VM directory): public, private.
    pub sealed_key: [String; 2],
    /// Creation time, unix seconds.
    pub created: u64,
}

impl Entry {
    /// Reads the entry of a VM.
    pub fn read(paths: &VmPaths) -> anyhow::Result<Entry> {
        let path = paths.entry();
        let text = std::fs::read(&path).with_context(|| format!("no vTPM inventory entry {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{}: not a vTPM inventory entry", path.display()))
    }

    /// Writes the entry (via a temporary file and a rename).
    pub fn write(&self, paths: &VmPaths) -> anyhow::Result<()> {
        let path = paths.entry();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vm_ids_are_plain_names() {
        for ok in ["vm1", "a.b_c-d", "X"] {
            assert_eq!(VmId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", ".ca", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(VmId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
