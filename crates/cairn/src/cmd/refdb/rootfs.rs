//! Reading a root file system (a mounted image, a chroot, or `/`): every regular file is hashed,
//! and owned by the package whose `var/lib/dpkg/info/<package>[:<arch>].list` names it, at the
//! version `var/lib/dpkg/status` says is installed; files no package names belong to package
//! `unknown` (version empty) — known content, vouched for by whoever built the image.
//!
//! dpkg records paths as the package shipped them; on a merged-/usr system `/bin/sed` is found at
//! `usr/bin/sed`, so a path under `/usr/{bin,sbin,lib*}` is also looked up without `/usr` and the
//! other way round. Symlinks are not followed, and the top-level `proc`, `sys`, `dev` and `run`
//! (kernel and runtime state, not installed files) are skipped.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_core::levels::parse_deb822;
use cairn_core::HashAlg;
use cairn_store::{RefFile, RefPackage};

use super::hash::{hash_reader, Progress};

/// Top-level directories that hold no installed files.
const SKIP_TOP: [&str; 4] = ["proc", "sys", "dev", "run"];

/// (name, version, arch) of an installed package.
type Owner = (String, String, String);

/// The name of files no package owns.
pub const UNKNOWN: &str = "unknown";

/// Path → owning package, from the dpkg database under `root` (empty when there is none).
fn dpkg_owners(root: &Path) -> anyhow::Result<HashMap<String, Owner>> {
    let admin = root.join("var/lib/dpkg");
    let status_path = admin.join("status");
    let mut owners = HashMap::new();
    let Ok(status) = std::fs::read(&status_path) else { return Ok(owners) };
    let status = String::from_utf8_lossy(&status);
    // (name, arch) → version, for installed packages.
    let mut installed: HashMap<(String, String), String> = HashMap::new();
    for s in parse_deb822(&status).with_context(|| format!("{}", status_path.display()))? {
        let (Some(name), Some(version)) = (s.get("Package"), s.get("Version")) else { continue };
        if !s.get("Status").is_some_and(|st| st.ends_with(" installed")) {
            continue;
        }
        installed.insert((name.to_string(), s.get("Architecture").unwrap_or_default().to_string()), version.to_string());
    }
    let info = admin.join("info");
    let Ok(dir) = std::fs::read_dir(&info) else { return Ok(owners) };
    for entry in dir.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".list") else { continue };
        // `pkg:arch.list` for Multi-Arch: same packages, else `pkg.list`.
        let (name, arch) = match stem.split_once(':') {
            Some((n, a)) => (n.to_string(), Some(a.to_string())),
            None => (stem.to_string(), None),
        };
        let found = match &arch {
            Some(a) => installed.get(&(name.clone(), a.clone())).map(|v| (a.clone(), v.clone())),
            None => installed.iter().find(|((n, _), _)| *n == name).map(|((_, a), v)| (a.clone(), v.clone())),
        };
        let Some((arch, version)) = found else { continue };
        let list = std::fs::read(entry.path()).with_context(|| format!("cannot read {}", entry.path().display()))?;
        for line in String::from_utf8_lossy(&list).lines() {
            if line.starts_with('/') && line != "/." {
                owners.insert(line.to_string(), (name.clone(), version.clone(), arch.clone()));
            }
        }
    }
    Ok(owners)
}

/// The other spelling of a path on a merged-/usr system.
fn usr_alias(path: &str) -> Option<String> {
    const MERGED: [&str; 6] = ["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"];
    if let Some(rest) = path.strip_prefix("/usr") {
        MERGED.iter().any(|p| rest.starts_with(p)).then(|| rest.to_string())
    } else {
        MERGED.iter().any(|p| path.starts_with(p)).then(|| format!("/usr{path}"))
    }
}

/// Hashes every regular file under `root`, grouped by owning package.
pub fn read_rootfs(
    root: &Path,
    algs: &[HashAlg],
    progress: &mut Progress,
) -> anyhow::Result<BTreeMap<Owner, Vec<RefFile>>> {
    let owners = dpkg_owners(root)?;
    if owners.is_empty() {
        eprintln!("refdb build: {} has no dpkg database: every file is package {UNKNOWN:?}", root.display());
    }
    let mut out: BTreeMap<Owner, Vec<RefFile>> = BTreeMap::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    let mut unreadable = 0u64;
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("refdb build: skipping {}: {e}", dir.display());
                unreadable += 1;
                continue;
            }
        };
        for entry in entries.flatten() {
            let rel_child = rel.join(entry.file_name());
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                let top = rel.as_os_str().is_empty() && SKIP_TOP.iter().any(|s| entry.file_name() == *s);
                if !top {
                    stack.push(rel_child);
                }
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let path = format!("/{}", rel_child.to_string_lossy());
            let hashed = File::open(entry.path()).and_then(|mut f| hash_reader(&mut f, algs, &mut buf));
            let (digests, size) = match hashed {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("refdb build: skipping {path}: {e}");
                    unreadable += 1;
                    continue;
                }
            };
            progress.file(size);
            let owner = owners
                .get(&path)
                .or_else(|| usr_alias(&path).and_then(|a| owners.get(&a)))
                .cloned()
                .unwrap_or_else(|| (UNKNOWN.to_string(), String::new(), String::new()));
            out.entry(owner).or_default().push(RefFile { path, digests });
        }
    }
    if unreadable > 0 {
        eprintln!("refdb build: {unreadable} files or directories could not be read (see above)");
    }
    Ok(out)
}

/// The package row for an owner.
pub fn package(owner: &Owner, root: &Path) -> RefPackage {
    RefPackage {
        name: owner.0.clone(),
        version: owner.1.clone(),
        arch: owner.2.clone(),
        origin: format!("rootfs:{}", root.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_aliases() {
        assert_eq!(usr_alias("/usr/bin/sed").as_deref(), Some("/bin/sed"));
        assert_eq!(usr_alias("/bin/sed").as_deref(), Some("/usr/bin/sed"));
        assert_eq!(usr_alias("/lib/x86_64-linux-gnu/libc.so.6").as_deref(), Some("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert_eq!(usr_alias("/usr/share/doc/x"), None);
        assert_eq!(usr_alias("/etc/hostname"), None);
    }
}
