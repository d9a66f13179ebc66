//! The batch's Merkle tree: SHA-256, RFC 6962's shape and domain separation, inclusion proofs.
//!
//! A leaf hashes as H(0x00 ‖ leaf bytes), an inner node as H(0x01 ‖ left ‖ right), so no leaf can
//! pass for a node. For n > 1 leaves the root is H(0x01 ‖ MTH(first k) ‖ MTH(rest)), k the largest
//! power of two below n (RFC 6962 §2.1) — built here bottom-up, pairing nodes left to right and
//! carrying an odd last node up unchanged, which gives the same tree. A root therefore commits to
//! the leaves *and* their number: a proof for one tree size cannot be replayed for another.
//!
//! An inclusion proof is the siblings from the leaf up (RFC 6962's audit path). Its encoding:
//!
//! | size | field |
//! |---|---|
//! | 1 | version, 1 |
//! | 4 | leaf index, big-endian |
//! | 4 | leaf count of the tree, big-endian (≥ 1, > index) |
//! | 1 | path length m: exactly the number of siblings the index has in a tree of that count (≤ 32) |
//! | 32 × m | sibling hashes, leaf level first |
//!
//! The decoder rejects any other path length, so each (index, count) has exactly one proof size.

use std::fmt;

use crate::alg::HashAlg;
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

use super::{VmBatchError, MAX_BATCH};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Prefix of a leaf hash.
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an inner-node hash.
pub const NODE_PREFIX: u8 = 0x01;
/// Version byte of the proof encoding.
pub const PROOF_VERSION: u8 = 1;
/// Longest audit path: a tree of at most 2³² leaves is at most 32 levels deep.
pub const MAX_PATH: usize = 32;

/// SHA-256 of the concatenation of `parts`, as a fixed array.
pub(crate) fn sha256(parts: &[&[u8]]) -> Hash {
    let d = HashAlg::Sha256.hash_parts(parts);
    let mut out = [0u8; 32];
    out.iter_mut().zip(d.as_bytes()).for_each(|(o, b)| *o = *b);
    out
}

/// H(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256(&[&[LEAF_PREFIX], leaf])
}

/// H(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[NODE_PREFIX], left, right])
}

/// The root of a batch's tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MerkleRoot(pub Hash);

impl MerkleRoot {
    /// Its bytes.
    pub fn as_bytes(&self) -> &Hash {
        &self.0
    }
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// From 64 hex digits.
    pub fn from_hex(s: &str) -> Result<MerkleRoot, ParseError> {
        let v = hex::decode(s.trim()).map_err(|e| ParseError::text("merkle root", e.to_string()))?;
        let h: Hash =
            v.try_into().map_err(|v: Vec<u8>| ParseError::text("merkle root", format!("{} bytes, not 32", v.len())))?;
        Ok(MerkleRoot(h))
    }
}

impl fmt::Display for MerkleRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for MerkleRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MerkleRoot({})", self.to_hex())
    }
}

/// How many siblings leaf `index` has in a tree of `count` leaves, or `None` if it is not a leaf
/// of such a tree.
pub fn path_len(index: u32, count: u32) -> Option<usize> {
    if index >= count {
        return None;
    }
    let (mut i, mut n, mut len) = (u64::from(index), u64::from(count), 0);
    while n > 1 {
        if i ^ 1 < n {
            len += 1;
        }
        i >>= 1;
        n = n.div_ceil(2);
    }
    Some(len)
}

/// A whole tree, every level kept, for the side that hands out proofs (the agent).
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes, the last level is the root alone.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The tree over `leaves` (their bytes, in order).
    pub fn from_leaves<B: AsRef<[u8]>>(leaves: &[B]) -> Result<MerkleTree, VmBatchError> {
        MerkleTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l.as_ref())).collect())
    }

    /// The tree over leaf hashes already computed.
    pub fn from_leaf_hashes(hashes: Vec<Hash>) -> Result<MerkleTree, VmBatchError> {
        if hashes.is_empty() {
            return Err(VmBatchError::EmptyBatch);
        }
        if hashes.len() > MAX_BATCH {
            return Err(VmBatchError::TooManyLeaves { count: hashes.len(), max: MAX_BATCH });
        }
        let mut levels = vec![hashes];
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let up = level
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [alone] => *alone,
                    _ => [0; 32],
                })
                .collect();
            levels.push(up);
        }
        Ok(MerkleTree { levels })
    }

    /// Number of leaves (≥ 1, ≤ [`MAX_BATCH`]).
    pub fn count(&self) -> u32 {
        self.levels.first().map_or(0, |l| u32::try_from(l.len()).unwrap_or(u32::MAX))
    }

    /// The root.
    pub fn root(&self) -> MerkleRoot {
        MerkleRoot(self.levels.last().and_then(|l| l.first()).copied().unwrap_or([0; 32]))
    }

    /// The inclusion proof of leaf `index`.
    pub fn proof(&self, index: u32) -> Option<InclusionProof> {
        let count = self.count();
        if index >= count {
            return None;
        }
        let mut i = usize::try_from(index).ok()?;
        let mut path = Vec::new();
        for level in self.levels.iter().take(self.levels.len().saturating_sub(1)) {
            if let Some(sibling) = level.get(i ^ 1) {
                path.push(*sibling);
            }
            i >>= 1;
        }
        Some(InclusionProof { index, count, path })
    }
}

/// The audit path of one leaf in a tree of `count` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    index: u32,
    count: u32,
    path: Vec<Hash>,
}

impl InclusionProof {
    /// A proof from its parts; the path must have exactly [`path_len`]`(index, count)` hashes.
    pub fn from_parts(index: u32, count: u32, path: Vec<Hash>) -> Result<InclusionProof, ParseError> {
        let want = path_len(index, count).ok_or(ParseError::BadValue {
            field: "proof index",
            offset: 0,
            value: index.into(),
            expected: "an index below the leaf count",
        })?;
        if path.len() != want {
            return Err(ParseError::BadValue {
                field: "proof path length",
                offset: 0,
                value: path.len() as u64,
                expected: "the number of siblings the index has in a tree of that count",
            });
        }
        Ok(InclusionProof { index, count, path })
    }

    /// The leaf's index.
    pub fn index(&self) -> u32 {
        self.index
    }
    /// The tree's leaf count.
    pub fn count(&self) -> u32 {
        self.count
    }
    /// The siblings, leaf level first.
    pub fn path(&self) -> &[Hash] {
        &self.path
    }

    /// The root this proof and `leaf` (its bytes) lead to.
    pub fn root_for(&self, leaf: &[u8]) -> MerkleRoot {
        let (mut i, mut n) = (u64::from(self.index), u64::from(self.count));
        let mut h = leaf_hash(leaf);
        let mut siblings = self.path.iter();
        while n > 1 {
            if i ^ 1 < n {
                // The path's length was checked against (index, count) when the proof was made.
                let Some(s) = siblings.next() else { break };
                h = if i & 1 == 1 { node_hash(s, &h) } else { node_hash(&h, s) };
            }
            i >>= 1;
            n = n.div_ceil(2);
        }
        MerkleRoot(h)
    }

    /// Whether `leaf` is leaf `index` of the tree with this root.
    pub fn verify(&self, leaf: &[u8], root: &MerkleRoot) -> bool {
        self.root_for(leaf) == *root
    }

    /// The encoding (see the module docs): 10 + 32 × path length bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + 32 * self.path.len());
        out.push(PROOF_VERSION);
        out.put_u32_be(self.index);
        out.put_u32_be(self.count);
        // At most MAX_PATH, by construction.
        out.push(u8::try_from(self.path.len()).unwrap_or(u8::MAX));
        self.path.iter().for_each(|h| out.extend_from_slice(h));
        out
    }

    /// Reads a proof that fills `bytes` exactly. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<InclusionProof, ParseError> {
        let mut r = Reader::new(bytes);
        let offset = r.offset();
        let version = r.u8("proof version")?;
        if version != PROOF_VERSION {
            let value = version.into();
            return Err(ParseError::BadValue { field: "proof version", offset, value, expected: "version 1" });
        }
        let offset = r.offset();
        let index = r.u32_be("proof index")?;
        let count = r.u32_be("proof count")?;
        let want = path_len(index, count).ok_or(ParseError::BadValue {
            field: "proof index",
            offset,
            value: index.into(),
            expected: "an index below the leaf count",
        })?;
        let offset = r.offset();
        let m = usize::from(r.u8("proof path length")?);
        if m != want {
            return Err(ParseError::BadValue {
                field: "proof path length",
                offset,
                value: m as u64,
                expected: "the number of siblings the index has in a tree of that count",
            });
        }
        let path = (0..m).map(|_| r.array::<32>("proof path")).collect::<Result<Vec<_>, _>>()?;
        r.finish("inclusion proof")?;
        Ok(InclusionProof { index, count, path })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf-{i}").into_bytes()).collect()
    }

    /// RFC 6962 §2.1 as written: MTH over a slice, k the largest power of two below n.
    fn mth(d: &[Vec<u8>]) -> Hash {
        match d.len() {
            1 => leaf_hash(&d[0]),
            n => {
                let k = split(n);
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 6962 §2.1.1 PATH(m, D[n]).
    fn rfc_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
        if d.len() == 1 {
            return Vec::new();
        }
        let k = split(d.len());
        if m < k {
            let mut p = rfc_path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = rfc_path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    #[test]
    fn agrees_with_rfc6962_and_every_leaf_of_sizes_1_to_67_verifies() {
        for n in 1..=67usize {
            let d = leaves(n);
            let tree = MerkleTree::from_leaves(&d).unwrap();
            assert_eq!(tree.root().0, mth(&d), "root, n = {n}");
            assert_eq!(tree.count() as usize, n);
            for (i, leaf) in d.iter().enumerate() {
                let p = tree.proof(i as u32).unwrap();
                assert_eq!(p.path(), rfc_path(i, &d).as_slice(), "path {i} of {n}");
                assert_eq!(Some(p.path().len()), path_len(i as u32, n as u32));
                assert!(p.verify(leaf, &tree.root()), "leaf {i} of {n}");
                let back = InclusionProof::decode(&p.encode()).unwrap();
                assert_eq!(back, p);
                assert!(back.verify(leaf, &tree.root()));
            }
            assert!(tree.proof(n as u32).is_none());
        }
    }

    /// Independently computed (Python hashlib, RFC 6962 recursion) over the leaves `leaf-0`..`leaf-6`.
    #[test]
    fn known_answer() {
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        let tree = MerkleTree::from_leaves(&leaves(7)).unwrap();
        assert_eq!(tree.root().to_hex(), KAT_ROOT_7);
        let p = tree.proof(5).unwrap();
        assert_eq!(p.path().iter().map(hex::encode).collect::<Vec<_>>(), KAT_PATH_7_5);
    }

    const KAT_ROOT_7: &str = "0b007fb915eb9b2a146f54b1c86ec53b664f8e455b7660b0b6ee13edc0d921c0";
    const KAT_PATH_7_5: [&str; 3] = [
        "ea9fc1a1b6e191b460d0d6306e3e870c173f39330f13cda1b70cfc72bdc398ba",
        "676f3782f5b3a5fb4370ed49572cedc523f4a66322269c85f2af0509d17b0a4d",
        "bdd1c5ff55b19cb6b0e7c761bf9a6ccaa27fbbfc07b74f1fabb6e911a0bd2ab3",
    ];

    #[test]
    fn a_flipped_bit_in_leaf_proof_root_or_index_fails() {
        for n in [1usize, 2, 3, 5, 8, 13, 67] {
            let d = leaves(n);
            let tree = MerkleTree::from_leaves(&d).unwrap();
            let root = tree.root();
            for (i, leaf) in d.iter().enumerate() {
                let proof = tree.proof(i as u32).unwrap();
                for bit in 0..leaf.len() * 8 {
                    let mut l = leaf.clone();
                    l[bit / 8] ^= 1 << (bit % 8);
                    assert!(!proof.verify(&l, &root));
                }
                for bit in 0..256 {
                    let mut r = root;
                    r.0[bit / 8] ^= 1 << (bit % 8);
                    assert!(!proof.verify(leaf, &r));
                }
                let bytes = proof.encode();
                for bit in 0..bytes.len() * 8 {
                    let mut b = bytes.clone();
                    b[bit / 8] ^= 1 << (bit % 8);
                    // Either the flipped proof no longer decodes, or it no longer proves this leaf
                    // at this index in this tree.
                    if let Ok(p) = InclusionProof::decode(&b) {
                        assert!(
                            !(p.verify(leaf, &root) && p.index() == i as u32 && p.count() == n as u32),
                            "bit {bit} of proof {i}/{n}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_proof_for_one_index_does_not_verify_for_another() {
        for n in 2..=40usize {
            let d = leaves(n);
            let tree = MerkleTree::from_leaves(&d).unwrap();
            for i in 0..n {
                let p = tree.proof(i as u32).unwrap();
                for j in (0..n).filter(|&j| j != i) {
                    assert!(!p.verify(&d[j], &tree.root()), "proof {i} with leaf {j} of {n}");
                    // The same path claimed for index j, where its length allows it.
                    if let Ok(q) = InclusionProof::from_parts(j as u32, n as u32, p.path().to_vec()) {
                        assert!(!q.verify(&d[i], &tree.root()), "path of {i} at index {j} of {n}");
                        assert!(!q.verify(&d[j], &tree.root()), "path of {i} for leaf {j} of {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_proof_does_not_carry_over_to_another_tree_size() {
        let d = leaves(8);
        let big = MerkleTree::from_leaves(&d).unwrap();
        let small = MerkleTree::from_leaves(&d[..4]).unwrap();
        let p = small.proof(1).unwrap();
        assert!(p.verify(&d[1], &small.root()));
        assert!(!p.verify(&d[1], &big.root()));
        let q = InclusionProof::from_parts(1, 8, [p.path(), &[small.root().0]].concat()).unwrap();
        assert!(!q.verify(&d[1], &small.root()));
    }

    #[test]
    fn empty_batches_and_bad_encodings_are_refused() {
        assert!(matches!(MerkleTree::from_leaves::<Vec<u8>>(&[]), Err(VmBatchError::EmptyBatch)));
        let tree = MerkleTree::from_leaves(&leaves(5)).unwrap();
        let good = tree.proof(4).unwrap().encode();
        assert_eq!(good.len(), 10 + 32);
        let err = |b: &[u8]| InclusionProof::decode(b).unwrap_err();
        assert!(matches!(err(&[2, 0, 0, 0, 0, 0, 0, 0, 1, 0]), ParseError::BadValue { field: "proof version", .. }));
        assert!(matches!(err(&[1, 0, 0, 0, 5, 0, 0, 0, 5, 1]), ParseError::BadValue { field: "proof index", .. }));
        assert!(matches!(err(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), ParseError::BadValue { field: "proof index", .. }));
        let mut long = good.clone();
        long[9] = 2;
        assert!(matches!(err(&long), ParseError::BadValue { field: "proof path length", .. }));
        long.extend_from_slice(&[0; 32]);
        assert!(matches!(err(&long), ParseError::BadValue { field: "proof path length", .. }));
        assert!(matches!(err(&good[..good.len() - 1]), ParseError::Truncated { field: "proof path", .. }));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(err(&trailing), ParseError::TrailingData { .. }));
        assert_eq!(path_len(0, 1), Some(0));
        assert_eq!(path_len(0, u32::MAX), Some(32));
        assert_eq!(path_len(u32::MAX - 1, u32::MAX), Some(31));
        assert_eq!(path_len(0, 0), None);
        // The single-leaf proof: no siblings, the root is the leaf hash.
        let one = MerkleTree::from_leaves(&[b"only".to_vec()]).unwrap();
        assert_eq!(one.root().0, leaf_hash(b"only"));
        assert_eq!(one.proof(0).unwrap().encode(), [1, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    }

    proptest! {
        #[test]
        fn vmbatch_proof_decode_of_arbitrary_bytes_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            if let Ok(p) = InclusionProof::decode(&data) {
                prop_assert_eq!(p.encode(), data.clone());
                let _ = p.verify(&data, &MerkleRoot([0; 32]));
            }
        }
    }
}
