//! `cairn vtpm` on real parts: a host swtpm as the host TPM, vTPMs as real swtpm processes.
//!
//! - `create` seals the state key to the host TPM and manufactures the vTPM; `start --tcp` serves it,
//!   and a client reads an EK whose public area hashes to the inventory's digest, with an EK
//!   certificate that chains to the vTPM CA (a key of the host TPM) and certifies that very key.
//! - `start` without `--tcp` makes the control socket QEMU's `-tpmdev emulator` connects to, and
//!   swtpm initialises (decrypts its state) when told so there, as QEMU tells it.
//! - The state directory is useless alone: swtpm on a copy, without the key or with a wrong key,
//!   does not start; a different host TPM cannot unseal the key, and says so.
//! - `stop` ends the process, `destroy` removes everything, `list --json` reports each state.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_core::ekcert::{ek_matches, verify_chain_with, Certificate, TrustStore, VerifyOptions};
use cairn_tpm::swtpm::{free_port_pair, Swtpm, SwtpmOptions};
use cairn_tpm::{EkKind, Tpm};
use serde_json::Value;

/// Runs `cairn vtpm ARGS`: success, stdout, stderr.
fn vtpm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).arg("vtpm").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(args: &[&str]) -> String {
    let (ok, out, err) = vtpm(args);
    assert!(ok, "cairn vtpm {args:?} failed: {out}{err}");
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn list(dir: &Path) -> Vec<Value> {
    serde_json::from_str::<Value>(&ok(&["list", "--dir", s(dir), "--json"])).unwrap().as_array().unwrap().clone()
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|st| st.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"))
}

/// Stops every vTPM under a directory when the test ends, however it ends.
struct StopAll(PathBuf);

impl Drop for StopAll {
    fn drop(&mut self) {
        for vm in ["vm1", "vm2"] {
            let _ = vtpm(&["stop", vm, "--dir", s(&self.0)]);
        }
    }
}

/// Runs swtpm (started, on TCP) on a copy of a state directory with `key` (binary) or none:
/// whether it came up.
fn swtpm_on_copy(state: &Path, key: Option<&Path>, work: &Path) -> (bool, String) {
    let port = free_port_pair().unwrap();
    let pid = work.join("pid");
    let log = work.join("log");
    let mut c = Command::new("swtpm");
    c.args(["socket", "--tpm2", "-d", "--flags", "startup-clear"])
        .arg("--tpmstate")
        .arg(format!("dir={}", s(state)))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--pid")
        .arg(format!("file={}", s(&pid)))
        .arg("--log")
        .arg(format!("file={}", s(&log)));
    if let Some(k) = key {
        c.arg("--key").arg(format!("file={},format=binary,mode=aes-256-cbc", s(k)));
    }
    let status = c.status().unwrap();
    let came_up = status.success() && Tpm::open(&format!("swtpm:host=127.0.0.1,port={port}")).is_ok_and(|mut t| t.ek(EkKind::Rsa2048).is_ok());
    if let Ok(p) = std::fs::read_to_string(&pid) {
        let _ = Command::new("kill").arg(p.trim()).status();
    }
    (came_up, std::fs::read_to_string(&log).unwrap_or_default())
}

/// Sends swtpm's control command CMD_INIT (2, no flags) over a unixio control socket; the result.
fn ctrl_init(sock: &Path) -> u32 {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(sock).unwrap();
    c.write_all(&[0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
    let mut res = [0u8; 4];
    c.read_exact(&mut res).unwrap();
    u32::from_be_bytes(res)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn vtpm_lifecycle_sealed_to_the_host_tpm() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Swtpm::start(&tmp.path().join("host"), SwtpmOptions::default()).unwrap();
    let other_host = Swtpm::start(&tmp.path().join("other-host"), SwtpmOptions::default()).unwrap();
    let dir = tmp.path().join("vtpms");
    let _stop = StopAll(dir.clone());
    let d = s(&dir);

    ok(&["create", "vm1", "--dir", d, "--host-tcti", &host.tcti()]);
    let (created_twice, _, err) = vtpm(&["create", "vm1", "--dir", d, "--host-tcti", &host.tcti()]);
    assert!(!created_twice && err.contains("exists already"), "{err}");
    let entry: Value = serde_json::from_slice(&std::fs::read(dir.join("vm1/vtpm.json")).unwrap()).unwrap();
    let listed = list(&dir);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["vm"], "vm1");
    assert_eq!(listed[0]["state"], "stopped");
    // On disk: sealed blobs and encrypted state, never the key.
    for f in ["statekey.pub", "statekey.priv", "state/tpm2-00.permall", "ek-rsa2048.crt"] {
        assert!(dir.join("vm1").join(f).is_file(), "{f}");
    }

    // Serve it on TCP; a client reads the EK the inventory names, and its certificate.
    let port = free_port_pair().unwrap();
    let tcti = ok(&["start", "vm1", "--dir", d, "--host-tcti", &host.tcti(), "--tcp", &port.to_string()]);
    assert_eq!(tcti.trim(), format!("swtpm:host=127.0.0.1,port={port}"));
    let running = list(&dir);
    assert_eq!(running[0]["state"], "running");
    let pid = running[0]["pid"].as_u64().unwrap();
    assert!(alive(pid));
    let (ek, cert) = {
        let mut tpm = Tpm::open(tcti.trim()).unwrap();
        let ek = tpm.ek(EkKind::Rsa2048).unwrap();
        (ek, tpm.ek_certificate(EkKind::Rsa2048).unwrap().unwrap())
    };
    let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ek.public));
    assert_eq!(entry["ek_public_sha256"], digest);
    assert_eq!(entry["ek_name"], hex::encode(&ek.name));
    assert_eq!(std::fs::read(dir.join("vm1/ek-rsa2048.crt")).unwrap(), cert);

    // The EK certificate chains to the vTPM CA (self-signed, its key in the host TPM) and
    // certifies this EK.
    let ca = dir.join(".vtpm-ca");
    let mut store = TrustStore::new();
    assert_eq!(store.add_anchors_from_bytes(&std::fs::read(ca.join("ca-cert.der")).unwrap()).unwrap(), 1);
    let leaf = Certificate::from_der(&cert).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let chain = verify_chain_with(&leaf, &store, now, VerifyOptions { require_self_signed_root: true }).unwrap();
    assert_eq!(chain.path.len(), 2, "{chain:?}");
    assert_eq!(chain.tpm.as_ref().and_then(|t| t.model.as_deref()), Some("swtpm"));
    ek_matches(&leaf, &cairn_core::tpm::Public::parse_tpm2b(&ek.public).unwrap()).unwrap();
    // The CA key is a host TPM key: its blobs load only there (another TPM cannot sign with it).
    let (ca_key, _) = cairn_tpm::vtpm_ca::CaKey::read_dir(&ca).unwrap().unwrap();
    Tpm::open(&host.tcti()).unwrap().ca_sign(&ca_key, &[7; 32]).unwrap();
    assert!(Tpm::open(&other_host.tcti()).unwrap().ca_sign(&ca_key, &[7; 32]).is_err());

    let (twice, _, err) = vtpm(&["start", "vm1", "--dir", d, "--host-tcti", &host.tcti()]);
    assert!(!twice && err.contains("runs already"), "{err}");
    assert!(ok(&["stop", "vm1", "--dir", d]).contains("stopped"));
    assert!(!alive(pid));
    assert_eq!(list(&dir)[0]["state"], "stopped");

    // The QEMU form: a unix control socket.
    let sock = ok(&["start", "vm1", "--dir", d, "--host-tcti", &host.tcti()]);
    assert_eq!(Path::new(sock.trim()), dir.join("vm1/swtpm.sock"));
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(sock.trim()).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // What QEMU does first on that socket: CMD_INIT on the control channel, which makes swtpm
    // decrypt its state with the key it was given. Result 0 is TPM_SUCCESS.
    assert_eq!(ctrl_init(Path::new(sock.trim())), 0);
    ok(&["stop", "vm1", "--dir", d]);
    assert!(!dir.join("vm1/swtpm.sock").exists());

    // The state alone is useless: swtpm on a copy without the key, or with a wrong one, fails.
    let stolen = tmp.path().join("stolen");
    copy_dir(&dir.join("vm1/state"), &stolen.join("state"));
    let (up, log) = swtpm_on_copy(&stolen.join("state"), None, &stolen);
    assert!(!up, "swtpm ran on the state without its key: {log}");
    std::fs::write(stolen.join("wrong.key"), [0x5a; 32]).unwrap();
    let (up, log) = swtpm_on_copy(&stolen.join("state"), Some(&stolen.join("wrong.key")), &stolen);
    assert!(!up, "swtpm ran on the state with a wrong key: {log}");
    assert!(log.contains("HMAC") || log.contains("Decrypt") || log.contains("libtpms"), "{log}");
    // As QEMU would meet it: the control socket comes up, CMD_INIT fails.
    let wrong_sock = stolen.join("ctrl.sock");
    let status = Command::new("swtpm")
        .args(["socket", "--tpm2", "-d"])
        .arg("--tpmstate")
        .arg(format!("dir={}", s(&stolen.join("state"))))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", s(&wrong_sock)))
        .arg("--key")
        .arg(format!("file={},format=binary,mode=aes-256-cbc", s(&stolen.join("wrong.key"))))
        .arg("--pid")
        .arg(format!("file={}", s(&stolen.join("ctrl.pid"))))
        .status()
        .unwrap();
    assert!(status.success());
    let init = ctrl_init(&wrong_sock);
    let _ = Command::new("kill").arg(std::fs::read_to_string(stolen.join("ctrl.pid")).unwrap().trim()).status();
    assert_ne!(init, 0, "CMD_INIT succeeded with a wrong key");

    // Another host TPM cannot unseal the key.
    let (started, out, err) = vtpm(&["start", "vm1", "--dir", d, "--host-tcti", &other_host.tcti()]);
    assert!(!started, "{out}");
    assert!(err.contains("unsealing the state key of vm1") && err.contains("does not load under this TPM's storage primary"), "{err}");
    assert_eq!(list(&dir)[0]["state"], "stopped");

    // A second VM gets its own key and EK.
    ok(&["create", "vm2", "--dir", d, "--host-tcti", &host.tcti()]);
    let both = list(&dir);
    assert_eq!(both.len(), 2);
    assert_ne!(both[0]["ek_public_sha256"], both[1]["ek_public_sha256"]);
    assert_ne!(std::fs::read(dir.join("vm1/statekey.priv")).unwrap(), std::fs::read(dir.join("vm2/statekey.priv")).unwrap());

    // destroy stops and removes.
    ok(&["start", "vm2", "--dir", d, "--host-tcti", &host.tcti()]);
    let pid2 = list(&dir)[1]["pid"].as_u64().unwrap();
    ok(&["destroy", "vm2", "--dir", d]);
    assert!(!alive(pid2));
    assert!(!dir.join("vm2").exists());
    ok(&["destroy", "vm1", "--dir", d]);
    assert!(!dir.join("vm1").exists());
    assert!(list(&dir).is_empty());
    let (gone, _, err) = vtpm(&["destroy", "vm1", "--dir", d]);
    assert!(!gone && err.contains("no vTPM for VM vm1"), "{err}");
}
