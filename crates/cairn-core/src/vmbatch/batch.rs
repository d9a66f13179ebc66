//! The agent's side: leaves in, one root and a proof per VM out.
//!
//! [`Batch::new`] encodes every leaf (refusing a leaf the encoding cannot hold, an empty batch and a
//! VM named twice), builds the tree, and keeps the encoded leaves so each VM's bytes and proof can be
//! handed out. Leaves stay in the order given; the root commits to that order and to their number.

use std::collections::HashMap;

use super::leaf::{VmId, VmLeaf};
use super::merkle::{InclusionProof, MerkleRoot, MerkleTree};
use super::{qualifying_data, BatchHeader, VmBatchError};

/// Encoded leaves and their tree.
#[derive(Clone, Debug)]
pub struct Batch {
    vms: Vec<VmId>,
    leaves: Vec<Vec<u8>>,
    tree: MerkleTree,
}

/// One VM's share of a batch: what the agent sends the verifier for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    /// Its index in the tree.
    pub index: u32,
    /// The VM.
    pub vm: VmId,
    /// The encoded leaf.
    pub leaf: &'a [u8],
    /// Its inclusion proof.
    pub proof: InclusionProof,
}

impl Batch {
    /// A batch of `leaves`, in that order.
    pub fn new(leaves: &[VmLeaf]) -> Result<Batch, VmBatchError> {
        if leaves.is_empty() {
            return Err(VmBatchError::EmptyBatch);
        }
        let mut seen = HashMap::with_capacity(leaves.len());
        for (i, l) in leaves.iter().enumerate() {
            if let Some(first) = seen.insert(l.vm, i) {
                return Err(VmBatchError::DuplicateVm { vm: l.vm, first, second: i });
            }
        }
        let encoded = leaves.iter().map(VmLeaf::encode).collect::<Result<Vec<_>, _>>()?;
        let tree = MerkleTree::from_leaves(&encoded)?;
        Ok(Batch { vms: leaves.iter().map(|l| l.vm).collect(), leaves: encoded, tree })
    }

    /// The root the quote must bind.
    pub fn root(&self) -> MerkleRoot {
        self.tree.root()
    }

    /// Number of leaves (≥ 1).
    pub fn count(&self) -> u32 {
        self.tree.count()
    }

    /// Root and count, as sent next to the quote.
    pub fn header(&self) -> BatchHeader {
        BatchHeader { root: self.root(), count: self.count() }
    }

    /// The qualifying data to quote with, for the verifier's `nonce`.
    pub fn qualifying_data(&self, nonce: &[u8]) -> [u8; 32] {
        qualifying_data(nonce, &self.root())
    }

    /// Leaf `index`'s bytes, VM and proof.
    pub fn entry(&self, index: u32) -> Option<BatchEntry<'_>> {
        let i = usize::try_from(index).ok()?;
        Some(BatchEntry {
            index,
            vm: *self.vms.get(i)?,
            leaf: self.leaves.get(i)?,
            proof: self.tree.proof(index)?,
        })
    }

    /// Every entry, in tree order.
    pub fn entries(&self) -> impl Iterator<Item = BatchEntry<'_>> + '_ {
        (0..self.count()).filter_map(|i| self.entry(i))
    }

    /// The entry of `vm`, if it is in the batch.
    pub fn entry_of(&self, vm: &VmId) -> Option<BatchEntry<'_>> {
        let i = self.vms.iter().position(|v| v == vm)?;
        self.entry(u32::try_from(i).ok()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vmbatch::leaf::tests::{full, minimal};

    #[test]
    fn vmbatch_a_batch_hands_out_each_vms_bytes_and_proof() {
        let leaves = [full(), minimal()];
        let b = Batch::new(&leaves).unwrap();
        assert_eq!(b.count(), 2);
        assert_eq!(b.header(), BatchHeader { root: b.root(), count: 2 });
        for (e, l) in b.entries().zip(&leaves) {
            assert_eq!(e.vm, l.vm);
            assert_eq!(VmLeaf::decode(e.leaf).unwrap(), *l);
            assert!(e.proof.verify(e.leaf, &b.root()));
        }
        assert_eq!(b.entry_of(&minimal().vm).unwrap().index, 1);
        assert!(b.entry(2).is_none());
        assert_eq!(b.qualifying_data(b"n"), qualifying_data(b"n", &b.root()));
    }

    #[test]
    fn vmbatch_empty_duplicate_and_unencodable_batches_are_refused() {
        assert_eq!(Batch::new(&[]).unwrap_err(), VmBatchError::EmptyBatch);
        let e = Batch::new(&[full(), minimal(), full()]).unwrap_err();
        assert!(matches!(e, VmBatchError::DuplicateVm { first: 0, second: 2, .. }), "{e}");
        let mut bad = minimal();
        bad.memory.push(crate::vmbatch::MemoryRange { gpa: 0, length: 0, digest: crate::HashAlg::Sha256.zero() });
        assert!(matches!(Batch::new(&[full(), bad]), Err(VmBatchError::InvalidLeaf { .. })));
    }
}
