//! Trusted VM launch on real parts: `cairn image encrypt` with the real qemu-img, the secret
//! delivered as a bootstrap payload to an attested `cairn agent` on swtpm (registrar, verifier
//! and agent as real processes), and `cairn image open` with the released secret.
//!
//! - The encrypted qcow2 cannot be read without its secret (qemu-img refuses with none and with a
//!   wrong one, and the plaintext appears nowhere in its bytes); once the node attested, the
//!   released `image-secret` decrypts it to the very bytes it was made from.
//! - A directory given to `cairn node add --payload` arrives unpacked with its modes, and its
//!   `autorun.sh` runs on the node.
//!
//! Waits have generous timeouts; nothing is asserted about wall time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cairn_tpm::swtpm::SwtpmCa;
use fleet::{cairn, free_port, AgentNode, Fleet, Unmount, TIMEOUT};

/// Runs `cairn` with `args`: success, and stdout + stderr.
fn run(args: &[&str]) -> (bool, String) {
    let out = cairn().args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// 4 MiB whose every 512-byte sector starts with a marker naming it, then a byte pattern.
fn disk() -> Vec<u8> {
    let mut d = Vec::with_capacity(4 << 20);
    for sector in 0..(4u32 << 20) / 512 {
        let mut s = format!("CAIRN-PLAINTEXT-SECTOR-{sector:08}|").into_bytes();
        s.extend((0..512 - s.len()).map(|i| (i as u32 * 31 + sector) as u8));
        d.extend(s);
    }
    d
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Whether qemu-img converts `image` to raw, opened with the secret in `secret` (or none).
fn qemu_img_reads(image: &Path, secret: Option<&Path>, dir: &Path) -> (bool, String) {
    let out = dir.join("attempt.raw");
    let mut c = Command::new("qemu-img");
    c.arg("convert");
    match secret {
        Some(s) => c
            .args(["--object", &format!("secret,id=s0,file={}", s.display()), "--image-opts"])
            .arg(format!("driver=qcow2,file.filename={},encrypt.key-secret=s0", image.display())),
        None => c.arg(image),
    };
    let o = c.args(["-O", "raw"]).arg(&out).output().unwrap();
    let _ = std::fs::remove_file(&out);
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn start(dir: &Path, ca_name: &str) -> (Fleet, AgentNode, Unmount) {
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(ca_name)).unwrap();
    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let node = AgentNode::start(&dir.join("host"), &ca, &http);
    let unmount = Unmount(node.state.join("secure"));
    fleet.start_verifier(free_port());
    (fleet, node, unmount)
}

#[test]
fn an_encrypted_image_opens_only_with_the_secret_an_attested_host_receives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plain = disk();
    let raw = dir.join("vm.raw");
    std::fs::write(&raw, &plain).unwrap();
    let image = dir.join("vm.qcow2");
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // The tenant encrypts the image; the secret goes only into the payload zip.
    let (ok, out) = run(&["image", "encrypt", &s(&raw), &s(&image)]);
    assert!(ok, "{out}");
    assert!(out.contains("encrypting into") && out.contains("vm.qcow2.payload.zip"), "{out}");
    let payload = dir.join("vm.qcow2.payload.zip");
    assert_eq!(mode(&payload), 0o600);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&payload).unwrap()).unwrap();
    let secret = std::io::read_to_string(zip.by_name("image-secret").unwrap()).unwrap();
    assert_eq!(zip.by_name("image-secret").unwrap().unix_mode().unwrap() & 0o777, 0o600);
    let note = std::io::read_to_string(zip.by_name("image.txt").unwrap()).unwrap();
    assert!(note.contains("vm.qcow2") && note.contains("cairn image open"), "{note}");
    assert!(!out.contains(&secret), "the secret was printed: {out}");
    assert!(!note.contains(&secret));
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn-image-secret-"))
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b == secret.as_bytes()))
        .collect();
    assert!(leftovers.is_empty(), "the temporary secret file stayed: {:?}", leftovers[0].path());
    let (ok, out) = run(&["image", "encrypt", &s(&raw), &s(&image)]);
    assert!(!ok && out.contains("exists already"), "{out}");

    // Without the secret the image cannot be read.
    let bytes = std::fs::read(&image).unwrap();
    assert!(!bytes.windows(22).any(|w| w == b"CAIRN-PLAINTEXT-SECTOR"), "plaintext in the encrypted image");
    let (ok, err) = qemu_img_reads(&image, None, dir);
    assert!(!ok && err.contains("key-secret"), "{err}");
    let wrong = dir.join("wrong-secret");
    std::fs::write(&wrong, "0".repeat(64)).unwrap();
    let (ok, err) = qemu_img_reads(&image, Some(&wrong), dir);
    assert!(!ok && err.contains("cannot unlock any keyslot"), "{err}");
    let (ok, out) = run(&["image", "open", &s(&image), "--secret-file", &s(&wrong), "--to", &s(&dir.join("x.raw"))]);
    assert!(!ok && out.contains(&format!("the secret does not open {}", image.display())), "{out}");
    assert!(!dir.join("x.raw").exists(), "a failed decryption leaves no file");
    let (ok, out) = run(&["image", "open", &s(&raw), "--secret-file", &s(&wrong), "--check"]);
    assert!(!ok && out.contains("not in qcow2 format"), "{out}");

    // The host attests; the payload is released to it and unpacked in its secure directory.
    let (fleet, host, _unmount) = start(dir, "image-ca");
    let released = host.state.join("secure/unzipped/image-secret");
    let (ok, out) = run(&["image", "open", &s(&image), "--secret-file", &s(&released), "--check"]);
    assert!(!ok && out.contains("was the payload released"), "{out}");
    let (ok, out) = fleet.node(&["add", &host.uuid, "--payload", &s(&payload)]);
    assert!(ok && out.contains("payload released"), "{out}");
    assert_eq!(std::fs::read_to_string(&released).unwrap(), secret, "the secret arrives as it was made");

    // On the host, the released secret opens the image.
    let (ok, out) = run(&["image", "open", &s(&image), "--secret-file", &s(&released), "--check"]);
    assert!(ok && out.contains("the secret opens it"), "{out}");
    let decrypted = dir.join("decrypted.raw");
    let (ok, out) = run(&["image", "open", &s(&image), "--secret-file", &s(&released), "--to", &s(&decrypted)]);
    assert!(ok, "{out}");
    assert_eq!(mode(&decrypted), 0o600);
    assert!(std::fs::read(&decrypted).unwrap() == plain, "the decrypted image differs from the original");
    let (ok, out) = run(&["image", "open", &s(&image), "--secret-file", &s(&released), "--print-qemu-args"]);
    assert!(ok, "{out}");
    let line = out.trim();
    assert_eq!(
        line,
        format!(
            "-object secret,id=cairn-image-secret,file={},format=raw \
             -drive file={},format=qcow2,encrypt.key-secret=cairn-image-secret",
            released.canonicalize().unwrap().display(),
            image.canonicalize().unwrap().display()
        )
    );
    // The printed arguments are what qemu needs: the same option strings open the image with qemu-img.
    let words: Vec<&str> = line.split(' ').collect();
    let drive = words[3].replacen("file=", "file.filename=", 1).replace("format=qcow2", "driver=qcow2");
    let o = Command::new("qemu-img").args(["check", "--object", words[1], "--image-opts", &drive]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_directory_payload_arrives_unpacked_and_its_autorun_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let payload = dir.join("launch");
    std::fs::create_dir_all(payload.join("bin")).unwrap();
    std::fs::create_dir_all(payload.join("conf")).unwrap();
    let write = |rel: &str, data: &str, mode: u32| {
        let p = payload.join(rel);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("autorun.sh", "#!/bin/sh\nset -e\n./bin/tool > \"$CAIRN_PAYLOAD_DIR/ran\"\n", 0o755);
    write("bin/tool", "#!/bin/sh\necho \"tool ran with $(cat conf/app.conf)\"\n", 0o755);
    write("conf/app.conf", "answer=42", 0o644);

    let (fleet, host, _unmount) = start(dir, "image-dir-ca");
    let (ok, out) = fleet.node(&["add", &host.uuid, "--payload", payload.to_str().unwrap()]);
    assert!(ok && out.contains("payload released"), "{out}");
    assert!(out.contains("zipped (3 files"), "{out}");
    let unzipped = host.state.join("secure/unzipped");
    assert_eq!(std::fs::read_to_string(unzipped.join("conf/app.conf")).unwrap(), "answer=42");
    assert_eq!(mode(&unzipped.join("bin/tool")), 0o700, "an executable stays executable");
    assert_eq!(mode(&unzipped.join("conf/app.conf")), 0o600);
    let ran = host.state.join("secure/ran");
    let deadline = Instant::now() + TIMEOUT;
    while !ran.exists() || std::fs::read_to_string(&ran).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "autorun.sh did not run");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "tool ran with answer=42\n");
}
