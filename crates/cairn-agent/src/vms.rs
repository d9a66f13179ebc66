//! Host-side VM evidence, batched under one quote (`GET /cairn/v1/vms/batch`; the format is
//! `cairn_core::vmbatch`, documented in docs/vm-evidence.md).
//!
//! In host mode every running QEMU process (`qemu-system-*`) is one VM. Its leaf is built from
//! outside the guest: the VM id from `-uuid`; the QEMU code verdict from measuring the process's
//! executable mappings now (in memory vs on disk, file digests cached as the hvm loop caches them);
//! SHA-256 of its command line as the launch configuration; and the disk images (`-drive file=`,
//! `-blockdev …filename=`, `-hda`…`-hdd`), `-kernel` and `-initrd` hashed once per launch (the QEMU
//! process, told by pid and start time) — what the VM started from, not re-hashed every round while
//! the guest writes its disk. A QEMU process without `-uuid` cannot be named to a verifier and is
//! reported as skipped.
//!
//! A VM with a Cairn vTPM (`-tpmdev emulator,chardev=C` whose `-chardev socket,id=C,path=P` names
//! `DIR/VM/swtpm.sock`, next to the inventory entry `DIR/VM/vtpm.json` that `cairn vtpm create`
//! writes) also gets:
//! - `vtpm_ek`: the inventory's `ek_public_sha256`, SHA-256 of the vTPM EK's TPM2B_PUBLIC (the EK
//!   itself, not its certificate: a certificate re-issued for the same key leaves it unchanged).
//!   This is what a VM policy pins (`vtpm_ek`).
//! - `vtpm_state`: SHA-256 over the vTPM's state files as read when the leaf is built (each regular
//!   file of the inventory's `state_dir`, in name order, as name ‖ 00 ‖ u64 length ‖ bytes). It changes
//!   whenever the guest writes the vTPM's NV or swtpm saves its state, so it is evidence of *which*
//!   state was running, not something a policy can pin.
//!
//! A socket that is not a Cairn vTPM's (no inventory beside it) leaves both absent.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_core::alg::Hasher;
use cairn_core::vmbatch::{QemuCode, VmId, VmLeaf};
use cairn_core::{Digest, HashAlg};

use crate::hvm::measure::Measurer;
use crate::hvm::procs::{self, Process};
use crate::hvm::Selector;

/// What a QEMU command line says about the VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuLaunch {
    /// `-uuid`.
    pub uuid: Option<String>,
    /// Disk image files, in command-line order.
    pub disks: Vec<PathBuf>,
    /// `-kernel`.
    pub kernel: Option<PathBuf>,
    /// `-initrd`.
    pub initrd: Option<PathBuf>,
    /// The socket of the `-tpmdev emulator`'s `-chardev socket`.
    pub vtpm_socket: Option<PathBuf>,
}

/// Reads the options that name a VM's files from its NUL-separated command line.
pub fn parse_cmdline(raw: &[u8]) -> QemuLaunch {
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    let mut out = QemuLaunch::default();
    let path = |b: &[u8]| PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b));
    let mut sockets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut tpm_chardev = None;
    let mut i = 0;
    while i < args.len() {
        let opt = args.get(i).copied().unwrap_or_default();
        let val = args.get(i + 1).copied();
        let opt = opt.strip_prefix(b"-").map(|o| o.strip_prefix(b"-").unwrap_or(o)).unwrap_or(opt);
        match (opt, val) {
            (b"uuid", Some(v)) => out.uuid = Some(String::from_utf8_lossy(v).into_owned()),
            (b"kernel", Some(v)) => out.kernel = Some(path(v)),
            (b"initrd", Some(v)) => out.initrd = Some(path(v)),
            (b"hda" | b"hdb" | b"hdc" | b"hdd", Some(v)) => out.disks.push(path(v)),
            (b"drive", Some(v)) => out.disks.extend(option_value(v, b"file").map(|f| path(&f))),
            (b"blockdev", Some(v)) => out.disks.extend(option_value(v, b"filename").map(|f| path(&f))),
            (b"chardev", Some(v)) if v.starts_with(b"socket,") => {
                if let (Some(id), Some(p)) = (option_value(v, b"id"), option_value(v, b"path")) {
                    sockets.insert(id, p);
                }
            }
            (b"tpmdev", Some(v)) if v.starts_with(b"emulator,") => tpm_chardev = option_value(v, b"chardev"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    out.vtpm_socket = tpm_chardev.and_then(|c| sockets.get(&c)).map(|p| path(p));
    out
}

/// The part of a Cairn vTPM's inventory entry (`DIR/VM/vtpm.json`) a leaf uses.
#[derive(Debug, serde::Deserialize)]
struct VtpmEntry {
    state_dir: PathBuf,
    ek_public_sha256: String,
}

/// Most bytes of vTPM state hashed for one leaf (swtpm's state is a few tens of KiB).
const MAX_VTPM_STATE: u64 = 64 << 20;

/// The vTPM digests of a VM whose vTPM socket is `socket` (already resolved): `(state, ek)`, both
/// absent unless it is a Cairn vTPM's.
fn vtpm_digests(socket: &Path) -> Result<(Option<Digest>, Option<Digest>), String> {
    if socket.file_name().is_none_or(|n| n != "swtpm.sock") {
        return Ok((None, None));
    }
    let Some(entry_path) = socket.parent().map(|d| d.join("vtpm.json")) else { return Ok((None, None)) };
    let Ok(text) = std::fs::read(&entry_path) else { return Ok((None, None)) };
    let entry: VtpmEntry = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", entry_path.display()))?;
    let ek = hex::decode(entry.ek_public_sha256.trim())
        .ok()
        .and_then(|b| Digest::from_bytes(HashAlg::Sha256, &b).ok())
        .ok_or_else(|| format!("{}: ek_public_sha256 is not a SHA-256 digest", entry_path.display()))?;
    Ok((Some(state_digest(&entry.state_dir)?), Some(ek)))
}

/// SHA-256 over the regular files of `dir`, in name order: name ‖ 00 ‖ u64 length ‖ bytes each.
fn state_digest(dir: &Path) -> Result<Digest, String> {
    let err = |e: std::io::Error| format!("vTPM state {}: {e}", dir.display());
    let mut files: Vec<(Vec<u8>, PathBuf)> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (std::os::unix::ffi::OsStrExt::as_bytes(e.file_name().as_os_str()).to_vec(), e.path()))
        .collect();
    files.sort();
    let mut h = Hasher::new(HashAlg::Sha256);
    let mut total = 0u64;
    for (name, path) in files {
        // Bounded before anything is read: a state directory stuffed with a huge file is refused, not loaded.
        total = total.saturating_add(std::fs::metadata(&path).map_err(err)?.len());
        if total > MAX_VTPM_STATE {
            return Err(format!("vTPM state {}: more than {MAX_VTPM_STATE} bytes", dir.display()));
        }
        let bytes = std::fs::read(&path).map_err(err)?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        h.update(&name);
        h.update(&[0]);
        h.update(&len.to_be_bytes());
        h.update(&bytes);
    }
    Ok(h.finish())
}

/// `key=value` from a QEMU option string (`,,` is a literal comma).
fn option_value(opts: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
    let mut i = 0;
    while i < opts.len() {
        let b = opts.get(i).copied().unwrap_or_default();
        if b == b',' {
            if opts.get(i + 1) == Some(&b',') {
                parts.last_mut()?.push(b',');
                i += 2;
                continue;
            }
            parts.push(Vec::new());
        } else {
            parts.last_mut()?.push(b);
        }
        i += 1;
    }
    parts.into_iter().find_map(|p| p.strip_prefix(key).and_then(|r| r.strip_prefix(b"=")).map(<[u8]>::to_vec))
}

/// One QEMU process's launch: its start time and the digests of the files it was started with.
#[derive(Debug, Default)]
struct Launch {
    start: u64,
    files: HashMap<PathBuf, Digest>,
}

/// The start time (clock ticks after boot, field 22 of `/proc/PID/stat`): with the pid, one launch.
fn start_time(proc_dir: &Path) -> Option<u64> {
    let stat = std::fs::read(proc_dir.join("stat")).ok()?;
    let after = stat.iter().rposition(|b| *b == b')').and_then(|i| stat.get(i + 1..))?;
    let fields: Vec<&[u8]> = after.split(|b| *b == b' ').filter(|f| !f.is_empty()).collect();
    std::str::from_utf8(fields.get(19)?).ok()?.parse().ok()
}

/// The host's VMs as evidence leaves.
pub struct VmEvidence {
    proc_root: PathBuf,
    selectors: Vec<Selector>,
    measurer: Mutex<Measurer>,
    launches: Mutex<HashMap<u32, Launch>>,
}

impl std::fmt::Debug for VmEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmEvidence").field("proc_root", &self.proc_root).finish_non_exhaustive()
    }
}

/// The leaves, and the QEMU processes left out with the reason.
#[derive(Debug, Default)]
pub struct Collected {
    /// One leaf per VM, ordered by VM id.
    pub leaves: Vec<VmLeaf>,
    /// `pid: reason` of each QEMU process without a leaf.
    pub skipped: Vec<String>,
}

impl VmEvidence {
    /// Evidence of the `qemu-system-*` processes under `proc_root`.
    pub fn new(proc_root: &Path) -> Result<VmEvidence, String> {
        let selectors = vec![Selector::new("qemu-system-*").ok_or("qemu-system-* is not a selector")?];
        Ok(VmEvidence {
            proc_root: proc_root.to_path_buf(),
            selectors,
            measurer: Mutex::new(Measurer::new(proc_root, HashAlg::Sha256)),
            launches: Mutex::new(HashMap::new()),
        })
    }

    /// Builds every VM's leaf now (blocking: reads `/proc` and files).
    pub fn collect(&self) -> Collected {
        let mut out = Collected::default();
        let running = procs::select(&self.proc_root, &self.selectors, None);
        for p in &running {
            match self.leaf(p) {
                Ok(leaf) => out.leaves.push(leaf),
                Err(why) => out.skipped.push(format!("{}: {why}", p.pid.get())),
            }
        }
        // What exited is forgotten: its files and its mappings' cached digests.
        if let Ok(mut l) = self.launches.lock() {
            l.retain(|pid, _| running.iter().any(|p| p.pid.get() == *pid));
        }
        if let Ok(mut m) = self.measurer.lock() {
            m.end_round();
        }
        out.leaves.sort_by_key(|l| l.vm.to_string());
        out.leaves.dedup_by_key(|l| l.vm.to_string());
        out
    }

    fn leaf(&self, p: &Process) -> Result<VmLeaf, String> {
        let dir = self.proc_root.join(p.pid.get().to_string());
        let cmdline = std::fs::read(dir.join("cmdline")).map_err(|e| format!("cmdline: {e}"))?;
        let launch = parse_cmdline(&cmdline);
        let uuid = launch.uuid.as_deref().ok_or("no -uuid: the VM cannot be named")?;
        let vm: VmId = uuid.parse().map_err(|e| format!("-uuid {uuid:?}: {e}"))?;
        let qemu = self.qemu_code(p);
        let pid = p.pid.get();
        let start = start_time(&dir).ok_or("no start time in /proc/PID/stat")?;
        let mut disks = Vec::with_capacity(launch.disks.len());
        for d in &launch.disks {
            disks.push(self.launch_digest(pid, start, &dir, d)?);
        }
        let kernel = launch.kernel.as_ref().map(|k| self.launch_digest(pid, start, &dir, k)).transpose()?;
        let initrd = launch.initrd.as_ref().map(|k| self.launch_digest(pid, start, &dir, k)).transpose()?;
        let (vtpm_state, vtpm_ek) = match &launch.vtpm_socket {
            Some(sock) if sock.is_absolute() => vtpm_digests(sock)?,
            Some(sock) => vtpm_digests(&dir.join("cwd").join(sock))?,
            None => (None, None),
        };
        Ok(VmLeaf {
            vm,
            qemu,
            launch_config: HashAlg::Sha256.hash(&cmdline),
            disks,
            kernel,
            initrd,
            vtpm_state,
            vtpm_ek,
            memory: Vec::new(),
        })
    }

    /// The QEMU process's code: modified when any executable mapping differs from its file.
    fn qemu_code(&self, p: &Process) -> QemuCode {
        let Ok(mut m) = self.measurer.lock() else { return QemuCode::NotMeasured };
        let ms = m.measure(p);
        let exe = ms.iter().find(|x| x.file == p.exe).map(|x| x.file_digest);
        match (exe, ms.iter().any(|x| x.mem != x.disk)) {
            (None, _) => QemuCode::NotMeasured,
            (Some(d), true) => QemuCode::Modified(d),
            (Some(d), false) => QemuCode::Unmodified(d),
        }
    }

    /// SHA-256 of a file the VM was started with, hashed the first time this launch is seen. A
    /// relative path is the QEMU process's (resolved through its working directory).
    fn launch_digest(&self, pid: u32, start: u64, proc_dir: &Path, path: &Path) -> Result<Digest, String> {
        if let Ok(mut l) = self.launches.lock() {
            let launch = l.entry(pid).or_default();
            if launch.start != start {
                *launch = Launch { start, files: HashMap::new() };
            }
            if let Some(d) = launch.files.get(path) {
                return Ok(*d);
            }
        }
        let full = if path.is_absolute() { path.to_path_buf() } else { proc_dir.join("cwd").join(path) };
        let mut f = std::fs::File::open(&full).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut h = Hasher::new(HashAlg::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            h.update(buf.get(..n).unwrap_or_default());
        }
        let d = h.finish();
        if let Ok(mut l) = self.launches.lock() {
            l.entry(pid).or_default().files.insert(path.to_path_buf(), d);
        }
        Ok(d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<u8> {
        args.iter().flat_map(|a| a.bytes().chain(std::iter::once(0))).collect()
    }

    #[test]
    fn command_lines_name_the_vm_and_its_files() {
        let l = parse_cmdline(&cmd(&[
            "qemu-system-x86_64",
            "-uuid",
            "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "-drive",
            "if=virtio,file=/var/lib/vm/a,,b.qcow2,format=qcow2",
            "--blockdev",
            "driver=file,node-name=d1,filename=/var/lib/vm/data.img",
            "-hda",
            "disk.raw",
            "-kernel",
            "/boot/vmlinuz",
            "-initrd",
            "/boot/initrd.img",
            "-nographic",
        ]));
        assert_eq!(l.uuid.as_deref(), Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"));
        assert_eq!(l.disks, [PathBuf::from("/var/lib/vm/a,b.qcow2"), PathBuf::from("/var/lib/vm/data.img"), PathBuf::from("disk.raw")]);
        assert_eq!(l.kernel, Some(PathBuf::from("/boot/vmlinuz")));
        assert_eq!(l.initrd, Some(PathBuf::from("/boot/initrd.img")));
        assert_eq!(parse_cmdline(b"qemu\0-uuid"), QemuLaunch::default(), "an option without its value is ignored");
    }

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces_and_parens() {
        let dir = tempfile::tempdir().unwrap();
        let fields: Vec<String> = (3..=25).map(|i| i.to_string()).collect();
        std::fs::write(dir.path().join("stat"), format!("42 (qemu (x) y) {}", fields.join(" "))).unwrap();
        assert_eq!(start_time(dir.path()), Some(22));
        assert!(start_time(&std::path::PathBuf::from("/proc/self")).is_some());
    }

    #[test]
    fn a_cairn_vtpm_gives_its_ek_and_state_digests() {
        let l = parse_cmdline(&cmd(&[
            "q",
            "-chardev",
            "socket,id=other,path=/run/x.sock",
            "-chardev",
            "socket,id=chrtpm,path=/var/lib/cairn/vtpm/vm1/swtpm.sock",
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ]));
        assert_eq!(l.vtpm_socket, Some(PathBuf::from("/var/lib/cairn/vtpm/vm1/swtpm.sock")));
        assert_eq!(parse_cmdline(&cmd(&["q", "-chardev", "socket,id=c,path=/s"])).vtpm_socket, None);

        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm1");
        std::fs::create_dir_all(vm.join("state")).unwrap();
        std::fs::write(vm.join("state/tpm2-00.permall"), b"nv").unwrap();
        let sock = vm.join("swtpm.sock");
        assert_eq!(vtpm_digests(&sock).unwrap(), (None, None), "no inventory: not a Cairn vTPM");
        let ek = HashAlg::Sha256.hash(b"ek public");
        let entry = serde_json::json!({"vm": "vm1", "state_dir": vm.join("state"), "ek_public_sha256": ek.to_hex()});
        std::fs::write(vm.join("vtpm.json"), entry.to_string()).unwrap();
        let (state, got) = vtpm_digests(&sock).unwrap();
        assert_eq!(got, Some(ek));
        let mut m = b"tpm2-00.permall\0".to_vec();
        m.extend_from_slice(&2u64.to_be_bytes());
        m.extend_from_slice(b"nv");
        assert_eq!(state, Some(HashAlg::Sha256.hash(&m)));
        std::fs::write(vm.join("state/tpm2-00.permall"), b"nv written").unwrap();
        assert_ne!(vtpm_digests(&sock).unwrap().0, state, "the guest writing NV changes the state digest");
        assert_eq!(vtpm_digests(&sock).unwrap().1, Some(ek), "but not the EK");
    }

    #[test]
    fn a_drive_without_a_file_names_no_disk() {
        assert!(parse_cmdline(&cmd(&["q", "-drive", "if=none,id=cd0"])).disks.is_empty());
    }
}
