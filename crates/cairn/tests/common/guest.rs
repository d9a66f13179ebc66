//! A real Linux guest for VM tests: Debian's cloud kernel (scripts/guest-kit.sh) booted by
//! qemu-system-x86_64 under TCG with an initramfs built here — busybox, the virtio network modules,
//! this build's `cairn` binary with the shared libraries it loads, and an init script. The guest
//! reaches the host at 10.0.2.2 (QEMU user networking, i.e. the host's 127.0.0.1) and is reached
//! through forwarded ports. Its console (ttyS0) goes to a file the test reads.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The kernel, modules and busybox (scripts/guest-kit.sh), or `None` outside CI when they cannot be
/// fetched. Under CI a missing kit fails the test.
pub fn kit() -> Option<PathBuf> {
    let dir = repo_root().join("target/guest-kit");
    let out = Command::new(repo_root().join("scripts/guest-kit.sh")).arg(&dir).output().unwrap();
    if out.status.success() {
        return Some(dir);
    }
    let why = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the guest kit is needed under CI: {why}");
    }
    eprintln!("skipped: no guest kit: {why}");
    None
}

/// An initramfs in the kernel's `newc` cpio format (uncompressed).
#[derive(Default)]
pub struct Initramfs {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Initramfs {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// Makes `path` and its parents.
    pub fn dir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            at = format!("{at}/{part}");
            if self.dirs.insert(at.clone()) {
                self.entry(&at, 0o040755, b"");
            }
        }
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                self.dir(parent);
            }
        }
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.parent(path);
        self.entry(path, 0o100000 | mode, data);
    }

    /// A symbolic link `path` → `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parent(path);
        self.entry(path, 0o120777, target.as_bytes());
    }

    /// Busybox at /bin/busybox with its applets linked in /bin.
    pub fn busybox(&mut self, kit: &Path) {
        for d in ["/proc", "/sys", "/dev", "/tmp", "/var/lib", "/etc", "/root"] {
            self.dir(d);
        }
        self.file("/bin/busybox", 0o755, &std::fs::read(kit.join("busybox")).unwrap());
        for applet in ["sh", "mount", "insmod", "ip", "cat", "echo", "sleep", "poweroff", "ls", "mkdir", "sync", "head", "base64"] {
            self.symlink(&format!("/bin/{applet}"), "busybox");
        }
    }

    /// The kit's modules under /modules, with their load order.
    pub fn modules(&mut self, kit: &Path) {
        let order = std::fs::read_to_string(kit.join("modules/order")).unwrap();
        self.file("/modules/order", 0o644, order.as_bytes());
        for m in order.lines() {
            self.file(&format!("/modules/{m}.ko"), 0o644, &std::fs::read(kit.join(format!("modules/{m}.ko"))).unwrap());
        }
    }

    /// `exe` without its debug information at `guest_path`, with every shared library it and the TPM
    /// device TCTI load (as `ldd` lists them). Returns the bytes stored, for digests.
    pub fn program(&mut self, exe: &Path, guest_path: &str, scratch: &Path) -> Vec<u8> {
        let stripped = scratch.join("stripped");
        let st = Command::new("objcopy").arg("--strip-debug").arg(exe).arg(&stripped).status().unwrap();
        assert!(st.success(), "objcopy --strip-debug {} failed", exe.display());
        let bytes = std::fs::read(&stripped).unwrap();
        self.file(guest_path, 0o755, &bytes);
        let mut libs = ldd(exe);
        let tcti = libs
            .iter()
            .find(|l| l.contains("libtss2-tctildr"))
            .map(|l| Path::new(l).with_file_name("libtss2-tcti-device.so.0"))
            .expect("the binary loads libtss2-tctildr");
        libs.extend(ldd(&tcti));
        libs.push(tcti.to_string_lossy().into_owned());
        libs.sort();
        libs.dedup();
        for lib in libs {
            let data = std::fs::read(&lib).unwrap_or_else(|e| panic!("{lib}: {e}"));
            self.file(&lib, 0o755, &data);
        }
        bytes
    }

    /// Writes the archive.
    pub fn write(mut self, path: &Path) {
        self.entry("TRAILER!!!", 0, b"");
        std::fs::write(path, &self.out).unwrap();
    }
}

/// The absolute paths of the shared objects `exe` loads (incl. the dynamic loader).
fn ldd(exe: &Path) -> Vec<String> {
    let out = Command::new("ldd").arg(exe).output().unwrap();
    assert!(out.status.success(), "ldd {} failed", exe.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// The start of an init script: file systems, modules, the network (10.0.2.15/24 via 10.0.2.2).
pub const INIT_PRELUDE: &str = "#!/bin/sh
export PATH=/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t securityfs securityfs /sys/kernel/security
mount -t tmpfs tmp /tmp
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo \"GUEST: insmod $m failed\"; done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
";

/// A running QEMU guest; killed on drop.
pub struct Guest {
    child: Child,
    pub console: PathBuf,
    pub pid: u32,
}

/// How the guest is started.
pub struct GuestSpec<'a> {
    pub kit: &'a Path,
    pub initramfs: &'a Path,
    /// QEMU's `-uuid`.
    pub uuid: &'a str,
    /// The vTPM's control socket (`-tpmdev emulator`), if any.
    pub vtpm_socket: Option<&'a Path>,
    /// Host 127.0.0.1 ports forwarded to guest ports.
    pub forward: &'a [(u16, u16)],
    pub console: PathBuf,
    /// Kernel command line additions.
    pub append: &'a str,
}

impl Guest {
    pub fn start(spec: &GuestSpec<'_>) -> Guest {
        let mut netdev = "user,id=n0".to_owned();
        for (host, guest) in spec.forward {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", "pc,accel=tcg", "-m", "768", "-display", "none", "-nodefaults", "-no-reboot"])
            .args(["-uuid", spec.uuid])
            .arg("-serial")
            .arg(format!("file:{}", spec.console.display()))
            .arg("-kernel")
            .arg(spec.kit.join("vmlinuz"))
            .arg("-initrd")
            .arg(spec.initramfs)
            .args(["-append", &format!("console=ttyS0 panic=-1 {}", spec.append)])
            .args(["-netdev", &netdev, "-device", "virtio-net-pci,netdev=n0"]);
        if let Some(sock) = spec.vtpm_socket {
            cmd.arg("-chardev")
                .arg(format!("socket,id=chrtpm,path={}", sock.display()))
                .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"]);
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        Guest { child, console: spec.console.clone(), pid }
    }

    /// The console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `marker`; panics with the console on timeout or QEMU exit.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console();
            if text.contains(marker) {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
                panic!("QEMU exited ({status}) before {marker:?}: {err}\nconsole:\n{text}");
            }
            assert!(Instant::now() < deadline, "guest did not show {marker:?} in {timeout:?}; console:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.console();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("guest console (last {} lines):", tail.len());
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
        }
    }
}

/// Writes `text` to a new file (for configuration handed to the guest).
pub fn write_file(path: &Path, text: &str) {
    std::fs::File::create(path).unwrap().write_all(text.as_bytes()).unwrap();
}
