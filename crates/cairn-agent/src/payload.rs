//! Where a bootstrap payload goes once K has decrypted it, and its `autorun.sh`.
//!
//! Layout under the state directory ([`PayloadLayout`]):
//! - `secure/` — memory-backed when it can be: the agent mounts a tmpfs there (`size=32m`,
//!   `mode=0700`, `nosuid,nodev`) unless one is mounted already. If the mount fails (not root,
//!   no `CAP_SYS_ADMIN`) it is a plain directory with mode 0700, and a warning says the payload
//!   is on disk. A tmpfs stays mounted when the agent stops, so a restarted agent (and the
//!   programs the payload is for) still find it; it goes away with the node.
//! - `secure/payload` — the decrypted payload, byte for byte (mode 0600).
//! - `secure/unzipped/` — when the payload is a zip archive, its files, unpacked afresh for
//!   each delivery. Entries whose path would leave the directory (absolute, or `..` past its
//!   top), symbolic links, and archives unpacking to more than [`MAX_UNPACKED`] bytes are
//!   refused, and nothing of such an archive is left there.
//! - if `secure/unzipped/autorun.sh` exists it runs as `sh autorun.sh`, in `secure/unzipped/`,
//!   in the background, with `CAIRN_PAYLOAD_DIR` set to `secure/`; after [`AUTORUN_TIMEOUT`] it
//!   is killed with its process group. Its exit status is logged, its output is not (it may
//!   print the secrets it was sent).
//!
//! This is Keylime's arrangement (`secure/unzipped/` and `autorun.sh`); the payload itself is
//! never logged.

use std::ffi::OsStr;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::actions::{self, Ended};
use crate::error::AgentError;

/// The memory-backed directory, under the state directory.
pub const SECURE_DIR: &str = "secure";
/// The decrypted payload, in [`SECURE_DIR`].
pub const PAYLOAD_FILE: &str = "payload";
/// Where a zip payload is unpacked, in [`SECURE_DIR`].
pub const UNZIPPED_DIR: &str = "unzipped";
/// The script run from an unpacked payload.
pub const AUTORUN: &str = "autorun.sh";
/// The tmpfs size limit.
pub const SECURE_SIZE: &str = "32m";
/// The tmpfs mount options: [`SECURE_SIZE`], owner only.
const TMPFS_OPTIONS: &std::ffi::CStr = c"size=32m,mode=0700";
/// Most bytes a zip payload may unpack to.
pub const MAX_UNPACKED: u64 = 24 * 1024 * 1024;
/// Most entries a zip payload may hold.
pub const MAX_ENTRIES: usize = 10_000;
/// How long `autorun.sh` may run before it is killed.
pub const AUTORUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The payload's paths under a state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadLayout {
    /// `<state_dir>/secure`: tmpfs, or a 0700 directory.
    pub dir: PathBuf,
    /// `<state_dir>/secure/payload`: the decrypted payload.
    pub payload: PathBuf,
    /// `<state_dir>/secure/unzipped`: a zip payload's files, `autorun.sh` among them.
    pub unzipped: PathBuf,
}

impl PayloadLayout {
    /// The layout under `state_dir`.
    pub fn under(state_dir: &Path) -> PayloadLayout {
        let dir = state_dir.join(SECURE_DIR);
        PayloadLayout { payload: dir.join(PAYLOAD_FILE), unzipped: dir.join(UNZIPPED_DIR), dir }
    }
}

/// Whether to try mounting a tmpfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountPolicy {
    /// Mount one unless one is there (what the agent does).
    Try,
    /// Never: a 0700 directory (for tests of that path).
    Never,
}

/// Where the payload ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In memory, on a tmpfs.
    Tmpfs,
    /// On disk, in a 0700 directory.
    Disk,
}

/// What a delivery wrote.
#[derive(Debug)]
pub struct Delivery {
    /// Memory or disk.
    pub storage: Storage,
    /// Files unpacked, when the payload was a zip.
    pub unpacked: Option<usize>,
    /// `secure/unzipped/autorun.sh`, when the payload brought one.
    pub autorun: Option<PathBuf>,
}

/// Writes payloads into a [`PayloadLayout`] and runs their `autorun.sh`.
#[derive(Debug)]
pub struct PayloadStore {
    layout: PayloadLayout,
    mount: MountPolicy,
    /// Held by a running `autorun.sh`, so the next delivery does not unpack under it.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl PayloadStore {
    /// A store at `layout`.
    pub fn new(layout: PayloadLayout, mount: MountPolicy) -> PayloadStore {
        PayloadStore { layout, mount, running: Arc::new(tokio::sync::Mutex::new(())) }
    }

    /// Its layout.
    pub fn layout(&self) -> &PayloadLayout {
        &self.layout
    }

    /// Writes `plaintext` as `secure/payload`, unpacks it if it is a zip, and starts its
    /// `autorun.sh` in the background. Waits for an `autorun.sh` of an earlier delivery first.
    pub async fn deliver(&self, plaintext: zeroize::Zeroizing<Vec<u8>>) -> Result<Delivery, AgentError> {
        let turn = self.running.clone().lock_owned().await;
        let (layout, mount) = (self.layout.clone(), self.mount);
        let delivery = tokio::task::spawn_blocking(move || store(&layout, mount, &plaintext))
            .await
            .map_err(|e| AgentError::Io { path: "payload writer task".into(), source: std::io::Error::other(e) })??;
        if let Some(script) = delivery.autorun.clone() {
            let (dir, cwd) = (self.layout.dir.clone(), self.layout.unzipped.clone());
            tokio::spawn(async move {
                let _turn = turn;
                autorun(&script, &cwd, &dir).await;
            });
        }
        Ok(delivery)
    }
}

/// The blocking part of a delivery.
fn store(layout: &PayloadLayout, mount: MountPolicy, plaintext: &[u8]) -> Result<Delivery, AgentError> {
    let storage = prepare(&layout.dir, mount)?;
    write_file(&layout.payload, plaintext, 0o600)?;
    let unpacked = unzip(plaintext, &layout.unzipped)?;
    let script = layout.unzipped.join(AUTORUN);
    let autorun = match unpacked {
        Some(_) if fs::symlink_metadata(&script).is_ok_and(|m| m.is_file()) => {
            fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).map_err(AgentError::io(&script))?;
            Some(script)
        }
        _ => None,
    };
    Ok(Delivery { storage, unpacked, autorun })
}

/// Makes `dir` memory-backed if it can, else a 0700 directory; says which.
fn prepare(dir: &Path, mount: MountPolicy) -> Result<Storage, AgentError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(AgentError::io(dir))?;
    let canonical = fs::canonicalize(dir).map_err(AgentError::io(dir))?;
    if tmpfs_mounted_at(&read_mountinfo(), &canonical) {
        return Ok(Storage::Tmpfs);
    }
    let mounted = match mount {
        MountPolicy::Never => Err("not tried".to_owned()),
        MountPolicy::Try => {
            let flags = rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV;
            rustix::mount::mount("tmpfs", &canonical, "tmpfs", flags, TMPFS_OPTIONS).map_err(|e| e.to_string())
        }
    };
    match mounted {
        Ok(()) => {
            tracing::info!(dir = %canonical.display(), "mounted a tmpfs (size {SECURE_SIZE}) for bootstrap payloads");
            Ok(Storage::Tmpfs)
        }
        Err(why) => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(AgentError::io(dir))?;
            tracing::warn!(
                dir = %canonical.display(),
                "cannot mount a tmpfs ({why}): the bootstrap payload is written ON DISK, in a 0700 directory"
            );
            Ok(Storage::Disk)
        }
    }
}

fn read_mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Whether the last mount at `dir` in a `/proc/self/mountinfo` text is a tmpfs.
fn tmpfs_mounted_at(mountinfo: &str, dir: &Path) -> bool {
    let mut found = false;
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else { continue };
        let Some(point) = before.split(' ').nth(4) else { continue };
        if Path::new(&unescape(point)) == dir {
            found = after.split(' ').next() == Some("tmpfs");
        }
    }
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| u8::from_str_radix(d, 8).ok());
        match (b, octal) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes a new file at `path` (replacing an old one) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(AgentError::io(path)(e)),
        _ => {}
    }
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(AgentError::io(path))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(AgentError::io(path))
}

/// Unpacks `bytes` into a fresh `dir` if they are a zip archive; `None` if they are not.
fn unzip(bytes: &[u8], dir: &Path) -> Result<Option<usize>, AgentError> {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        tracing::info!("the payload is not a zip archive: kept as one file");
        return Ok(None);
    };
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(AgentError::io(dir))?;
    }
    fs::DirBuilder::new().mode(0o700).create(dir).map_err(AgentError::io(dir))?;
    let result = unpack(&mut archive, dir);
    if result.is_err() {
        // Nothing of a refused archive stays.
        let _ = fs::remove_dir_all(dir);
    }
    result.map(Some)
}

fn unpack(archive: &mut zip::ZipArchive<Cursor<&[u8]>>, dir: &Path) -> Result<usize, AgentError> {
    if archive.len() > MAX_ENTRIES {
        return Err(refused(format!("{} entries, more than the {MAX_ENTRIES} allowed", archive.len())));
    }
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| refused(format!("entry {index}: {e}")))?;
        let name = entry.name().to_owned();
        let Some(relative) = contained(&name) else {
            return Err(refused(format!("entry {index} ({name:?}) would be written outside the directory")));
        };
        if entry.is_symlink() {
            return Err(refused(format!("entry {index} ({name:?}) is a symbolic link")));
        }
        let path = dir.join(&relative);
        if entry.is_dir() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&path).map_err(AgentError::io(&path))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(AgentError::io(parent))?;
        }
        let mode = if entry.unix_mode().is_some_and(|m| m & 0o100 != 0) { 0o700 } else { 0o600 };
        let mut out = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(AgentError::io(&path))?;
        let left = MAX_UNPACKED - total;
        let copied = std::io::copy(&mut (&mut entry).take(left + 1), &mut out)
            .map_err(|e| refused(format!("entry {index} ({name:?}): {e}")))?;
        total += copied;
        if total > MAX_UNPACKED {
            return Err(refused(format!("it unpacks to more than {MAX_UNPACKED} bytes")));
        }
    }
    Ok(archive.len())
}

fn refused(why: String) -> AgentError {
    AgentError::BadRequest(format!("payload zip refused: {why}"))
}

/// `name` as a relative path that stays inside the directory (`a/../b` is `b`), or `None`.
fn contained(name: &str) -> Option<PathBuf> {
    if name.contains('\0') {
        return None;
    }
    let mut path = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !path.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Runs `autorun.sh` and logs how it ended.
async fn autorun(script: &Path, cwd: &Path, payload_dir: &Path) {
    tracing::info!(script = %script.display(), "running the payload's {AUTORUN}");
    let env = [("CAIRN_PAYLOAD_DIR", payload_dir.display().to_string())];
    let args = [OsStr::new(AUTORUN)];
    let outcome = actions::run_program(Path::new("sh"), &args, cwd, b"", &env, AUTORUN_TIMEOUT).await;
    let script = script.display();
    match outcome.ended {
        Ended::Exited(s) if s.success() => tracing::info!(%script, "{AUTORUN} succeeded"),
        Ended::Exited(s) => tracing::warn!(%script, status = %s, "{AUTORUN} failed"),
        Ended::TimedOut => tracing::warn!(%script, "{AUTORUN} killed after {:?}", AUTORUN_TIMEOUT),
        Ended::NotStarted(e) => tracing::error!(%script, "{AUTORUN} could not run: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn zip_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn names_stay_inside() {
        assert_eq!(contained("a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(contained("./a/../b"), Some(PathBuf::from("b")));
        for bad in ["../x", "a/../../x", "/etc/passwd", "", ".", "a/..", "nul\0byte"] {
            assert_eq!(contained(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mountinfo_is_read_with_escapes_and_the_last_mount_wins() {
        let info = "22 1 0:21 / /var/lib/cairn\\040agent/secure rw - ext4 /dev/x rw\n\
                    30 22 0:40 / /var/lib/cairn\\040agent/secure rw,nosuid - tmpfs tmpfs rw,size=32768k,mode=700\n";
        assert!(tmpfs_mounted_at(info, Path::new("/var/lib/cairn agent/secure")));
        assert!(!tmpfs_mounted_at(info, Path::new("/var/lib/cairn agent")));
        let unmounted = format!("{info}31 22 0:41 / /var/lib/cairn\\040agent/secure rw - ext4 /dev/y rw\n");
        assert!(!tmpfs_mounted_at(&unmounted, Path::new("/var/lib/cairn agent/secure")));
        assert_eq!(unescape("a\\011b\\134c\\9"), "a\tb\\c\\9");
    }

    #[test]
    fn without_a_mount_the_payload_is_on_disk_in_a_private_directory() {
        let state = tempfile::tempdir().unwrap();
        let layout = PayloadLayout::under(state.path());
        let d = store(&layout, MountPolicy::Never, b"plain secret").unwrap();
        assert_eq!((d.storage, d.unpacked, d.autorun), (Storage::Disk, None, None));
        assert_eq!(fs::read(&layout.payload).unwrap(), b"plain secret");
        assert_eq!((mode(&layout.dir), mode(&layout.payload)), (0o700, 0o600));
        assert!(!layout.unzipped.exists());
        // A second delivery replaces the first.
        store(&layout, MountPolicy::Never, b"second").unwrap();
        assert_eq!(fs::read(&layout.payload).unwrap(), b"second");
    }

    #[test]
    fn a_zip_is_unpacked_afresh_with_its_modes_and_autorun() {
        let state = tempfile::tempdir().unwrap();
        let layout = PayloadLayout::under(state.path());
        let z = zip_of(&[
            ("conf/", b"", 0o755),
            ("conf/a.txt", b"A", 0o644),
            ("autorun.sh", b"exit 0\n", 0o755),
            ("run", b"x", 0o755),
        ]);
        let d = store(&layout, MountPolicy::Never, &z).unwrap();
        assert_eq!(d.unpacked, Some(4));
        assert_eq!(d.autorun, Some(layout.unzipped.join(AUTORUN)));
        assert_eq!(fs::read(layout.unzipped.join("conf/a.txt")).unwrap(), b"A");
        assert_eq!(fs::read(&layout.payload).unwrap(), z, "the zip itself is kept as the payload");
        assert_eq!((mode(&layout.unzipped.join("conf/a.txt")), mode(&layout.unzipped.join("run"))), (0o600, 0o700));
        assert_eq!(mode(&layout.unzipped.join(AUTORUN)), 0o700);
        // The next zip replaces the whole directory.
        store(&layout, MountPolicy::Never, &zip_of(&[("b.txt", b"B", 0o644)])).unwrap();
        assert!(!layout.unzipped.join("conf").exists());
        assert_eq!(fs::read(layout.unzipped.join("b.txt")).unwrap(), b"B");
    }

    #[test]
    fn escaping_or_linked_entries_refuse_the_whole_archive() {
        let state = tempfile::tempdir().unwrap();
        let layout = PayloadLayout::under(state.path());
        for (entries, why) in [
            (vec![("ok.txt", &b"fine"[..], 0o644), ("../escape.txt", b"x", 0o644)], "outside the directory"),
            (vec![("ok.txt", &b"fine"[..], 0o644), ("a/../../escape.txt", b"x", 0o644)], "outside the directory"),
        ] {
            let e = store(&layout, MountPolicy::Never, &zip_of(&entries)).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(!layout.unzipped.exists(), "nothing of a refused archive stays");
            assert!(!state.path().join("escape.txt").exists() && !layout.dir.join("escape.txt").exists());
        }
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc", zip::write::SimpleFileOptions::default()).unwrap();
        let linked = w.finish().unwrap().into_inner();
        let e = store(&layout, MountPolicy::Never, &linked).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!layout.unzipped.exists());
    }

    #[test]
    fn an_archive_unpacking_past_the_limit_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let layout = PayloadLayout::under(state.path());
        let big = vec![0u8; (MAX_UNPACKED / 2 + 1) as usize];
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for name in ["a", "b"] {
            w.start_file(name, opts).unwrap();
            w.write_all(&big).unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 200_000, "compresses well: {}", bomb.len());
        let e = store(&layout, MountPolicy::Never, &bomb).unwrap_err().to_string();
        assert!(e.contains("unpacks to more than"), "{e}");
        assert!(!layout.unzipped.exists());
    }
}
