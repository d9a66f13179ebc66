//! Fuzz target `vmbatch`.

/// VM batch evidence: the input as a leaf, as an inclusion proof, split into a proof and a leaf, and
/// as a VM policy. Whatever decodes must encode back to the same bytes; a decoded proof must only
/// prove the leaf it was made for; a parsed policy must survive its own JSON.
pub fn vmbatch(data: &[u8]) {
    use cairn_core::vmbatch::{judge_leaf, leaf_failures, InclusionProof, MerkleTree, VmLeaf, VmPolicy};
    let leaf = VmLeaf::decode(data).ok();
    if let Some(l) = &leaf {
        assert_eq!(l.encode().ok().as_deref(), Some(data), "a decoded leaf re-encodes to its bytes");
        // Against the policy taken from it, a leaf fails at most for its QEMU verdict.
        let own = leaf_failures(&VmPolicy::from_leaf(l), l);
        assert!(own.iter().all(|f| matches!(f.check(), "vm_qemu_not_measured" | "vm_qemu_code_modified")), "{own:?}");
        let _ = judge_leaf(&VmPolicy::default(), l);
    }
    if let Ok(p) = InclusionProof::decode(data) {
        assert_eq!(p.encode(), data, "a decoded proof re-encodes to its bytes");
        let _ = p.root_for(data);
    }
    // The first byte says where a proof ends and a leaf begins.
    if let Some((&k, rest)) = data.split_first() {
        let (proof, leaf_bytes) = rest.split_at(usize::from(k).min(rest.len()));
        if let Ok(p) = InclusionProof::decode(proof) {
            let _ = p.verify(leaf_bytes, &p.root_for(proof));
        }
        if let Ok(tree) = MerkleTree::from_leaves(&[proof, leaf_bytes]) {
            let root = tree.root();
            for (i, l) in [(0u32, proof), (1, leaf_bytes)] {
                let Some(p) = tree.proof(i) else { continue };
                assert!(p.verify(l, &root), "a fresh proof verifies");
                let other = if i == 0 { leaf_bytes } else { proof };
                assert!(other == l || !p.verify(other, &root), "a proof verifies only its own leaf");
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(policy) = VmPolicy::from_json(&text) {
        assert_eq!(VmPolicy::from_json(&policy.to_json()).ok().as_ref(), Some(&policy), "policy JSON round trip");
        if let Some(l) = &leaf {
            let _ = leaf_failures(&policy, l);
        }
    }
}
