//! Host-side VM evidence, batched under one TPM quote.
//!
//! A host agent collects, for each VM it runs, an evidence *leaf* from outside the VM ([`leaf`]):
//! the QEMU process's code verdict from the hypervisor measurement, digests of the launch
//! configuration, disks, kernel, initrd and vTPM, and guest-memory ranges it read. It puts every
//! leaf in one Merkle tree ([`merkle`]) and asks the host TPM for one quote whose qualifying data is
//! [`qualifying_data`]`(nonce, root)` = SHA-256(nonce ‖ root). So N VMs cost one quote, no VM needs
//! an attestation key of its own, and nothing running inside a VM takes part — a compromised guest
//! can neither relay another machine's evidence nor choose what is said about it.
//!
//! The verifier, in order:
//! 1. verifies the quote once with [`verify_batch_quote`] — [`crate::quote::verify_quote`] with the
//!    expected nonce replaced by the qualifying data, so every quote check (signature, PCRs, clock)
//!    is the quote module's;
//! 2. [`check_batch`]: the quote's extraData binds the root; then, per VM, its proof decodes and
//!    names this batch's size, its leaf hashes to the root along the proof, the leaf decodes and is
//!    the VM's; the result is one [`VmLeafOutcome`] per VM;
//! 3. [`judge_leaf`]s each proved leaf against that VM's [`VmPolicy`].
//!
//! [`judge_host_batch`] does the three steps from the bytes an agent sends, for the VMs a verifier
//! attests on the host ([`host`]).
//!
//! Byte layouts, the tree, the policy JSON: `docs/vm-evidence.md`.
//!
//! ```
//! use cairn_core::vmbatch::{judge_leaf, Batch, InclusionProof, QemuCode, VmLeaf, VmPolicy};
//! use cairn_core::HashAlg;
//! let h = |s: &str| HashAlg::Sha256.hash(s.as_bytes());
//! let vm = |id: &str| VmLeaf {
//!     vm: id.parse().unwrap(), qemu: QemuCode::Unmodified(h("qemu")), launch_config: h(id),
//!     disks: vec![h("disk")], kernel: None, initrd: None, vtpm_state: None, vtpm_ek: None, memory: vec![],
//! };
//! let leaves = [vm("00000000-0000-4000-8000-000000000001"), vm("00000000-0000-4000-8000-000000000002")];
//! // Agent: one tree, one quote over qualifying_data(nonce, root).
//! let batch = Batch::new(&leaves).unwrap();
//! let extra_data = batch.qualifying_data(b"verifier nonce");
//! let entry = batch.entry(1).unwrap();
//! let (leaf_bytes, proof_bytes) = (entry.leaf.to_vec(), entry.proof.encode());
//! // Verifier (after the quote verified with that extraData): prove, decode, judge.
//! let proof = InclusionProof::decode(&proof_bytes).unwrap();
//! assert!(proof.verify(&leaf_bytes, &batch.root()));
//! let leaf = VmLeaf::decode(&leaf_bytes).unwrap();
//! let other = HashAlg::Sha256.hash(b"another disk").to_hex();
//! let policy = VmPolicy::from_json(&format!(r#"{{"disks": ["sha256:{other}"]}}"#)).unwrap();
//! assert_eq!(judge_leaf(&policy, &leaf).unwrap_err().check(), "vm_disk_not_allowed");
//! assert!(judge_leaf(&VmPolicy::from_leaf(&leaf), &leaf).is_ok());
//! # let _ = extra_data;
//! ```

pub mod batch;
pub mod bench;
pub mod check;
pub mod host;
pub mod judge;
pub mod leaf;
pub mod merkle;

pub use batch::{Batch, BatchEntry};
pub use check::{check_batch, BatchCheck, BatchFailure, InclusionFailure, VmClaim, VmLeafOutcome};
pub use host::{judge_host_batch, BatchItem, BatchRefusal, HostBatch, VmEvidenceFailure, VmVerdict};
pub use judge::{judge_leaf, leaf_failures, VmFailure, VmField, VmPolicy};
pub use leaf::{MemoryRange, QemuCode, VmId, VmLeaf};
pub use merkle::{InclusionProof, MerkleRoot, MerkleTree};

use thiserror::Error;

use crate::crypto::VerifyingKey;
use crate::quote::{verify_quote, Expected, QuoteFailure, QuoteParts, VerifiedQuote};

/// Most leaves in one batch (far more VMs than one host runs; keeps an agent's tree bounded).
pub const MAX_BATCH: usize = 1 << 20;

/// What a batch claims about itself next to its quote: the root the quote binds and the number of
/// leaves under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// The tree's root.
    pub root: MerkleRoot,
    /// Its number of leaves.
    pub count: u32,
}

/// Errors building a batch or reading a VM policy (verdicts on evidence are [`BatchFailure`],
/// [`InclusionFailure`] and [`VmFailure`] values instead).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VmBatchError {
    /// A batch needs at least one leaf.
    #[error("empty VM batch: a batch needs at least one leaf")]
    EmptyBatch,
    /// More leaves than [`MAX_BATCH`].
    #[error("VM batch of {count} leaves exceeds the maximum {max}")]
    TooManyLeaves {
        /// Leaves given.
        count: usize,
        /// Most allowed.
        max: usize,
    },
    /// A leaf breaks a limit or the range order of the encoding.
    #[error("vm {vm}: leaf cannot be encoded: {detail}")]
    InvalidLeaf {
        /// The VM.
        vm: VmId,
        /// What is wrong.
        detail: String,
    },
    /// Two leaves of one batch name the same VM.
    #[error("vm {vm} has two leaves in the batch ({first} and {second})")]
    DuplicateVm {
        /// The VM.
        vm: VmId,
        /// Index of its first leaf.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// A VM policy does not parse.
    #[error("vm policy: {0}")]
    Policy(String),
}

/// The qualifying data (extraData) of a batch's quote: SHA-256(nonce ‖ root). The root has a fixed
/// length, so the concatenation reads one way; 32 bytes fit every TPM's TPM2B_DATA.
pub fn qualifying_data(nonce: &[u8], root: &MerkleRoot) -> [u8; 32] {
    merkle::sha256(&[nonce, root.as_bytes()])
}

/// Verifies a batch's quote: [`verify_quote`] with `expected.nonce` (the nonce the verifier sent)
/// replaced by [`qualifying_data`]`(nonce, root)`. Every other expectation is passed unchanged; a
/// wrong root fails as [`QuoteFailure::NonceMismatch`] (`nonce_mismatch`).
pub fn verify_batch_quote(
    ak: &VerifyingKey,
    parts: QuoteParts<'_>,
    expected: Expected<'_>,
    root: &MerkleRoot,
) -> Result<VerifiedQuote, QuoteFailure> {
    let q = qualifying_data(expected.nonce, root);
    verify_quote(ak, parts, Expected { nonce: &q, ..expected })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alg::HashAlg;

    #[test]
    fn vmbatch_qualifying_data_is_sha256_of_nonce_then_root() {
        let root = MerkleRoot([0xab; 32]);
        let q = qualifying_data(b"nonce", &root);
        let mut m = b"nonce".to_vec();
        m.extend_from_slice(&[0xab; 32]);
        assert_eq!(&q[..], HashAlg::Sha256.hash(&m).as_bytes());
        // Computed independently: printf 'nonce' + 32 × 0xab | sha256sum.
        assert_eq!(hex::encode(q), QD_VECTOR);
        assert_ne!(qualifying_data(b"nonce", &MerkleRoot([0xac; 32])), q);
        assert_ne!(qualifying_data(b"nonc", &root), q);
    }

    const QD_VECTOR: &str = "aaf0662421c7a26ea50eabd0a7a065e2421125a0e9df79025f1c4f268ead533f";
}
