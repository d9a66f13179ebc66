//! A pure-CPU workload for `cairn bench vm-batch`: N synthetic VMs, the agent's batch over them, and
//! the verifier's work on it — the two halves separate, so a caller can time each.
//!
//! [`SyntheticBatch::build`] is the agent: N leaves (two disks, kernel, initrd, vTPM, four memory
//! ranges each) encoded, the tree, every proof encoded. [`SyntheticBatch::check`] is the verifier
//! after its one quote check: the root's binding to the qualifying data, then per VM the proof, the
//! leaf and its policy. The quote's signature is not part of it — one per batch, measured by the
//! quote benches. Everything is deterministic: no clock, no randomness.

use crate::alg::HashAlg;

use super::check::{check_claims, VmClaim, VmLeafOutcome};
use super::judge::{judge_leaf, VmPolicy};
use super::leaf::{MemoryRange, QemuCode, VmId, VmLeaf};
use super::merkle::sha256;
use super::{qualifying_data, Batch, BatchHeader, VmBatchError};

/// The evidence of synthetic VM `i`; `modified` makes its QEMU code modified in memory.
pub fn synthetic_leaf(i: u32, modified: bool) -> VmLeaf {
    let h = |what: &str| HashAlg::Sha256.hash_parts(&[what.as_bytes(), &i.to_be_bytes()]);
    let shared = |what: &str| HashAlg::Sha256.hash(what.as_bytes());
    let mut id = [0u8; 16];
    id.iter_mut().zip(h("vm id").as_bytes()).for_each(|(o, b)| *o = *b);
    // A version-4, RFC 4122 variant UUID, as libvirt makes them.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let qemu = shared("qemu-system-x86_64");
    let range = |gpa: u64, length: u64, what: &str| MemoryRange { gpa, length, digest: h(what) };
    VmLeaf {
        vm: VmId::from_bytes(id),
        qemu: if modified { QemuCode::Modified(qemu) } else { QemuCode::Unmodified(qemu) },
        launch_config: h("domain xml"),
        disks: vec![shared("base image"), h("data disk")],
        kernel: Some(shared("vmlinuz")),
        initrd: Some(shared("initrd.img")),
        vtpm_state: Some(h("vtpm state")),
        vtpm_ek: Some(h("vtpm ek")),
        memory: vec![
            range(0x0, 0x1000, "real mode ivt"),
            range(0x10_0000, 0x100_0000, "kernel text"),
            range(0x200_0000, 0x20_0000, "kernel rodata"),
            range(0x1_0000_0000, 0x1000, "idt"),
        ],
    }
}

/// What the agent sends for a batch, with each VM's policy at the verifier.
#[derive(Clone, Debug)]
pub struct SyntheticBatch {
    /// The verifier's nonce.
    pub nonce: [u8; 32],
    /// The quote's extraData (what the TPM would sign).
    pub extra_data: [u8; 32],
    /// Root and count.
    pub header: BatchHeader,
    /// Per VM: its id, encoded leaf, encoded proof.
    pub claims: Vec<(VmId, Vec<u8>, Vec<u8>)>,
    /// Per VM, in the same order: its policy (pinned from an unmodified run).
    pub policies: Vec<VmPolicy>,
}

/// What the verifier concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchOutcome {
    /// Whether the extraData binds the root under the nonce.
    pub bound: bool,
    /// VMs claimed.
    pub vms: u32,
    /// VMs whose leaf was proved in the batch.
    pub proved: u32,
    /// VMs whose proved leaf passed its policy.
    pub passed: u32,
    /// Total bytes of the encoded leaves.
    pub leaf_bytes: usize,
    /// Total bytes of the encoded proofs.
    pub proof_bytes: usize,
}

impl SyntheticBatch {
    /// The agent's half for `n` VMs, the first `modified` of them with QEMU code modified.
    pub fn build(n: u32, modified: u32) -> Result<SyntheticBatch, VmBatchError> {
        let leaves: Vec<VmLeaf> = (0..n).map(|i| synthetic_leaf(i, i < modified)).collect();
        let batch = Batch::new(&leaves)?;
        let nonce = sha256(&[b"cairn bench vm-batch nonce"]);
        let claims = batch.entries().map(|e| (e.vm, e.leaf.to_vec(), e.proof.encode())).collect();
        let policies = (0..n).map(|i| VmPolicy::from_leaf(&synthetic_leaf(i, false))).collect();
        let extra_data = batch.qualifying_data(&nonce);
        Ok(SyntheticBatch { nonce, extra_data, header: batch.header(), claims, policies })
    }

    /// The verifier's half, after the quote verified with `extra_data`.
    pub fn check(&self) -> BenchOutcome {
        let bound = qualifying_data(&self.nonce, &self.header.root) == self.extra_data;
        let claims: Vec<VmClaim<'_>> =
            self.claims.iter().map(|(vm, leaf, proof)| VmClaim { vm: *vm, leaf, proof }).collect();
        let checked = check_claims(&self.header, &claims);
        let mut out = BenchOutcome {
            bound,
            vms: u32::try_from(claims.len()).unwrap_or(u32::MAX),
            proved: 0,
            passed: 0,
            leaf_bytes: self.claims.iter().map(|c| c.1.len()).sum(),
            proof_bytes: self.claims.iter().map(|c| c.2.len()).sum(),
        };
        for (o, policy) in checked.outcomes.iter().zip(&self.policies) {
            if let VmLeafOutcome::Proved { leaf, .. } = o {
                out.proved += 1;
                out.passed += u32::from(judge_leaf(policy, leaf).is_ok());
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vmbatch_bench_builds_and_checks_n_vms() {
        for (n, modified) in [(1, 0), (2, 1), (100, 7), (1000, 0)] {
            let s = SyntheticBatch::build(n, modified).unwrap();
            assert_eq!(s.header.count, n);
            let o = s.check();
            assert_eq!(o, BenchOutcome { bound: true, vms: n, proved: n, passed: n - modified, ..o });
            assert!(o.leaf_bytes > 300 * n as usize, "{o:?}");
        }
        assert_eq!(SyntheticBatch::build(0, 0).unwrap_err(), VmBatchError::EmptyBatch);
    }

    #[test]
    fn vmbatch_bench_detects_a_tampered_claim() {
        let mut s = SyntheticBatch::build(64, 0).unwrap();
        s.claims[10].1[40] ^= 1;
        let o = s.check();
        assert_eq!((o.proved, o.passed), (63, 63));
        s.extra_data[0] ^= 1;
        assert!(!s.check().bound);
    }
}
