//! The whole VM layer on real parts: a host `cairn agent` (host mode) on swtpm, a vTPM the host
//! manages (`cairn vtpm create|start`), and a real guest — Debian's cloud kernel booted by
//! qemu-system-x86_64 under TCG with `-tpmdev emulator` on that vTPM (SeaBIOS and the kernel extend its
//! PCRs, the guest's IMA measures what it runs) — whose own `cairn agent` enrols at the registrar
//! through the vTPM and is attested by the verifier with a runtime policy (what the guest runs) and a
//! PCR policy (the vTPM's PCRs 0–7 as SeaBIOS's own log replays them). The host agent measures the
//! real QEMU process. The VM is trusted only while its host is: when the host's IMA log shows a file
//! nobody allowed, the host fails and the VM is reported untrusted because of its host.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/guest.rs"]
mod guest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_core::ima::{FileDigest, Template};
use cairn_core::HashAlg;
use cairn_tpm::swtpm::SwtpmCa;
use fleet::{cairn, free_port, AgentNode, Fleet};
use guest::{Guest, GuestSpec, Initramfs, INIT_PRELUDE};

const VM_UUID: &str = "5c1a7f00-9e0d-4c3b-8a61-0d2b7e5f4a19";

/// An ima-ng line for `content` at `path`, as the kernel would log it.
fn ima_line(content: &[u8], path: &str) -> Vec<u8> {
    let file_digest = HashAlg::Sha256.hash(content);
    let digest = FileDigest::new(b"sha256", file_digest.as_bytes(), "d-ng").unwrap();
    let mut data = Vec::new();
    assert!(Template::ImaNg { digest, path: path.as_bytes() }.encode(&mut data));
    format!("10 {} ima-ng sha256:{} {path}\n", HashAlg::Sha1.hash(&data).to_hex(), file_digest.to_hex()).into_bytes()
}

/// The guest's initramfs: busybox, modules, this build's cairn agent configured to enrol at the
/// registrar (host 127.0.0.1 = 10.0.2.2 from inside), and an init that lets IMA measure every
/// execution. Returns the runtime policy allowing what the guest runs.
fn build_initramfs(kit: &Path, dir: &Path, registrar_port: u16, agent_port: u16) -> (PathBuf, PathBuf) {
    let mut fs = Initramfs::default();
    fs.busybox(kit);
    fs.modules(kit);
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let cairn_bytes = fs.program(Path::new(env!("CARGO_BIN_EXE_cairn")), "/bin/cairn", &scratch);
    let config = format!(
        "tcti = \"device:/dev/tpmrm0\"\nstate_dir = \"/var/lib/cairn/agent\"\nuuid = \"{VM_UUID}\"\n\
         listen = \"0.0.0.0:9002\"\ncontact_ip = \"127.0.0.1\"\ncontact_port = {agent_port}\n\
         registrar = \"http://10.0.2.2:{registrar_port}\"\nkind = \"vm\"\n"
    );
    fs.file("/etc/cairn/agent.toml", 0o644, config.as_bytes());
    let init = format!(
        "{INIT_PRELUDE}echo 'measure func=BPRM_CHECK mask=MAY_EXEC' > /sys/kernel/security/ima/policy || echo 'GUEST: IMA policy refused'
echo \"GUEST-EVENTLOG $(base64 -w 0 /sys/kernel/security/tpm0/binary_bios_measurements)\"
echo \"GUEST-UP $(head -n 1 /sys/kernel/security/ima/ascii_runtime_measurements)\"
/bin/cairn agent --config /etc/cairn/agent.toml --log info
echo \"GUEST: agent exited $?\"
poweroff -f
"
    );
    fs.file("/init", 0o755, init.as_bytes());
    let initramfs = dir.join("initramfs.cpio");
    fs.write(&initramfs);

    // The runtime policy: the files the guest executes, from a copy of them laid out as in the guest.
    let rootfs = dir.join("policy-rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(kit.join("busybox"), rootfs.join("bin/busybox")).unwrap();
    std::fs::write(rootfs.join("bin/cairn"), &cairn_bytes).unwrap();
    let policy = dir.join("vm-runtime-policy.json");
    let out = cairn().args(["policy", "create", "runtime", "--rootfs"]).arg(&rootfs).arg("--out").arg(&policy).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (initramfs, policy)
}

/// Kills the daemonized vTPM swtpm when the test ends, however it ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg("-9").arg(self.0.to_string()).status();
    }
}

#[test]
fn a_real_guest_on_a_managed_vtpm_is_attested_and_falls_with_its_host() {
    let Some(kit) = guest::kit() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-guest-ca")).unwrap();

    // The host's TPM, and the VM's vTPM sealed to it (`cairn vtpm`, as an operator would).
    let qemu = PathBuf::from("/usr/bin/qemu-system-x86_64");
    let extra: Vec<String> =
        ["--hvm", "--hvm-interval-ms", "500", "--hvm-exe", qemu.to_str().unwrap()].map(str::to_owned).to_vec();
    let mut host = AgentNode::tpm_only(&dir.join("host"), &ca, &extra);
    let vtpms = dir.join("vtpm");
    let host_tcti = host.tcti.clone();
    let run = |args: &[&str]| {
        let out = cairn().arg("vtpm").args(args).arg("--dir").arg(&vtpms).args(["--host-tcti", &host_tcti]).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "cairn vtpm {args:?}: {text}");
        text
    };
    run(&["create", "vm1"]);
    run(&["start", "vm1"]);
    let socket = vtpms.join("vm1/swtpm.sock");
    let _vtpm = KillOnDrop(std::fs::read_to_string(vtpms.join("vm1/swtpm.pid")).unwrap().trim().parse().unwrap());

    // The registrar trusts only the host TPM's EK CA. The host agent enrols with its vTPM CA (a key in
    // the host TPM) certified by its AK; the VM's EK certificate chains to that CA, so to this host.
    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    host.extra.extend(["--vtpm-ca-dir".to_owned(), vtpms.join(".vtpm-ca").to_string_lossy().into_owned()]);
    host.run(&http);

    // The host is attested with its IMA log (an allowed file) and host mode.
    let allowed = b"#!/bin/sh\necho host tool\n";
    host.measure(&ima_line(allowed, "/usr/bin/host-tool"));
    let host_policy = dir.join("host-policy.json");
    let host_rootfs = dir.join("host-rootfs/usr/bin");
    std::fs::create_dir_all(&host_rootfs).unwrap();
    std::fs::write(host_rootfs.join("host-tool"), allowed).unwrap();
    let out = cairn()
        .args(["policy", "create", "runtime", "--rootfs"])
        .arg(dir.join("host-rootfs"))
        .arg("--out")
        .arg(&host_policy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fleet.start_verifier_every(free_port(), 1000);
    let (ok, out) = fleet.node(&["add", &host.uuid, "--hvm", "--runtime-policy", host_policy.to_str().unwrap()]);
    assert!(ok, "{out}");
    fleet.wait(&host.uuid, "attested", |s| s["cairn_state"] == "attested");

    // The guest boots on the vTPM; its agent enrols through it.
    let registrar_port: u16 = http.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    let agent_port = free_port();
    let (initramfs, vm_policy) = build_initramfs(&kit, dir, registrar_port, agent_port);
    let mut vm = Guest::start(&GuestSpec {
        kit: &kit,
        initramfs: &initramfs,
        uuid: VM_UUID,
        vtpm_socket: Some(&socket),
        forward: &[(agent_port, 9002)],
        console: dir.join("console.log"),
        append: "quiet",
    });
    let console = vm.wait_for("GUEST-UP", Duration::from_secs(120));
    // The boot aggregate (SHA-256 over the vTPM's PCRs 0–9 as SeaBIOS and the kernel left them), which
    // an operator pins from a known-good boot; the verifier checks the log it heads against PCR 10.
    let first = console.lines().find_map(|l| l.strip_prefix("GUEST-UP ")).unwrap_or_default().trim().to_owned();
    let aggregate = first.split_whitespace().nth(3).and_then(|d| d.strip_prefix("sha256:")).unwrap_or_else(|| panic!("{first}"));
    assert!(first.ends_with("boot_aggregate") && aggregate.len() == 64, "{first}");
    // SeaBIOS's measured-boot log of this boot, taken as the VM's known-good reference state.
    let eventlog = console.lines().find_map(|l| l.strip_prefix("GUEST-EVENTLOG ")).unwrap().trim();
    let eventlog = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, eventlog).unwrap();
    assert!(eventlog.len() > 100, "SeaBIOS logged its measurements ({} bytes)", eventlog.len());
    std::fs::write(dir.join("vm-eventlog.bin"), &eventlog).unwrap();
    let out = cairn().args(["eventlog", "replay", "--json"]).arg(dir.join("vm-eventlog.bin")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A PCR policy pinning the firmware PCRs 0–7 of the vTPM's SHA-256 bank to the values this log
    // replays to (SeaBIOS has no Secure Boot state for a measured-boot reference state to judge).
    let mut pcrs = serde_json::Map::new();
    for i in 0..8 {
        let value = replay["banks"]["sha256"][i.to_string()].as_str().unwrap_or_else(|| panic!("PCR {i} in {replay}"));
        pcrs.insert(i.to_string(), serde_json::json!([value]));
    }
    pcrs.insert("mask".into(), serde_json::json!("0xff"));
    let vm_pcr_policy = serde_json::Value::Object(pcrs).to_string();
    let mut policy: serde_json::Value = serde_json::from_slice(&std::fs::read(&vm_policy).unwrap()).unwrap();
    policy["digests"]["boot_aggregate"] = serde_json::json!([aggregate]);
    std::fs::write(&vm_policy, policy.to_string()).unwrap();
    vm.wait_for(&format!("cairn agent {VM_UUID}"), Duration::from_secs(240));

    // The VM's policy for the host-side evidence: this QEMU executable, this command line, this kernel
    // and initramfs, this vTPM's EK — digests the test takes itself (the EK's from the vTPM inventory).
    let sha = |bytes: &[u8]| HashAlg::Sha256.hash(bytes).to_hex();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", vm.pid)).unwrap();
    let inventory: serde_json::Value = serde_json::from_slice(&std::fs::read(vtpms.join("vm1/vtpm.json")).unwrap()).unwrap();
    let evidence_policy = serde_json::json!({
        "vm": VM_UUID,
        "qemu_code": [format!("sha256:{}", sha(&std::fs::read(&qemu).unwrap()))],
        "launch_config": format!("sha256:{}", sha(&cmdline)),
        "kernel": format!("sha256:{}", sha(&std::fs::read(kit.join("vmlinuz")).unwrap())),
        "initrd": format!("sha256:{}", sha(&std::fs::read(&initramfs).unwrap())),
        "vtpm_ek": format!("sha256:{}", inventory["ek_public_sha256"].as_str().unwrap()),
    });
    let evidence_policy_file = dir.join("vm-evidence-policy.json");
    std::fs::write(&evidence_policy_file, evidence_policy.to_string()).unwrap();
    let (ok, out) = fleet.node(&[
        "add",
        VM_UUID,
        "--runtime-policy",
        vm_policy.to_str().unwrap(),
        "--tpm-policy",
        &vm_pcr_policy,
        "--vm-policy",
        evidence_policy_file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\nconsole:\n{}", vm.console());
    let s = fleet.wait(VM_UUID, "attested", |s| s["cairn_state"] == "attested");
    // The host came from the registrar, which chained the VM's EK certificate to this host's vTPM CA.
    assert_eq!(s["host_agent_id"], host.uuid.as_str());
    assert!(s["tpm_policy"].as_str().unwrap().contains("mask"), "{s}");
    // Attested both ways: its own quote (vTPM) and its leaf in the host's batch (host TPM).
    assert_eq!(s["vm_batch"]["outcome"], "pass", "{s}");
    assert_eq!(s["vm_batch"]["host"], host.uuid.as_str(), "{s}");
    // The host agent measured the real QEMU process running the guest: its code in memory is its file's.
    let list = std::fs::read_to_string(host.state.join("hvm/list")).unwrap();
    let qemu_lines: Vec<&str> = list.lines().filter(|l| l.contains(&format!(" {} ", vm.pid))).collect();
    assert!(!qemu_lines.is_empty() && qemu_lines.iter().all(|l| l.ends_with(" ok")), "{list}");
    assert!(qemu_lines.iter().any(|l| l.contains("qemu-system-x86_64")), "{list}");
    assert_eq!(s["has_runtime_policy"], 1, "{s}");

    // The host runs a file nobody allowed: it fails, and the VM with it, because of its host.
    host.measure(&ima_line(b"a miner nobody allowed", "/tmp/.x/miner"));
    let s = fleet.wait(&host.uuid, "failed", |s| s["cairn_state"] == "failed");
    assert!(s["failures"].to_string().contains("/tmp/.x/miner"), "{s}");
    let s = fleet.wait(VM_UUID, "host_untrusted", |s| s["cairn_state"] == "host_untrusted");
    let why = s["failures"][0]["message"].as_str().unwrap();
    assert!(why.contains(&format!("host {}", host.uuid)) && why.contains("/tmp/.x/miner"), "{why}");
    vm.kill();
    let out = cairn().args(["vtpm", "stop", "vm1", "--dir"]).arg(&vtpms).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
