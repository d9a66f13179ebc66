//! Reading a `.deb`: an ar archive holding `debian-binary`, `control.tar[.gz|.xz|.zst]` and
//! `data.tar[.gz|.xz|.zst]`. The package's name, version and architecture come from `control`;
//! every regular file of `data.tar` is hashed as installed (`./usr/bin/sed` → `/usr/bin/sed`), and a
//! hard link gets its target's digests. Symlinks, directories and devices carry no content IMA
//! measures, so they are skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use cairn_core::levels::parse_deb822;
use cairn_core::{Digest, HashAlg};
use cairn_store::{RefFile, RefPackage};

use super::decompress::{pipe, Compression};
use super::hash::{hash_reader, Progress};

/// Installed path of a tar member name: leading `./` and `/` dropped, one `/` put back.
pub fn installed_path(name: &str) -> Option<String> {
    let rel = name.trim_start_matches("./").trim_start_matches('/');
    let rel = rel.trim_end_matches('/');
    if rel.is_empty() || rel == "." {
        return None;
    }
    Some(format!("/{rel}"))
}

/// Reads one `.deb`: its package and every file with its digests.
pub fn read_deb(path: &Path, algs: &[HashAlg], progress: &mut Progress) -> anyhow::Result<(RefPackage, Vec<RefFile>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ar = ar::Archive::new(file);
    let mut control: Option<Vec<u8>> = None;
    let mut files: Option<Vec<RefFile>> = None;
    while let Some(entry) = ar.next_entry() {
        let entry = entry.with_context(|| format!("{}: not an ar archive", path.display()))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).trim_end_matches('/').to_string();
        let compression = || {
            Compression::from_name(&name).with_context(|| format!("{}: member {name}: unknown compression", path.display()))
        };
        if name.starts_with("control.tar") {
            let c = compression()?;
            control = Some(read_control(c, entry).with_context(|| format!("{}: {name}", path.display()))?);
        } else if name.starts_with("data.tar") {
            let c = compression()?;
            let got = std::thread::scope(|s| hash_data(pipe(s, c, entry), algs, progress))
                .with_context(|| format!("{}: {name}", path.display()))?;
            files = Some(got);
        }
    }
    let Some(control) = control else { bail!("{}: no control.tar member: not a .deb", path.display()) };
    let Some(files) = files else { bail!("{}: no data.tar member: not a .deb", path.display()) };
    let text = String::from_utf8(control).with_context(|| format!("{}: control file is not UTF-8", path.display()))?;
    let stanzas = parse_deb822(&text).with_context(|| format!("{}: control file", path.display()))?;
    let first = stanzas.first().with_context(|| format!("{}: empty control file", path.display()))?;
    let field = |f: &str| first.get(f).with_context(|| format!("{}: control file has no {f} field", path.display()));
    let pkg = RefPackage {
        name: field("Package")?.to_string(),
        version: field("Version")?.to_string(),
        arch: first.get("Architecture").unwrap_or_default().to_string(),
        origin: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    Ok((pkg, files))
}

/// The `control` file from `control.tar*`.
fn read_control<R: Read>(c: Compression, member: R) -> anyhow::Result<Vec<u8>> {
    let mut tar_bytes = Vec::new();
    c.decode(member, &mut tar_bytes)?;
    let mut tar = tar::Archive::new(tar_bytes.as_slice());
    for e in tar.entries()? {
        let mut e = e?;
        if installed_path(&e.path()?.to_string_lossy()).as_deref() == Some("/control") {
            let mut out = Vec::new();
            e.read_to_end(&mut out)?;
            return Ok(out);
        }
    }
    bail!("no control file")
}

/// Hashes every regular file of a data tar stream.
fn hash_data<R: Read>(data: R, algs: &[HashAlg], progress: &mut Progress) -> anyhow::Result<Vec<RefFile>> {
    let mut tar = tar::Archive::new(data);
    let mut out = Vec::new();
    let mut by_path: HashMap<String, Vec<Digest>> = HashMap::new();
    let mut buf = vec![0u8; 256 * 1024];
    for e in tar.entries().context("reading the data archive")? {
        let mut e = e.context("reading the data archive")?;
        let name = e.path().context("member name")?.to_string_lossy().into_owned();
        let Some(path) = installed_path(&name) else { continue };
        let kind = e.header().entry_type();
        let digests = if kind.is_file() {
            let (d, size) = hash_reader(&mut e, algs, &mut buf).with_context(|| format!("reading {path}"))?;
            progress.file(size);
            d
        } else if kind.is_hard_link() {
            let target = e.link_name().context("hard link target")?.map(|t| t.to_string_lossy().into_owned());
            let target = target.as_deref().and_then(installed_path).with_context(|| format!("{path}: hard link without a target"))?;
            match by_path.get(&target) {
                Some(d) => d.clone(),
                None => bail!("{path}: hard link to {target}, which the archive has not shown before"),
            }
        } else {
            continue;
        };
        by_path.insert(path.clone(), digests.clone());
        out.push(RefFile { path, digests });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_become_installed_paths() {
        assert_eq!(installed_path("./usr/bin/sed").as_deref(), Some("/usr/bin/sed"));
        assert_eq!(installed_path("usr/bin/sed").as_deref(), Some("/usr/bin/sed"));
        assert_eq!(installed_path("./usr/share/").as_deref(), Some("/usr/share"));
        assert_eq!(installed_path("./"), None);
        assert_eq!(installed_path("."), None);
    }
}
