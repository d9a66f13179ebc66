//! A host's VM batch judged for the VMs a verifier attests on that host, in one call.
//!
//! [`judge_host_batch`] takes the batch as the host agent sent it (Keylime quote string, root, leaf
//! count, and each VM's leaf and proof bytes) and the VMs the verifier knows on that host, each with
//! its policy. The whole batch is refused ([`BatchRefusal`]) when its quote string does not decode,
//! its root is not a root, its quote does not verify under the host's AK with qualifying data
//! H(nonce ‖ root) — a quote over another nonce or another root fails here — or the quote does not
//! bind the root. Otherwise each VM gets its own verdict: absent from the batch, not proved included
//! ([`super::InclusionFailure`]), or its leaf's failures against its policy ([`super::VmFailure`]).
//! An empty list of failures is a pass.
//!
//! Leaves of the batch no claim proved are not an error here: a verifier need not attest every VM
//! of a host (the others may belong to another tenant).

use thiserror::Error;

use crate::crypto::VerifyingKey;
use crate::error::ParseError;
use crate::quote::{decode_quote_string, Expected, QuoteFailure, QuoteParts};

use super::check::{check_batch, BatchFailure, InclusionFailure, VmClaim, VmLeafOutcome};
use super::judge::{leaf_failures, VmFailure, VmPolicy};
use super::leaf::VmId;
use super::merkle::MerkleRoot;
use super::{verify_batch_quote, BatchHeader};

/// One VM's share of a host's batch, as received.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The VM id the agent put next to it.
    pub vm: &'a str,
    /// The encoded leaf.
    pub leaf: &'a [u8],
    /// The encoded inclusion proof.
    pub proof: &'a [u8],
}

/// A host's batch, as received.
#[derive(Clone, Copy, Debug)]
pub struct HostBatch<'a> {
    /// Keylime's quote string `r<attest>:<signature>:<pcrs>`.
    pub quote: &'a str,
    /// The Merkle root, hex.
    pub root: &'a str,
    /// Leaves under the root.
    pub count: u32,
    /// The VMs' leaves and proofs.
    pub items: &'a [BatchItem<'a>],
}

/// Why a host's whole batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchRefusal {
    /// The quote string does not decode.
    #[error("VM batch quote string: {0}")]
    QuoteString(ParseError),
    /// The root is not 32 bytes of hex.
    #[error("VM batch root: {0}")]
    Root(ParseError),
    /// The quote does not verify with qualifying data H(nonce ‖ root) under the host's AK.
    #[error("VM batch quote ({check}): {0}", check = .0.check())]
    Quote(QuoteFailure),
    /// The verified quote does not bind this root, or the batch claims no leaves.
    #[error("{0}")]
    Batch(BatchFailure),
}

impl BatchRefusal {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            BatchRefusal::QuoteString(_) => "vm_batch_quote_string",
            BatchRefusal::Root(_) => "vm_batch_root",
            BatchRefusal::Quote(_) => "vm_batch_quote",
            BatchRefusal::Batch(b) => b.check(),
        }
    }
}

/// Why one VM's host-side evidence does not pass.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VmEvidenceFailure {
    /// The host's batch has no leaf for the VM (no QEMU runs with its `-uuid`).
    #[error("VM uuid {vm} is not in the host's VM batch")]
    Absent {
        /// The VM.
        vm: VmId,
    },
    /// The leaf given for the VM is not proved part of the quoted batch.
    #[error("vm {vm}: {failure}")]
    NotIncluded {
        /// The VM.
        vm: VmId,
        /// Why.
        failure: InclusionFailure,
    },
    /// The proved leaf fails the VM's policy.
    #[error("{0}")]
    Leaf(VmFailure),
    /// The host's whole batch was refused.
    #[error("{0}")]
    Refused(BatchRefusal),
    /// The last batch that judged the VM is older than the verifier accepts.
    #[error("the last VM batch judging it is {age_s} s old (at most {max_s} s accepted)")]
    Stale {
        /// Its age, seconds.
        age_s: u64,
        /// The most accepted, seconds.
        max_s: u64,
    },
}

impl VmEvidenceFailure {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            VmEvidenceFailure::Absent { .. } => "vm_absent_from_batch",
            VmEvidenceFailure::NotIncluded { failure, .. } => failure.check(),
            VmEvidenceFailure::Leaf(f) => f.check(),
            VmEvidenceFailure::Refused(r) => r.check(),
            VmEvidenceFailure::Stale { .. } => "vm_evidence_stale",
        }
    }
}

/// One VM's verdict from its host's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmVerdict {
    /// The VM.
    pub vm: VmId,
    /// Its failures, in check order; empty when it passed.
    pub failures: Vec<VmEvidenceFailure>,
}

/// Judges a host's batch for `vms` (each with its policy). `expected.nonce` is the nonce the verifier
/// sent; the rest of `expected` (hash, clock, `safe`) applies to the batch's quote unchanged. See the
/// module docs.
pub fn judge_host_batch(
    ak: &VerifyingKey,
    expected: Expected<'_>,
    batch: &HostBatch<'_>,
    vms: &[(VmId, &VmPolicy)],
) -> Result<Vec<VmVerdict>, BatchRefusal> {
    let (message, signature, pcrs) = decode_quote_string(batch.quote).map_err(BatchRefusal::QuoteString)?;
    let root = MerkleRoot::from_hex(batch.root).map_err(BatchRefusal::Root)?;
    let nonce = expected.nonce;
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    let quote = verify_batch_quote(ak, parts, expected, &root).map_err(BatchRefusal::Quote)?;
    let header = BatchHeader { root, count: batch.count };
    let item_of = |vm: &VmId| batch.items.iter().find(|i| i.vm.parse::<VmId>().is_ok_and(|v| v == *vm));
    let present: Vec<(usize, VmClaim<'_>)> = vms
        .iter()
        .enumerate()
        .filter_map(|(n, (vm, _))| item_of(vm).map(|i| (n, VmClaim { vm: *vm, leaf: i.leaf, proof: i.proof })))
        .collect();
    let claims: Vec<VmClaim<'_>> = present.iter().map(|(_, c)| *c).collect();
    let checked = check_batch(&quote, nonce, &header, &claims).map_err(BatchRefusal::Batch)?;
    let mut out: Vec<VmVerdict> = vms.iter().map(|(vm, _)| VmVerdict { vm: *vm, failures: vec![VmEvidenceFailure::Absent { vm: *vm }] }).collect();
    for ((n, _), outcome) in present.iter().zip(checked.outcomes) {
        let (Some(verdict), Some((_, policy))) = (out.get_mut(*n), vms.get(*n)) else { continue };
        verdict.failures = match outcome {
            VmLeafOutcome::Proved { leaf, .. } => leaf_failures(policy, &leaf).into_iter().map(VmEvidenceFailure::Leaf).collect(),
            VmLeafOutcome::NotIncluded { vm, failure } => vec![VmEvidenceFailure::NotIncluded { vm, failure }],
        };
    }
    Ok(out)
}
