//! A VM's trust bound to its host's, on real parts: two `cairn agent`s, each on its own swtpm — the
//! host, and a VM added with `cairn node add --on-host HOST`. Both attest. When the host stops answering
//! the VM turns `host_untrusted` at once (its own rounds still pass) with the reason naming the host,
//! and is attested again when the host is; when the host fails (a PCR leaves its policy) the VM is
//! untrusted again, naming the host's failure, and a signed revocation names the VM. A VM whose host
//! is not known to the verifier is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/fleet.rs"]
mod fleet;

use std::path::PathBuf;

use cairn_tpm::swtpm::SwtpmCa;
use fleet::{count, free_port, AgentNode, Fleet};
use serde_json::json;

#[test]
fn a_vm_is_trusted_only_while_its_host_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-host-ca")).unwrap();
    let mut fleet = Fleet::start(dir, &ca);
    let http = fleet.registrar_http.clone();
    let mut host = AgentNode::start(&dir.join("host"), &ca, &http);
    let vm = AgentNode::start(&dir.join("vm"), &ca, &http);
    fleet.start_verifier_every(free_port(), 300);

    // The host is not added yet: a VM on it is refused.
    let (ok, out) = fleet.node(&["add", &vm.uuid, "--on-host", &host.uuid]);
    assert!(!ok && out.contains("add it first"), "{out}");
    let policy = json!({"15": ["0".repeat(64)], "mask": "0x8000"}).to_string();
    let (ok, out) = fleet.node(&["add", &host.uuid, "--tpm-policy", &policy]);
    assert!(ok, "{out}");
    let (ok, out) = fleet.node(&["add", &vm.uuid, "--on-host", &host.uuid]);
    assert!(ok, "{out}");
    fleet.wait(&host.uuid, "attested", |s| s["cairn_state"] == "attested");
    let s = fleet.wait(&vm.uuid, "attested", |s| s["cairn_state"] == "attested");
    assert_eq!(s["host_agent_id"], host.uuid.as_str());

    // The host stops answering: the VM is untrusted at once, because of its host.
    host.proc.as_mut().unwrap().kill9();
    fleet.wait(&host.uuid, "unreachable", |s| s["cairn_state"] == "unreachable");
    let s = fleet.wait(&vm.uuid, "host_untrusted", |s| s["cairn_state"] == "host_untrusted");
    assert_eq!(s["attestation_status"], "FAIL");
    assert_eq!(s["failures"][0]["check"], "host");
    let why = s["failures"][0]["message"].as_str().unwrap();
    assert!(why.contains(&format!("host {}", host.uuid)) && why.contains("unreachable"), "{why}");
    // Its own rounds go on and pass, and it stays untrusted while the host is away.
    let rounds = count(&s);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let s = fleet.status(&vm.uuid);
    assert_eq!(s["cairn_state"], "host_untrusted");
    assert_eq!(count(&s), rounds, "a VM under an untrusted host is never counted as passing");

    // The host is back: so is the VM.
    host.run(&http);
    fleet.wait(&host.uuid, "attested again", |s| s["cairn_state"] == "attested");
    let s = fleet.wait(&vm.uuid, "attested again", |s| s["cairn_state"] == "attested");
    assert_eq!(s["failures"], json!([]));

    // The host fails (PCR 15 leaves its policy): the VM follows, naming the host's failure.
    let mut tpm = cairn_tpm::Tpm::open(&host.tcti).unwrap();
    tpm.pcr_extend(cairn_core::pcr::PcrIndex::new(15).unwrap(), &[cairn_core::HashAlg::Sha256.hash(b"rogue")]).unwrap();
    drop(tpm);
    fleet.wait(&host.uuid, "failed", |s| s["cairn_state"] == "failed");
    let s = fleet.wait(&vm.uuid, "host_untrusted", |s| s["cairn_state"] == "host_untrusted");
    let why = s["failures"][0]["message"].as_str().unwrap();
    assert!(why.contains(&format!("host {} is failed", host.uuid)) && why.contains("PCR"), "{why}");

    // History and a revocation record the VM's loss of trust.
    let client = fleet::tenant(&fleet);
    let history: serde_json::Value = client
        .get(format!("{}/cairn/v1/nodes/{}/history?limit=100", fleet.verifier_url, vm.uuid))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = history["results"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.iter().filter(|k| **k == "host_untrusted").count() >= 2, "{kinds:?}");
    assert!(kinds.contains(&"revocation"), "{kinds:?}");
}
