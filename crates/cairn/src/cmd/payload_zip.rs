//! Payloads for `cairn node add --payload`: a file is sent as it is; a directory is zipped first,
//! so the agent unpacks it into `secure/unzipped/` and runs its `autorun.sh`.
//!
//! The archive holds every file and directory under the directory, named by its path relative to
//! it (`/`-separated), each with its Unix permission bits (the agent keeps the owner's execute bit:
//! `autorun.sh` and the tools it calls stay executable). It is built to what the agent accepts, so
//! a refusal comes here, before anything is sent: symbolic links and other special files, names
//! that are not UTF-8, more than [`MAX_ENTRIES`] entries or more than [`MAX_UNPACKED`] bytes.
//! Entries are sorted by name and carry no timestamps, so the same directory zips to the same
//! bytes.

use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cairn_agent::payload::{MAX_ENTRIES, MAX_UNPACKED};
use zeroize::Zeroizing;

/// One archive entry: a file's bytes, or a directory.
pub struct Entry {
    /// The `/`-separated name inside the archive (a directory's without a trailing `/`).
    pub name: String,
    /// Unix permission bits.
    pub mode: u32,
    /// The file's bytes; `None` for a directory.
    pub data: Option<Zeroizing<Vec<u8>>>,
}

/// What `--payload PATH` sends.
pub struct Payload {
    /// The file's bytes, or the zip of the directory.
    pub bytes: Zeroizing<Vec<u8>>,
    /// For a directory: how many files the zip holds.
    pub zipped_files: Option<usize>,
}

/// The file's bytes, or the directory zipped.
pub fn read(path: &Path) -> anyhow::Result<Payload> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Payload { bytes: Zeroizing::new(bytes), zipped_files: None });
    }
    let entries = walk(path)?;
    let files = entries.iter().filter(|e| e.data.is_some()).count();
    Ok(Payload { bytes: zip(&entries)?, zipped_files: Some(files) })
}

/// Every entry under `dir`, sorted by name, within the agent's limits.
fn walk(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = pending.pop() {
        let listing = std::fs::read_dir(&at).with_context(|| format!("cannot list {}", at.display()))?;
        for item in listing {
            let item = item.with_context(|| format!("cannot list {}", at.display()))?;
            let path = item.path();
            let Some(leaf) = item.file_name().to_str().map(str::to_owned) else {
                bail!("{}: the name is not UTF-8, which a zip payload cannot carry", path.display());
            };
            let name = if prefix.is_empty() { leaf } else { format!("{prefix}/{leaf}") };
            let meta = std::fs::symlink_metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                pending.push((path, name.clone()));
                entries.push(Entry { name, mode, data: None });
            } else if meta.is_file() {
                total += meta.len();
                if total > MAX_UNPACKED {
                    bail!("{} holds more than the {MAX_UNPACKED} bytes an agent unpacks", dir.display());
                }
                let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                entries.push(Entry { name, mode, data: Some(Zeroizing::new(data)) });
            } else {
                bail!("{}: a symbolic link or special file, which the agent refuses in a payload", path.display());
            }
            if entries.len() > MAX_ENTRIES {
                bail!("{} holds more than the {MAX_ENTRIES} entries an agent unpacks", dir.display());
            }
        }
    }
    if entries.is_empty() {
        bail!("{} is empty: nothing to send", dir.display());
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// A zip archive of `entries` (deflated, Unix modes kept).
pub fn zip(entries: &[Entry]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for e in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(e.mode);
        match &e.data {
            None => w.add_directory(e.name.as_str(), options).with_context(|| format!("zip: {}", e.name))?,
            Some(data) => {
                w.start_file(e.name.as_str(), options).with_context(|| format!("zip: {}", e.name))?;
                w.write_all(data).with_context(|| format!("zip: {}", e.name))?;
            }
        }
    }
    Ok(Zeroizing::new(w.finish().context("zip: cannot finish the archive")?.into_inner()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    fn unzip(bytes: &[u8]) -> Vec<(String, Option<u32>, Vec<u8>)> {
        let mut a = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..a.len())
            .map(|i| {
                let mut e = a.by_index(i).unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.name().to_owned(), e.unix_mode().map(|m| m & 0o777), data)
            })
            .collect()
    }

    fn write(path: &Path, data: &[u8], mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_directory_zips_with_relative_names_and_its_modes() {
        let d = tempfile::tempdir().unwrap();
        write(&d.path().join("autorun.sh"), b"#!/bin/sh\necho hi\n", 0o755);
        write(&d.path().join("conf/app.toml"), b"a = 1\n", 0o640);
        let payload = read(d.path()).unwrap();
        assert_eq!(payload.zipped_files, Some(2));
        let zipped = payload.bytes;
        let got = unzip(&zipped);
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["autorun.sh", "conf/", "conf/app.toml"]);
        assert_eq!(got[0].1, Some(0o755), "autorun.sh stays executable");
        assert_eq!(got[0].2, b"#!/bin/sh\necho hi\n");
        assert_eq!((got[2].1, got[2].2.as_slice()), (Some(0o640), &b"a = 1\n"[..]));
        assert_eq!(*read(d.path()).unwrap().bytes, *zipped, "the same directory zips to the same bytes");
    }

    #[test]
    fn a_file_is_sent_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("key.bin");
        std::fs::write(&f, [0u8, 1, 2, 255]).unwrap();
        let payload = read(&f).unwrap();
        assert_eq!((payload.bytes.as_slice(), payload.zipped_files), (&[0u8, 1, 2, 255][..], None));
    }

    fn refusal(path: &Path) -> String {
        match read(path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn links_empty_directories_and_missing_paths_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = refusal(d.path());
        assert!(e.contains("is empty"), "{e}");
        write(&d.path().join("a.txt"), b"a", 0o644);
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let e = refusal(d.path());
        assert!(e.contains("link") && e.contains("symbolic link"), "{e}");
        let e = refusal(&d.path().join("absent"));
        assert!(e.contains("cannot read") && e.contains("absent"), "{e}");
    }
}
