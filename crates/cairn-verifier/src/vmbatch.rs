//! VM evidence at the verifier: each host round fetches the host's VM batch once and judges it for
//! every VM node on that host that has a VM policy; each VM's verdict then needs that evidence.
//!
//! A VM node added with `vm_policy` (and `host_agent_id`) is `attested` only while (its own round
//! passes) ∧ (its host is attested, [`crate::node`]) ∧ (the latest judgement of its leaf in its
//! host's batch passed and is at most [`max_age`] old). The batch is fetched in the *host's* round,
//! after the host's own quote passed: one `GET /cairn/v1/vms/batch` with a fresh random nonce over
//! the host's kept-alive mTLS client, one quote verified with the host's AK, and
//! `cairn_core::vmbatch::judge_host_batch` for all those VMs — never one request per VM.
//!
//! Decisions:
//! - A VM whose leaf fails (absent, not proved included, or failing its policy) is `failed` at once,
//!   not at its own next round: the host round writes its status, a history event and a signed
//!   revocation. Its reason reads "host H's VM evidence: …" and its check is the core's check name
//!   (`vm_disk_not_allowed`, `vm_absent_from_batch`, …). A failed VM is not polled; a later batch in
//!   which its leaf passes sets it `pending` and wakes its task, so it is attested again after its
//!   own next round passes.
//! - A batch refused as a whole (its quote does not verify under the host's AK for this nonce, its
//!   root is not the one quoted) fails every such VM with that reason AND fails the host, with a
//!   `vm_batch_*` check: the host's agent signed with the host's AK, or relayed, evidence that does
//!   not hold for the nonce asked — the host's own software is misbehaving, and the host's verdict
//!   is about that software. An agent that cannot give a batch (host mode off, HTTP error) fails the
//!   VMs (`vm_batch_unavailable`) but not the host: that is a configuration, not a forgery. A batch
//!   request that gets no answer makes the host `unreachable`, as its quote would (its VMs follow as
//!   `host_untrusted`).
//! - Evidence must be fresh: a judgement older than [`max_age`] fails the VM (`vm_evidence_stale`),
//!   and judgements are not carried across a verifier restart — a VM then stays `pending`
//!   (`vm_evidence_pending`) until its host's next batch, without a revocation.

use std::sync::atomic::Ordering;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::attest::Failure;
use cairn_core::crypto::VerifyingKey;
use cairn_core::quote::Expected;
use cairn_core::vmbatch::{judge_host_batch, BatchItem, HostBatch, VmEvidenceFailure, VmId, VmPolicy};
use cairn_core::HashAlg;
use cairn_proto::agent::VmBatchResponse;
use cairn_proto::verifier::{FailureView, VmBatchView};
use cairn_proto::Envelope;
use cairn_store::StatusUpdate;
use serde::{Deserialize, Serialize};

use crate::agent_client::Unreachable;
use crate::fleet::Fleet;
use crate::node::{event, nonce, now, view, Node};
use crate::revoke::RevocationRequest;
use crate::state::NodeState;

/// The last judgement of a VM's leaf, kept in the VM's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmBatchStatus {
    /// The host whose batch judged it.
    pub host: String,
    /// Unix milliseconds of the judgement.
    pub checked_at_ms: i64,
    /// Why it failed; empty when it passed.
    pub failures: Vec<FailureView>,
}

impl VmBatchStatus {
    /// As the API shows it.
    pub fn view(&self) -> VmBatchView {
        VmBatchView {
            host: self.host.clone(),
            checked_at: self.checked_at_ms / 1000,
            outcome: if self.failures.is_empty() { "pass" } else { "fail" }.to_owned(),
            failures: self.failures.clone(),
        }
    }
}

/// How old a VM's last batch judgement may be: three host intervals plus one request timeout (a
/// host round that fetched its batch may take that long before the next begins).
pub fn max_age(fleet: &Fleet) -> std::time::Duration {
    fleet.config.quote_interval() * 3 + fleet.config.request_timeout()
}

/// What a VM's host-side evidence says about it when its own round passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// It passed, recently enough.
    Pass,
    /// Its host has not judged it yet.
    Waiting(String),
    /// It failed or is too old.
    Fail(Vec<FailureView>),
}

/// The evidence verdict of a VM on `host` with last judgement `last`, at `now_ms`.
pub fn evidence(host: &str, last: Option<&VmBatchStatus>, now_ms: i64, max_age: std::time::Duration) -> Evidence {
    let Some(last) = last.filter(|l| l.host == host) else {
        return Evidence::Waiting(format!("waiting for host {host}'s VM evidence (its next round fetches the VM batch)"));
    };
    if !last.failures.is_empty() {
        return Evidence::Fail(last.failures.clone());
    }
    let age = u64::try_from(now_ms.saturating_sub(last.checked_at_ms)).unwrap_or(0);
    let max = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    if age > max {
        let failure = VmEvidenceFailure::Stale { age_s: age / 1000, max_s: max.div_ceil(1000) };
        return Evidence::Fail(vec![view(&Failure::VmEvidence { host: host.to_owned(), failure })]);
    }
    Evidence::Pass
}

/// A VM's id and policy, or why its policy cannot be used.
pub type VmOnHost = Result<(VmId, VmPolicy), String>;

/// The agent's `/cairn/v1/vms/batch` URL from its root (`https://h:p`).
fn url(root: &str, nonce: &str) -> String {
    format!("{root}/cairn/v1/vms/batch?nonce={nonce}&mask=0x0")
}

/// The batch, or why the agent gave none (`Err(Ok(why))`), or no answer (`Err(Err(_))`).
async fn fetch(http: &reqwest::Client, root: &str, nonce: &str) -> Result<VmBatchResponse, Result<String, Unreachable>> {
    let resp = http.get(url(root, nonce)).send().await.map_err(|e| Err(Unreachable(format!("VM batch: {e}"))))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| Err(Unreachable(format!("VM batch: {e}"))))?;
    if !status.is_success() {
        let why = serde_json::from_slice::<Envelope<serde_json::Value>>(&body).map(|e| e.status).unwrap_or_default();
        return Err(Ok(format!("the host agent answered HTTP {status}: {why}")));
    }
    serde_json::from_slice::<Envelope<VmBatchResponse>>(&body)
        .map(|e| e.results)
        .map_err(|e| Ok(format!("the host agent's reply is not a VM batch: {e}")))
}

/// The host's keys and client, for its batch.
#[derive(Clone, Copy)]
pub struct HostKeys<'a> {
    /// Its mTLS client.
    pub http: &'a reqwest::Client,
    /// Its agent's root URL.
    pub root: &'a str,
    /// Its AK.
    pub ak: &'a VerifyingKey,
    /// The hash its AK signs with.
    pub hash: HashAlg,
    /// Whether the quote's clock must be safe.
    pub require_safe: bool,
}

/// The VM-evidence step of a host round whose own checks passed. Records each VM's verdict (failing
/// VMs at once); returns the host's failure when the batch was refused as a whole.
pub async fn host_step(fleet: &Fleet, host: &Node, keys: HostKeys<'_>) -> Result<Option<Failure>, Unreachable> {
    // A policy that does not parse is reported on its VM as a failure of its evidence.
    let vms = fleet.vms_on(&host.id);
    if vms.is_empty() {
        return Ok(None);
    }
    let nonce = nonce();
    let reply = match fetch(keys.http, keys.root, &nonce).await {
        Err(Err(unreachable)) => return Err(unreachable),
        Err(Ok(why)) => Err(why),
        Ok(batch) => Ok(batch),
    };
    let policies: Vec<VmOnHost> = vms.iter().map(|(_, p)| p.clone()).collect();
    let (judged, host_failure) = judge_reply(&host.id, &reply, keys.ak, verdict_expectations(&keys, &nonce), &policies);
    let at_ms = now().1;
    for ((vm, _), failures) in vms.iter().zip(judged) {
        record(fleet, vm, VmBatchStatus { host: host.id.clone(), checked_at_ms: at_ms, failures });
    }
    Ok(host_failure)
}

/// What the batch's quote must meet: the nonce sent, the AK's hash, `safe` when required.
fn verdict_expectations<'a>(keys: &HostKeys<'_>, nonce: &'a str) -> Expected<'a> {
    Expected { nonce: nonce.as_bytes(), hash: Some(keys.hash), previous_clock: None, require_safe: keys.require_safe }
}

/// Judges `host`'s reply (a batch, or why the agent gave none) for `vms`, in their order: each VM's
/// failures (empty: passed), and the host's failure when the batch is refused as a whole.
pub fn judge_reply(
    host: &str,
    reply: &Result<VmBatchResponse, String>,
    ak: &VerifyingKey,
    expected: Expected<'_>,
    vms: &[VmOnHost],
) -> (Vec<Vec<FailureView>>, Option<Failure>) {
    let evidence_failure = |failure| view(&Failure::VmEvidence { host: host.to_owned(), failure });
    let per_vm = |judge: &dyn Fn(&VmId) -> Vec<FailureView>| -> Vec<Vec<FailureView>> {
        vms.iter()
            .map(|p| match p {
                Ok((vm, _)) => judge(vm),
                Err(why) => vec![policy_failure(host, why)],
            })
            .collect()
    };
    let batch = match reply {
        // No QEMU runs with a -uuid: every VM is absent.
        Err(why) if why.contains("no VM to attest") => {
            return (per_vm(&|vm| vec![evidence_failure(VmEvidenceFailure::Absent { vm: *vm })]), None);
        }
        Err(why) => return (vms.iter().map(|_| vec![unavailable(host, why)]).collect(), None),
        Ok(batch) => batch,
    };
    type Decoded<'r> = (&'r str, Vec<u8>, Vec<u8>);
    let decoded: Result<Vec<Decoded<'_>>, String> = batch
        .vms
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let field = |name: &str, text: &str| {
                B64.decode(text).map_err(|e| format!("the host agent's reply is not a VM batch: vms[{n}] ({}).{name} is not base64: {e}", i.vm))
            };
            Ok((i.vm.as_str(), field("leaf", &i.leaf)?, field("proof", &i.proof)?))
        })
        .collect();
    let decoded = match decoded {
        Ok(d) => d,
        Err(why) => return (vms.iter().map(|_| vec![unavailable(host, &why)]).collect(), None),
    };
    let items: Vec<BatchItem<'_>> = decoded.iter().map(|(vm, leaf, proof)| BatchItem { vm, leaf, proof }).collect();
    let hb = HostBatch { quote: &batch.quote, root: &batch.root, count: batch.count, items: &items };
    let claims: Vec<(VmId, &VmPolicy)> = vms.iter().filter_map(|p| p.as_ref().ok().map(|(v, p)| (*v, p))).collect();
    match judge_host_batch(ak, expected, &hb, &claims) {
        Ok(verdicts) => {
            let failures: Vec<(VmId, Vec<FailureView>)> =
                verdicts.into_iter().map(|v| (v.vm, v.failures.into_iter().map(evidence_failure).collect())).collect();
            let of = |vm: &VmId| failures.iter().find(|(v, _)| v == vm).map(|(_, f)| f.clone()).unwrap_or_default();
            (per_vm(&of), None)
        }
        Err(refusal) => {
            let v = evidence_failure(VmEvidenceFailure::Refused(refusal.clone()));
            (per_vm(&|_| vec![v.clone()]), Some(Failure::VmBatch(refusal)))
        }
    }
}

/// The host agent gave no usable batch: a failure of its VMs' evidence, not of the host.
fn unavailable(host: &str, why: &str) -> FailureView {
    FailureView { check: "vm_batch_unavailable".into(), message: format!("host {host}'s VM evidence: {why}") }
}

fn policy_failure(host: &str, why: &str) -> FailureView {
    FailureView { check: "vm_policy".into(), message: format!("host {host}'s VM evidence: the VM's policy cannot be used: {why}") }
}

/// Records a VM's judgement: a failure fails the VM at once (unless its own round failed it
/// already); a pass revives a VM that its evidence alone kept failed or pending.
fn record(fleet: &Fleet, vm: &Node, judged: VmBatchStatus) {
    let Ok(mut st) = vm.status.lock() else { return };
    let passed = judged.failures.is_empty();
    let changed = st.vm_batch.as_ref().map(|b| &b.failures) != Some(&judged.failures);
    let failures = judged.failures.clone();
    st.vm_batch = Some(judged);
    let state = st.state();
    let mut events = Vec::new();
    let mut revoke = None;
    let mut wake = false;
    if passed {
        if state == NodeState::Failed && st.vm_evidence_failed {
            st.state = Some(NodeState::Pending);
            st.vm_evidence_failed = false;
            st.failures.clear();
            events.push(event(&vm.id, "vm_evidence_pass", serde_json::json!({})));
            wake = true;
        } else if state == NodeState::Pending {
            wake = true;
        }
    } else {
        match state {
            NodeState::Attested | NodeState::Pending | NodeState::HostUntrusted => {
                st.state = Some(NodeState::Failed);
                st.quote_failed = false;
                st.vm_evidence_failed = true;
                st.failures = failures.clone();
                tracing::warn!(agent = %vm.id, failures = ?failures, "VM failed on its host-side evidence");
                events.push(event(&vm.id, "vm_evidence_fail", serde_json::json!({"failures": failures})));
                let event_id = format!("{}-{}", vm.id, now().1);
                st.last_event_id = Some(event_id.clone());
                revoke = Some(RevocationRequest::new(vm, event_id, &st.failures, false));
            }
            NodeState::Failed if st.vm_evidence_failed && changed => {
                st.failures = failures.clone();
                events.push(event(&vm.id, "vm_evidence_fail", serde_json::json!({"failures": failures})));
            }
            _ => {}
        }
    }
    let update = StatusUpdate { agent_id: vm.id.clone(), status: st.to_store(), events };
    drop(st);
    fleet.write(update);
    if let Some(r) = revoke {
        fleet.revoke(r);
    }
    if wake {
        vm.early.store(true, Ordering::Release);
        vm.wake.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::time::Duration;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    use cairn_core::pcr::{BankSelection, PcrSelection, PcrValues};
    use cairn_core::quote::encode_quote_string;
    use cairn_core::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
    use cairn_core::tpm::signature::SignatureValue;
    use cairn_core::tpm::{encode_pcr_blob, Attest, EccCurve, Public, PublicKey, SigScheme, Signature};
    use cairn_core::vmbatch::bench::synthetic_leaf;
    use cairn_core::vmbatch::Batch;
    use cairn_proto::agent::VmBatchItem;

    /// A software P-256 key shaped as an AK; `quote` signs a TPMS_ATTEST over PCR 13 with `extra`.
    fn soft_ak() -> (EcdsaKeyPair, VerifyingKey) {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = key.public_key().as_ref();
        let pk = PublicKey::Ecc { curve: EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..65].to_vec() };
        let public = Public::for_signing_key(&pk, SigScheme::Ecdsa, HashAlg::Sha256).unwrap();
        (key, VerifyingKey::from_public(&public))
    }

    fn quote(key: &EcdsaKeyPair, extra: &[u8]) -> String {
        let selection = PcrSelection::new(vec![BankSelection { alg: HashAlg::Sha256, mask: 1 << 13 }]).unwrap();
        let values = PcrValues::new(selection.clone(), vec![HashAlg::Sha256.hash(b"hvm")]).unwrap();
        let attest = Attest {
            magic: TPM_GENERATED_VALUE,
            qualified_signer: [&[0u8, 0x0b][..], &[0x42; 32]].concat(),
            extra_data: extra.to_vec(),
            clock_info: ClockInfo { clock: 5_000, reset_count: 1, restart_count: 0, safe: true },
            firmware_version: 1,
            info: AttestInfo::Quote { selection, pcr_digest: values.composite_digest(HashAlg::Sha256).as_bytes().to_vec() },
        };
        let message = attest.to_bytes();
        let sig = key.sign(&SystemRandom::new(), &message).unwrap();
        let value = SignatureValue::Ecc { r: sig.as_ref()[..32].to_vec(), s: sig.as_ref()[32..64].to_vec() };
        let signature = Signature { scheme: SigScheme::Ecdsa, hash: HashAlg::Sha256, value }.to_bytes();
        encode_quote_string(&message, &signature, &encode_pcr_blob(&values))
    }

    #[test]
    fn a_batch_judges_each_vm_and_a_batch_for_another_nonce_fails_them_all_and_the_host() {
        let (key, ak) = soft_ak();
        let leaves = [synthetic_leaf(0, false), synthetic_leaf(1, false)];
        let batch = Batch::new(&leaves).unwrap();
        let reply = |nonce: &[u8]| VmBatchResponse {
            quote: quote(&key, &batch.qualifying_data(nonce)),
            root: batch.root().to_hex(),
            count: batch.count(),
            vms: batch
                .entries()
                .map(|e| VmBatchItem { vm: e.vm.to_string(), leaf: B64.encode(e.leaf), proof: B64.encode(e.proof.encode()) })
                .collect(),
            skipped: vec![],
        };
        let mut other_disk = VmPolicy::from_leaf(&leaves[1]);
        other_disk.disks = Some(vec![HashAlg::Sha256.hash(b"another image")]);
        let absent = synthetic_leaf(5, false).vm;
        let vms: Vec<VmOnHost> = vec![
            Ok((leaves[0].vm, VmPolicy::from_leaf(&leaves[0]))),
            Ok((leaves[1].vm, other_disk)),
            Ok((absent, VmPolicy::default())),
            Err("vm_uuid: not a UUID".into()),
        ];
        let expected = |n: &'static str| Expected { nonce: n.as_bytes(), hash: Some(HashAlg::Sha256), previous_clock: None, require_safe: false };
        let (judged, host) = judge_reply("h1", &Ok(reply(b"sent")), &ak, expected("sent"), &vms);
        assert!(host.is_none());
        let checks: Vec<Option<&str>> = judged.iter().map(|f| f.first().map(|f| f.check.as_str())).collect();
        assert_eq!(checks, [None, Some("vm_disk_not_allowed"), Some("vm_absent_from_batch"), Some("vm_policy")]);
        assert!(judged[1][0].message.starts_with("host h1's VM evidence: "), "{}", judged[1][0].message);
        assert!(judged[2][0].message.contains(&format!("VM uuid {absent} is not in the host's VM batch")));

        // The agent answered with a batch quoted for another nonce: every VM and the host fail.
        let (judged, host) = judge_reply("h1", &Ok(reply(b"an old nonce")), &ak, expected("sent"), &vms);
        let host = host.unwrap();
        assert_eq!(host.check(), "vm_batch_quote");
        assert!(host.to_string().contains("nonce_mismatch"), "{host}");
        assert!(judged[..3].iter().all(|f| f[0].check == "vm_batch_quote"), "{judged:?}");

        // A leaf that is not base64: unavailable, naming the item; the host is not failed for it.
        let mut garbled = reply(b"sent");
        garbled.vms[1].leaf = "not base64!".into();
        let (judged, host) = judge_reply("h1", &Ok(garbled), &ak, expected("sent"), &vms);
        assert!(host.is_none() && judged[0][0].check == "vm_batch_unavailable", "{judged:?}");
        assert!(judged[0][0].message.contains("vms[1]") && judged[0][0].message.contains(".leaf is not base64"), "{judged:?}");

        // No QEMU at all: absent; host mode off: unavailable; neither fails the host.
        let (judged, host) = judge_reply("h1", &Err("HTTP 404: no VM to attest on this host".into()), &ak, expected("sent"), &vms);
        assert!(host.is_none() && judged[0][0].check == "vm_absent_from_batch");
        let (judged, host) = judge_reply("h1", &Err("HTTP 404: host mode is off".into()), &ak, expected("sent"), &vms);
        assert!(host.is_none() && judged[0][0].check == "vm_batch_unavailable");
    }

    fn status(host: &str, at: i64, failures: Vec<FailureView>) -> VmBatchStatus {
        VmBatchStatus { host: host.into(), checked_at_ms: at, failures }
    }

    #[test]
    fn a_vm_needs_a_recent_passing_judgement_from_its_own_host() {
        let max = Duration::from_secs(10);
        assert!(matches!(evidence("h", None, 0, max), Evidence::Waiting(w) if w.contains("host h")));
        assert!(matches!(evidence("h", Some(&status("g", 0, vec![])), 0, max), Evidence::Waiting(_)));
        assert_eq!(evidence("h", Some(&status("h", 1_000, vec![])), 11_000, max), Evidence::Pass);
        let Evidence::Fail(f) = evidence("h", Some(&status("h", 1_000, vec![])), 11_001, max) else { panic!() };
        assert_eq!(f[0].check, "vm_evidence_stale");
        assert!(f[0].message.starts_with("host h's VM evidence: "), "{}", f[0].message);
        let bad = vec![FailureView { check: "vm_disk_not_allowed".into(), message: "m".into() }];
        assert_eq!(evidence("h", Some(&status("h", 1_000, bad.clone())), 1_000, max), Evidence::Fail(bad));
        assert_eq!(url("https://[::1]:9002", "abc"), "https://[::1]:9002/cairn/v1/vms/batch?nonce=abc&mask=0x0");
    }
}
