//! Loading the operator's trusted EK CA certificates from a directory.
//!
//! Every `*.pem`, `*.crt`, `*.cer` and `*.der` file is read (PEM files may hold several
//! certificates) and each certificate becomes a trust anchor, as in Keylime's `tpm_cert_store`:
//! a vendor intermediate is enough, its root need not be present. A file that cannot be parsed
//! stops the start-up with its name, so a broken store is never half-loaded silently.

use std::path::{Path, PathBuf};

use cairn_core::ekcert::TrustStore;
use cairn_core::error::ParseError;
use thiserror::Error;

/// The trust directory could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no valid certificate.
    #[error("{path} is not a certificate file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ParseError,
    },
}

/// File name endings read as certificates.
const EXTENSIONS: [&str; 4] = ["pem", "crt", "cer", "der"];

/// Loads every certificate file in `dir` as an anchor; returns the store and how many
/// certificates it holds. A missing directory is an empty store.
pub fn load_trust_dir(dir: &Path) -> Result<(TrustStore, usize), TrustError> {
    let mut store = TrustStore::new();
    if !dir.exists() {
        return Ok((store, 0));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrustError::Io { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let wanted = path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut count = 0;
    for path in files {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        count += store.add_anchors_from_bytes(&bytes).map_err(|source| TrustError::Parse { path: path.clone(), source })?;
        tracing::debug!(file = %path.display(), "trusted EK CA certificates loaded");
    }
    Ok((store, count))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_is_empty_and_bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load_trust_dir(&d.path().join("none")).unwrap().1, 0);
        std::fs::write(d.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(load_trust_dir(d.path()).unwrap().1, 0);
        std::fs::write(d.path().join("bad.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let e = load_trust_dir(d.path()).unwrap_err();
        assert!(e.to_string().contains("bad.pem"), "{e}");
    }
}
