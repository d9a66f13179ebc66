//! A VM's verdict needs its host-side evidence, on real parts: `cairn registrar`, `cairn verifier`, a
//! host `cairn agent --hvm` on swtpm, real QEMU processes (qemu-system-x86_64 under TCG, halted with
//! `-S`), and a second `cairn agent` on its own swtpm standing in for the guest, added with
//! `cairn node add VM --on-host HOST --vm-policy FILE --vm-uuid UUID`. The policy pins the QEMU
//! executable and the disk image by digests the test computes itself.
//!
//! The VM is attested while its QEMU runs on the pinned disk (one batch per host round judges it);
//! QEMU started again on another disk fails the VM at once with `vm_disk_not_allowed`, the reason
//! naming the host, while the host stays attested; with no QEMU of that `-uuid` running the VM fails
//! as absent from the host's batch; QEMU back on the pinned disk makes the VM attested again. Another
//! VM's QEMU runs on the host throughout, unknown to the verifier, and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tpm::swtpm::SwtpmCa;
use fleet::{free_port, AgentNode, Fleet};
use serde_json::json;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

fn image(path: &Path, size: &str) {
    let st = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(path).arg(size).status().unwrap();
    assert!(st.success());
}

/// A halted QEMU named `uuid` on `disk`, once its executable is mapped.
fn qemu(uuid: &str, disk: &Path) -> Killed {
    let drive = format!("file={},format=qcow2,if=ide", disk.display());
    let child = Command::new(QEMU)
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

#[test]
fn a_vm_is_attested_only_while_its_leaf_in_the_hosts_batch_passes_its_policy() {
    if !Path::new(QEMU).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {QEMU} is missing (Debian: qemu-system-x86)");
        eprintln!("skipped: {QEMU} is missing (Debian: qemu-system-x86)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-batch-ca")).unwrap();
    let (pinned, other_disk, neighbour_disk) = (dir.join("vm.qcow2"), dir.join("other.qcow2"), dir.join("neighbour.qcow2"));
    image(&pinned, "16M");
    image(&other_disk, "32M");
    image(&neighbour_disk, "16M");
    let uuid = "7a1c2d3e-4f50-4172-8394-a5b6c7d8e9f0";
    let _neighbour = qemu("8b1c2d3e-4f50-4172-8394-a5b6c7d8e9f1", &neighbour_disk);
    let mut vm_qemu = Some(qemu(uuid, &pinned));

    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let extra: Vec<String> = ["--hvm", "--hvm-interval-ms", "60000"].map(str::to_owned).to_vec();
    let host = AgentNode::start_with(&dir.join("host"), &ca, &http, &extra);
    let vm = AgentNode::start(&dir.join("vm"), &ca, &http);
    fleet.start_verifier_every(free_port(), 500);
    let (ok, out) = fleet.node(&["add", &host.uuid]);
    assert!(ok, "{out}");

    // The tenant's policy: this QEMU executable, this disk image.
    let policy = dir.join("vm-policy.json");
    let qemu_digest = sha256sum(Path::new(QEMU));
    let pinned_digest = sha256sum(&pinned);
    let text = json!({"qemu_code": [format!("sha256:{qemu_digest}")], "disks": [format!("sha256:{pinned_digest}")]});
    std::fs::write(&policy, text.to_string()).unwrap();
    // Refused at add time, naming the field: a policy that does not parse, a VM id that is no UUID.
    let bad = dir.join("bad-policy.json");
    std::fs::write(&bad, r#"{"disk": []}"#).unwrap();
    let (ok, out) = fleet.node(&["add", &vm.uuid, "--on-host", &host.uuid, "--vm-policy", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("vm_policy"), "{out}");
    let (ok, out) =
        fleet.node(&["add", &vm.uuid, "--on-host", &host.uuid, "--vm-policy", policy.to_str().unwrap(), "--vm-uuid", "vm-1"]);
    assert!(!ok && out.contains("vm_uuid"), "{out}");
    let (ok, out) = fleet.node(&["add", &vm.uuid, "--on-host", &host.uuid, "--vm-policy", policy.to_str().unwrap(), "--vm-uuid", uuid]);
    assert!(ok, "{out}");

    // Its leaf passes: attested, with the batch's judgement shown.
    let s = fleet.wait(&vm.uuid, "attested", |s| s["cairn_state"] == "attested");
    assert_eq!(s["vm_uuid"], uuid);
    assert_eq!(s["vm_batch"]["outcome"], "pass", "{s}");
    assert_eq!(s["vm_batch"]["host"], host.uuid.as_str());
    assert!(s["vm_batch"]["checked_at"].as_i64().unwrap() > 0);

    // QEMU started again on another disk: the VM fails on its host's next round, naming the check.
    drop(vm_qemu.take());
    vm_qemu = Some(qemu(uuid, &other_disk));
    let s = fleet.wait(&vm.uuid, "failed on its disk", |s| s["cairn_state"] == "failed");
    let f = &s["failures"][0];
    assert_eq!(f["check"], "vm_disk_not_allowed", "{s}");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.starts_with(&format!("host {}'s VM evidence: ", host.uuid)) && msg.contains(&sha256sum(&other_disk)), "{msg}");
    assert_eq!(s["vm_batch"]["outcome"], "fail");
    assert_eq!(fleet.status(&host.uuid)["cairn_state"], "attested", "the host itself is fine");

    // No QEMU with the VM's -uuid: absent from the host's batch.
    drop(vm_qemu.take());
    let s = fleet.wait(&vm.uuid, "absent", |s| s["failures"][0]["check"] == "vm_absent_from_batch");
    assert_eq!(s["cairn_state"], "failed");
    let msg = s["failures"][0]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("VM uuid {uuid} is not in the host's VM batch")), "{msg}");
    assert_eq!(fleet.status(&host.uuid)["cairn_state"], "attested");

    // The right QEMU runs again: attested again.
    vm_qemu = Some(qemu(uuid, &pinned));
    let s = fleet.wait(&vm.uuid, "attested again", |s| s["cairn_state"] == "attested");
    assert_eq!(s["vm_batch"]["outcome"], "pass");
    assert_eq!(s["failures"], json!([]));

    // History and revocations record each loss of trust.
    let client = fleet::tenant(&fleet);
    let history: serde_json::Value = client
        .get(format!("{}/cairn/v1/nodes/{}/history?limit=100", fleet.verifier_url, vm.uuid))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = history["results"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"vm_evidence_fail") && kinds.contains(&"vm_evidence_pass"), "{kinds:?}");
    assert!(kinds.contains(&"revocation"), "{kinds:?}");
    let (ok, out) = fleet.node(&["status", &vm.uuid]);
    assert!(ok && out.contains("VM evidence (vm "), "{out}");
    drop(vm_qemu);
}
