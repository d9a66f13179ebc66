//! Batched host-side VM evidence on real parts: two real QEMU processes (qemu-system-x86_64 under TCG,
//! halted with `-S`, each with its own `-uuid` and qcow2 disk) on a host whose agent runs in host mode
//! on swtpm. One `GET /cairn/v1/vms/batch` returns both VMs' leaves and ONE quote; the test, as the
//! verifier, checks the quote against H(nonce ‖ root) with the agent's AK, each VM's inclusion proof,
//! and each leaf against a policy built from what the test computed itself (SHA-256 of the disk image
//! with `sha256sum`, of the QEMU command line, of the QEMU binary). Disk images are hashed once per
//! launch: a disk rewritten under a running VM leaves its leaf as launched, and the VM started again
//! on another image gets a leaf that fails its policy, naming the new digest; code patched into one QEMU's memory
//! turns its leaf's QEMU verdict to `modified`. A QEMU whose `-tpmdev emulator` talks to a real swtpm laid out
//! as a Cairn vTPM (inventory beside its socket) gets the inventory's EK digest and its state files' digest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use cairn_agent::{Agent, RawConfig};
use cairn_core::crypto::VerifyingKey;
use cairn_core::quote::{decode_quote_string, Expected, QuoteParts};
use cairn_core::tpm::Public;
use cairn_core::vmbatch::{
    check_batch, judge_leaf, verify_batch_quote, BatchHeader, MerkleRoot, QemuCode, VmClaim, VmLeaf, VmLeafOutcome, VmPolicy,
};
use cairn_core::HashAlg;
use common::{client, get, Node};

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// The tests run one at a time: each agent sees every QEMU process on the machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// QEMU started with no descriptor inherited from this process: the in-process agent's TPM commands
/// run on other threads, and an inherited swtpm connection would block the TPM for QEMU's lifetime.
fn qemu_command() -> Command {
    let (program, args) = cairn_tpm::spawn::without_inherited_fds(std::ffi::OsStr::new(QEMU), std::iter::empty::<&str>());
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// QEMU on a new qcow2 image of `size` at `disk`.
fn start_vm(uuid: &str, disk: &Path, size: &str) -> Killed {
    let st = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(disk).arg(size).status().unwrap();
    assert!(st.success());
    let drive = format!("file={},format=qcow2,if=ide", disk.display());
    let child = qemu_command()
        .args(["-machine", "pc,accel=tcg", "-m", "32", "-S", "-nodefaults", "-display", "none", "-uuid", uuid])
        .args(["-drive", &drive])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default().contains("qemu-system-x86_64") {
        assert!(Instant::now() < deadline, "qemu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Killed(child)
}

/// The policy a tenant pins for a VM, from digests the test computed on its own.
fn policy(pid: u32, disk: &Path) -> VmPolicy {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let qemu = HashAlg::Sha256.hash(&std::fs::read(QEMU).unwrap());
    VmPolicy::from_json(
        &serde_json::json!({
            "qemu_code": [format!("sha256:{}", qemu.to_hex())],
            "launch_config": format!("sha256:{}", HashAlg::Sha256.hash(&cmdline).to_hex()),
            "disks": [format!("sha256:{}", sha256sum(disk))],
        })
        .to_string(),
    )
    .unwrap()
}

/// Asks for the batch and checks it as a verifier does; returns each VM's leaf by id.
async fn batch(http: &reqwest::Client, base: &str, ak: &VerifyingKey, nonce: &str) -> Vec<VmLeaf> {
    let (status, body) = get(http, &format!("{base}/cairn/v1/vms/batch?nonce={nonce}&mask=0x2000")).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    let (message, signature, pcrs) = decode_quote_string(r["quote"].as_str().unwrap()).unwrap();
    let root = MerkleRoot::from_hex(r["root"].as_str().unwrap()).unwrap();
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    let verified = verify_batch_quote(ak, parts, Expected::nonce(nonce.as_bytes()), &root).expect("one quote over H(nonce ‖ root)");
    // The same quote does not pass for another nonce.
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    assert!(verify_batch_quote(ak, parts, Expected::nonce(b"another"), &root).is_err());
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<(Vec<u8>, Vec<u8>, String)> = r["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (b64.decode(v["leaf"].as_str().unwrap()).unwrap(), b64.decode(v["proof"].as_str().unwrap()).unwrap(), v["vm"].as_str().unwrap().to_owned()))
        .collect();
    let claims: Vec<VmClaim<'_>> =
        items.iter().map(|(leaf, proof, vm)| VmClaim { vm: vm.parse().unwrap(), leaf, proof }).collect();
    let header = BatchHeader { root, count: r["count"].as_u64().unwrap() as u32 };
    let checked = check_batch(&verified, nonce.as_bytes(), &header, &claims).unwrap();
    assert_eq!(checked.unclaimed, 0);
    checked
        .outcomes
        .into_iter()
        .map(|o| match o {
            VmLeafOutcome::Proved { leaf, .. } => *leaf,
            other => panic!("not included: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_quote_proves_every_vm_and_each_leaf_follows_its_vm() {
    let _serial = SERIAL.lock().await;
    if !Path::new(QEMU).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {QEMU} is missing (Debian: qemu-system-x86)");
        eprintln!("skipped: {QEMU} is missing (Debian: qemu-system-x86)");
        return;
    }
    let node = Node::new();
    let (u1, u2) = ("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "1b1c2d3e-4f50-6172-8394-a5b6c7d8e9f1");
    let (d1, d2) = (node.path("vm1.qcow2"), node.path("vm2.qcow2"));
    let vm1 = start_vm(u1, &d1, "16M");
    let mut vm2 = start_vm(u2, &d2, "16M");
    let config = RawConfig {
        tcti: Some(node.swtpm.tcti()),
        state_dir: Some(node.path("state")),
        listen: Some("127.0.0.1:0".into()),
        register: Some(false),
        hvm: Some(true),
        hvm_interval_ms: Some(60_000),
        ..RawConfig::default()
    }
    .validate()
    .unwrap();
    let agent = Agent::start(config).await.unwrap();
    let http = client(&agent.mtls_cert);
    let base = format!("https://{}", agent.addr);
    let ak = VerifyingKey::from_public(&Public::parse_tpm2b(&agent.identity.ak.public).unwrap());

    let leaves = batch(&http, &base, &ak, "n0nce1").await;
    assert_eq!(leaves.len(), 2);
    let (p1, p2) = (policy(vm1.0.id(), &d1), policy(vm2.0.id(), &d2));
    let leaf = |id: &str, ls: &[VmLeaf]| ls.iter().find(|l| l.vm.to_string() == id).cloned().unwrap();
    judge_leaf(&p1, &leaf(u1, &leaves)).expect("VM 1 as pinned");
    judge_leaf(&p2, &leaf(u2, &leaves)).expect("VM 2 as pinned");
    assert!(judge_leaf(&p1, &leaf(u2, &leaves)).is_err(), "one VM's policy does not fit the other");

    // VM 2's disk is rewritten while it runs: its leaf stays what it was launched with (not re-hashed
    // every round); started again on that disk, its leaf fails its policy, and VM 1's does not move.
    std::fs::OpenOptions::new().write(true).open(&d2).unwrap().write_all_at(b"tampered", 1 << 20).unwrap();
    let before = leaf(u2, &leaves);
    let leaves = batch(&http, &base, &ak, "n0nce2").await;
    assert_eq!(leaf(u2, &leaves).disks, before.disks, "hashed once per launch");
    drop(vm2);
    std::fs::remove_file(&d2).unwrap();
    vm2 = start_vm(u2, &d2, "32M");
    let leaves = batch(&http, &base, &ak, "n0nce2b").await;
    judge_leaf(&p1, &leaf(u1, &leaves)).unwrap();
    let why = judge_leaf(&p2, &leaf(u2, &leaves)).unwrap_err();
    assert!(why.to_string().contains(&sha256sum(&d2)), "{why}");

    // VM 1's QEMU code patched in memory (it is halted): its verdict turns modified.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", vm1.0.id())).unwrap();
    let line = maps.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')) && l.ends_with(QEMU)).unwrap();
    let (start, end) = line.split_whitespace().next().unwrap().split_once('-').unwrap();
    let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
    let mem = std::fs::OpenOptions::new().write(true).open(format!("/proc/{}/mem", vm1.0.id())).unwrap();
    mem.write_at(&[0xcc; 4], start + (end - start) / 2).unwrap();
    let leaves = batch(&http, &base, &ak, "n0nce3").await;
    assert!(matches!(leaf(u1, &leaves).qemu, QemuCode::Modified(_)), "{:?}", leaf(u1, &leaves).qemu);
    let why = judge_leaf(&p1, &leaf(u1, &leaves)).unwrap_err();
    assert_eq!(why.check(), "vm_qemu_code_modified");
    assert!(matches!(leaf(u2, &leaves).qemu, QemuCode::Unmodified(_)));
    agent.stop().await;
    drop(vm2);
}

/// SHA-256 over a vTPM state directory's files as docs/vm-evidence.md defines it.
fn state_digest(dir: &Path) -> cairn_core::Digest {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    let mut m = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        m.extend_from_slice(f.file_name().unwrap().as_encoded_bytes());
        m.push(0);
        m.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        m.extend_from_slice(&bytes);
    }
    HashAlg::Sha256.hash(&m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_on_a_cairn_vtpm_carries_its_ek_and_state_digests() {
    let _serial = SERIAL.lock().await;
    if !Path::new(QEMU).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {QEMU} is missing (Debian: qemu-system-x86)");
        eprintln!("skipped: {QEMU} is missing (Debian: qemu-system-x86)");
        return;
    }
    let node = Node::new();
    // A vTPM laid out as `cairn vtpm` lays it out: DIR/VM/{vtpm.json,state/,swtpm.sock}, a real swtpm on the socket.
    let vm_dir = node.path("vtpm/vm1");
    let state = vm_dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let sock = vm_dir.join("swtpm.sock");
    let swtpm = Killed(
        Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "swtpm did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ek = HashAlg::Sha256.hash(b"the vTPM EK's TPM2B_PUBLIC");
    let entry = serde_json::json!({"vm": "vm1", "state_dir": state, "socket": sock, "ek_public_sha256": ek.to_hex()});
    std::fs::write(vm_dir.join("vtpm.json"), entry.to_string()).unwrap();
    let uuid = "2b1c2d3e-4f50-6172-8394-a5b6c7d8e9f2";
    let disk = node.path("vm.qcow2");
    let st = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("16M").status().unwrap();
    assert!(st.success());
    let vm = Killed(
        qemu_command()
            .args(["-machine", "pc,accel=tcg", "-m", "32", "-S", "-nodefaults", "-display", "none", "-uuid", uuid])
            .args(["-drive", &format!("file={},format=qcow2,if=ide", disk.display())])
            .args(["-chardev", &format!("socket,id=chrtpm,path={}", sock.display())])
            .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = vm.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default().contains("qemu-system-x86_64") {
        assert!(Instant::now() < deadline, "qemu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500)); // QEMU's vTPM init settles the state files
    let config = RawConfig {
        tcti: Some(node.swtpm.tcti()),
        state_dir: Some(node.path("state")),
        listen: Some("127.0.0.1:0".into()),
        register: Some(false),
        hvm: Some(true),
        hvm_interval_ms: Some(60_000),
        ..RawConfig::default()
    }
    .validate()
    .unwrap();
    let agent = Agent::start(config).await.unwrap();
    let http = client(&agent.mtls_cert);
    let base = format!("https://{}", agent.addr);
    let ak = VerifyingKey::from_public(&Public::parse_tpm2b(&agent.identity.ak.public).unwrap());
    let leaves = batch(&http, &base, &ak, "vtpmnonce").await;
    let leaf = leaves.iter().find(|l| l.vm.to_string() == uuid).unwrap();
    assert_eq!(leaf.vtpm_ek, Some(ek), "the inventory's EK digest");
    assert_eq!(leaf.vtpm_state, Some(state_digest(&state)), "the state files as read");
    let pinned = VmPolicy::from_json(&format!(r#"{{"vtpm_ek": "sha256:{}"}}"#, ek.to_hex())).unwrap();
    judge_leaf(&pinned, leaf).unwrap();
    let other = VmPolicy::from_json(&format!(r#"{{"vtpm_ek": "sha256:{}"}}"#, HashAlg::Sha256.hash(b"x").to_hex())).unwrap();
    assert_eq!(judge_leaf(&other, leaf).unwrap_err().check(), "vm_vtpm_ek_mismatch");
    agent.stop().await;
    drop(vm);
    drop(swtpm);
}
