//! The verifier's side: is each VM's leaf in the batch the quote vouches for?
//!
//! [`check_batch`] takes a quote that already passed [`super::verify_batch_quote`] and:
//! 1. refuses the whole batch unless the quote's extraData is [`super::qualifying_data`]`(nonce,
//!    root)` and the batch has a leaf ([`BatchFailure`]);
//! 2. for each VM claim, in order — the first check that fails is its [`InclusionFailure`]:
//!    the proof decodes; it is for a tree of the batch's size; the leaf bytes hash along it to the
//!    root; the leaf decodes; it names the VM claimed; no earlier claim proved a leaf of that VM.
//!
//! A VM that passes is [`VmLeafOutcome::Proved`] with its decoded leaf, to be judged against its
//! policy. [`BatchCheck::unclaimed`] counts the tree's leaves no claim proved: a verifier that knows
//! every VM of the host requires 0, so a VM it was not told about cannot hide in the batch.

use std::collections::HashMap;

use thiserror::Error;

use crate::error::ParseError;
use crate::quote::VerifiedQuote;

use super::leaf::{VmId, VmLeaf};
use super::merkle::{InclusionProof, MerkleRoot};
use super::{qualifying_data, BatchHeader};

/// One VM's evidence as the verifier received it.
#[derive(Clone, Copy, Debug)]
pub struct VmClaim<'a> {
    /// The VM the verifier asked about (whose policy it will judge with).
    pub vm: VmId,
    /// The encoded leaf.
    pub leaf: &'a [u8],
    /// The encoded inclusion proof (it carries the leaf's index and the tree's size).
    pub proof: &'a [u8],
}

/// Why a whole batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchFailure {
    /// The batch claims no leaves.
    #[error("vm batch: the batch claims no leaves")]
    Empty,
    /// The quote does not bind this root under this nonce.
    #[error("vm batch: the quote's extraData is {quoted}, but H(nonce ‖ root {root}) is {expected}")]
    QualifyingData {
        /// The root claimed, hex.
        root: String,
        /// H(nonce ‖ root), hex.
        expected: String,
        /// extraData, hex.
        quoted: String,
    },
}

impl BatchFailure {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            BatchFailure::Empty => "vm_batch_empty",
            BatchFailure::QualifyingData { .. } => "vm_batch_qualifying_data",
        }
    }
}

/// Why one VM's leaf is not accepted as part of the batch.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InclusionFailure {
    /// The proof does not decode.
    #[error("inclusion proof is malformed: {0}")]
    MalformedProof(ParseError),
    /// The proof is for a tree of another size.
    #[error("inclusion proof is for a tree of {proof} leaves, the batch has {batch}")]
    CountMismatch {
        /// Size in the proof.
        proof: u32,
        /// Size of the batch.
        batch: u32,
    },
    /// The leaf and proof do not lead to the root.
    #[error("leaf {index} is not in the batch: it and its proof lead to root {computed}, the quoted root is {root}")]
    NotInBatch {
        /// Index in the proof.
        index: u32,
        /// Root they lead to.
        computed: MerkleRoot,
        /// The batch's root.
        root: MerkleRoot,
    },
    /// The leaf is in the batch but does not decode.
    #[error("leaf {index} is malformed: {source}")]
    MalformedLeaf {
        /// Its index.
        index: u32,
        /// What is wrong.
        source: ParseError,
    },
    /// The leaf is another VM's.
    #[error("leaf {index} is vm {leaf}'s")]
    WrongVm {
        /// Its index.
        index: u32,
        /// The VM the leaf names.
        leaf: VmId,
    },
    /// An earlier claim already proved a leaf of this VM.
    #[error("leaf {index} names a vm already proved by leaf {first}")]
    DuplicateVm {
        /// Its index.
        index: u32,
        /// Index of the leaf proved first.
        first: u32,
    },
}

impl InclusionFailure {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            InclusionFailure::MalformedProof(_) => "vm_proof_malformed",
            InclusionFailure::CountMismatch { .. } => "vm_proof_count_mismatch",
            InclusionFailure::NotInBatch { .. } => "vm_not_in_batch",
            InclusionFailure::MalformedLeaf { .. } => "vm_leaf_malformed",
            InclusionFailure::WrongVm { .. } => "vm_leaf_wrong_vm",
            InclusionFailure::DuplicateVm { .. } => "vm_leaf_duplicate",
        }
    }
}

/// One VM's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmLeafOutcome {
    /// The leaf is in the batch the quote binds, and is this VM's.
    Proved {
        /// Its index.
        index: u32,
        /// The decoded leaf (boxed: a leaf holds its digests inline).
        leaf: Box<VmLeaf>,
    },
    /// It is not; the reason names the first check that failed.
    NotIncluded {
        /// The VM claimed.
        vm: VmId,
        /// Why.
        failure: InclusionFailure,
    },
}

impl VmLeafOutcome {
    /// The VM (claimed, or named by the proved leaf — the same).
    pub fn vm(&self) -> VmId {
        match self {
            VmLeafOutcome::Proved { leaf, .. } => leaf.vm,
            VmLeafOutcome::NotIncluded { vm, .. } => *vm,
        }
    }
    /// The proved leaf, if any.
    pub fn leaf(&self) -> Option<&VmLeaf> {
        match self {
            VmLeafOutcome::Proved { leaf, .. } => Some(leaf),
            VmLeafOutcome::NotIncluded { .. } => None,
        }
    }
}

/// The batch's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCheck {
    /// One outcome per claim, in claim order.
    pub outcomes: Vec<VmLeafOutcome>,
    /// Leaves of the tree that no claim proved.
    pub unclaimed: u32,
}

/// Checks the VM claims of a batch against a verified quote. See the module docs.
pub fn check_batch(
    quote: &VerifiedQuote,
    nonce: &[u8],
    header: &BatchHeader,
    claims: &[VmClaim<'_>],
) -> Result<BatchCheck, BatchFailure> {
    if header.count == 0 {
        return Err(BatchFailure::Empty);
    }
    let expected = qualifying_data(nonce, &header.root);
    if quote.attest.extra_data.as_slice() != expected.as_slice() {
        return Err(BatchFailure::QualifyingData {
            root: header.root.to_hex(),
            expected: hex::encode(expected),
            quoted: hex::encode(&quote.attest.extra_data),
        });
    }
    Ok(check_claims(header, claims))
}

/// Step 2 of [`check_batch`] alone: the root must already be bound to a verified quote.
pub(crate) fn check_claims(header: &BatchHeader, claims: &[VmClaim<'_>]) -> BatchCheck {
    let mut proved: HashMap<VmId, u32> = HashMap::with_capacity(claims.len());
    let outcomes: Vec<VmLeafOutcome> = claims
        .iter()
        .map(|c| match check_claim(header, c, &proved) {
            Ok((index, leaf)) => {
                proved.insert(leaf.vm, index);
                VmLeafOutcome::Proved { index, leaf: Box::new(leaf) }
            }
            Err(failure) => VmLeafOutcome::NotIncluded { vm: c.vm, failure },
        })
        .collect();
    let proved = u32::try_from(proved.len()).unwrap_or(u32::MAX);
    BatchCheck { outcomes, unclaimed: header.count.saturating_sub(proved) }
}

fn check_claim(
    header: &BatchHeader,
    claim: &VmClaim<'_>,
    proved: &HashMap<VmId, u32>,
) -> Result<(u32, VmLeaf), InclusionFailure> {
    let proof = InclusionProof::decode(claim.proof).map_err(InclusionFailure::MalformedProof)?;
    if proof.count() != header.count {
        return Err(InclusionFailure::CountMismatch { proof: proof.count(), batch: header.count });
    }
    let index = proof.index();
    let computed = proof.root_for(claim.leaf);
    if computed != header.root {
        return Err(InclusionFailure::NotInBatch { index, computed, root: header.root });
    }
    let leaf = VmLeaf::decode(claim.leaf).map_err(|source| InclusionFailure::MalformedLeaf { index, source })?;
    if leaf.vm != claim.vm {
        return Err(InclusionFailure::WrongVm { index, leaf: leaf.vm });
    }
    if let Some(&first) = proved.get(&leaf.vm) {
        return Err(InclusionFailure::DuplicateVm { index, first });
    }
    Ok((index, leaf))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alg::HashAlg;
    use crate::pcr::{PcrSelection, PcrValues};
    use crate::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
    use crate::tpm::signature::SignatureValue;
    use crate::tpm::{Attest, SigScheme, Signature};
    use crate::vmbatch::leaf::tests::{full, minimal};
    use crate::vmbatch::merkle::MerkleTree;
    use crate::vmbatch::Batch;

    /// A quote as `verify_batch_quote` returns it (its signature checks are the quote module's and
    /// are tested there and in `tests/vmbatch_quote.rs`).
    fn verified(extra_data: &[u8]) -> VerifiedQuote {
        let selection = PcrSelection::new(Vec::new()).unwrap();
        VerifiedQuote {
            attest: Attest {
                magic: TPM_GENERATED_VALUE,
                qualified_signer: Vec::new(),
                extra_data: extra_data.to_vec(),
                clock_info: ClockInfo { clock: 1, reset_count: 0, restart_count: 0, safe: true },
                firmware_version: 0,
                info: AttestInfo::Quote { selection: selection.clone(), pcr_digest: Vec::new() },
            },
            signature: Signature {
                scheme: SigScheme::Ecdsa,
                hash: HashAlg::Sha256,
                value: SignatureValue::Ecc { r: vec![1], s: vec![1] },
            },
            pcrs: PcrValues::new(selection, Vec::new()).unwrap(),
        }
    }

    fn third() -> VmLeaf {
        let mut l = minimal();
        l.vm = VmId::from_bytes([0x33; 16]);
        l
    }

    #[test]
    fn vmbatch_every_vm_of_a_bound_batch_is_proved() {
        let leaves = [full(), minimal(), third()];
        let b = Batch::new(&leaves).unwrap();
        let q = verified(&b.qualifying_data(b"nonce"));
        let proofs: Vec<_> = b.entries().map(|e| (e.vm, e.leaf.to_vec(), e.proof.encode())).collect();
        let claims: Vec<_> = proofs.iter().map(|(vm, l, p)| VmClaim { vm: *vm, leaf: l, proof: p }).collect();
        let c = check_batch(&q, b"nonce", &b.header(), &claims).unwrap();
        assert_eq!(c.unclaimed, 0);
        for (i, (o, l)) in c.outcomes.iter().zip(&leaves).enumerate() {
            assert_eq!(*o, VmLeafOutcome::Proved { index: i as u32, leaf: Box::new(l.clone()) });
            assert_eq!(o.vm(), l.vm);
        }
        let c = check_batch(&q, b"nonce", &b.header(), &claims[1..2]).unwrap();
        assert_eq!(c.unclaimed, 2);
    }

    #[test]
    fn vmbatch_a_quote_over_another_root_or_nonce_refuses_the_batch() {
        let b = Batch::new(&[full()]).unwrap();
        let q = verified(&b.qualifying_data(b"nonce"));
        let e = check_batch(&q, b"other nonce", &b.header(), &[]).unwrap_err();
        assert_eq!(e.check(), "vm_batch_qualifying_data");
        let other = Batch::new(&[minimal()]).unwrap();
        assert_eq!(check_batch(&q, b"nonce", &other.header(), &[]).unwrap_err().check(), "vm_batch_qualifying_data");
        let empty = BatchHeader { root: b.root(), count: 0 };
        assert_eq!(check_batch(&q, b"nonce", &empty, &[]).unwrap_err(), BatchFailure::Empty);
    }

    #[test]
    fn vmbatch_each_claim_fails_at_its_first_bad_check() {
        let b = Batch::new(&[full(), minimal(), third()]).unwrap();
        let q = verified(&b.qualifying_data(b"n"));
        let e0 = b.entry(0).unwrap();
        let e1 = b.entry(1).unwrap();
        let p0 = e0.proof.encode();
        let p1 = e1.proof.encode();
        // The same leaves in a tree of another size: its proofs name that size.
        let bigger = MerkleTree::from_leaves(&[e0.leaf, e1.leaf, &b"x"[..], &b"y"[..]]).unwrap();
        let p_big = bigger.proof(1).unwrap().encode();
        let junk = b"junk leaf";
        let rogue = MerkleTree::from_leaves(&[&junk[..], e1.leaf, &b"z"[..]]).unwrap();
        let mut flipped = e0.leaf.to_vec();
        flipped[30] ^= 1;
        let cases: Vec<(VmClaim<'_>, &str)> = vec![
            (VmClaim { vm: e0.vm, leaf: e0.leaf, proof: &p0[..5] }, "vm_proof_malformed"),
            (VmClaim { vm: e1.vm, leaf: e1.leaf, proof: &p_big }, "vm_proof_count_mismatch"),
            (VmClaim { vm: e0.vm, leaf: &flipped, proof: &p0 }, "vm_not_in_batch"),
            (VmClaim { vm: e0.vm, leaf: e1.leaf, proof: &p0 }, "vm_not_in_batch"),
            (VmClaim { vm: e0.vm, leaf: e0.leaf, proof: &p1 }, "vm_not_in_batch"),
            (VmClaim { vm: e1.vm, leaf: e1.leaf, proof: &p1 }, "proved"),
            (VmClaim { vm: e0.vm, leaf: e1.leaf, proof: &p1 }, "vm_leaf_wrong_vm"),
            (VmClaim { vm: e1.vm, leaf: e1.leaf, proof: &p1 }, "vm_leaf_duplicate"),
        ];
        let claims: Vec<_> = cases.iter().map(|(c, _)| *c).collect();
        let c = check_batch(&q, b"n", &b.header(), &claims).unwrap();
        let got: Vec<&str> = c
            .outcomes
            .iter()
            .map(|o| match o {
                VmLeafOutcome::Proved { .. } => "proved",
                VmLeafOutcome::NotIncluded { failure, .. } => failure.check(),
            })
            .collect();
        assert_eq!(got, cases.iter().map(|(_, w)| *w).collect::<Vec<_>>());
        assert_eq!(c.unclaimed, 2);
        // A leaf that is in a tree but malformed: judged only after inclusion.
        let rq = verified(&crate::vmbatch::qualifying_data(b"n", &rogue.root()));
        let header = BatchHeader { root: rogue.root(), count: 3 };
        let p = rogue.proof(0).unwrap().encode();
        let c = check_batch(&rq, b"n", &header, &[VmClaim { vm: e0.vm, leaf: junk, proof: &p }]).unwrap();
        let VmLeafOutcome::NotIncluded { failure, .. } = &c.outcomes[0] else { panic!() };
        assert_eq!(failure.check(), "vm_leaf_malformed");
        assert!(failure.to_string().contains("leaf 0 is malformed: leaf magic"), "{failure}");
    }
}
