//! A VM batch under one quote, end to end: the quote (signed in software by an AK-shaped P-256 key)
//! is verified by the quote module with the batch's qualifying data, then each VM's leaf is proved
//! and judged. The TPM side of quoting with qualifying data is the quote module's and tested with
//! swtpm elsewhere; this tests that the batch path binds the root through `verify_quote`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use cairn_core::crypto::VerifyingKey;
use cairn_core::pcr::{BankSelection, PcrSelection, PcrValues};
use cairn_core::quote::{Expected, QuoteFailure, QuoteParts};
use cairn_core::tpm::attest::{AttestInfo, ClockInfo, TPM_GENERATED_VALUE};
use cairn_core::tpm::signature::SignatureValue;
use cairn_core::tpm::{encode_pcr_blob, Attest, EccCurve, Public, PublicKey, SigScheme, Signature};
use cairn_core::vmbatch::bench::synthetic_leaf;
use cairn_core::vmbatch::{
    check_batch, judge_leaf, verify_batch_quote, Batch, MerkleRoot, QemuCode, VmClaim, VmLeafOutcome, VmPolicy,
};
use cairn_core::HashAlg;

struct Quote {
    message: Vec<u8>,
    signature: Vec<u8>,
    pcrs: Vec<u8>,
}

/// An AK-shaped key that quotes PCR 13 of the sha256 bank with the given extraData.
struct SoftAk {
    key: EcdsaKeyPair,
    public: Public,
}

impl SoftAk {
    fn new() -> SoftAk {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = key.public_key().as_ref();
        let pk = PublicKey::Ecc { curve: EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..65].to_vec() };
        let public = Public::for_signing_key(&pk, SigScheme::Ecdsa, HashAlg::Sha256).unwrap();
        SoftAk { key, public }
    }

    fn quote(&self, extra_data: &[u8]) -> Quote {
        let selection = PcrSelection::new(vec![BankSelection { alg: HashAlg::Sha256, mask: 1 << 13 }]).unwrap();
        let values = PcrValues::new(selection.clone(), vec![HashAlg::Sha256.hash(b"hvm")]).unwrap();
        let attest = Attest {
            magic: TPM_GENERATED_VALUE,
            qualified_signer: [&[0u8, 0x0b][..], &[0x42; 32]].concat(),
            extra_data: extra_data.to_vec(),
            clock_info: ClockInfo { clock: 5_000, reset_count: 1, restart_count: 0, safe: true },
            firmware_version: 1,
            info: AttestInfo::Quote {
                selection,
                pcr_digest: values.composite_digest(HashAlg::Sha256).as_bytes().to_vec(),
            },
        };
        let message = attest.to_bytes();
        let sig = self.key.sign(&SystemRandom::new(), &message).unwrap();
        let s = sig.as_ref();
        let value = SignatureValue::Ecc { r: s[..32].to_vec(), s: s[32..64].to_vec() };
        let signature = Signature { scheme: SigScheme::Ecdsa, hash: HashAlg::Sha256, value }.to_bytes();
        Quote { message, signature, pcrs: encode_pcr_blob(&values) }
    }
}

fn parts(q: &Quote) -> QuoteParts<'_> {
    QuoteParts { message: &q.message, signature: &q.signature, pcrs: &q.pcrs }
}

#[test]
fn vmbatch_one_quote_proves_every_vm_and_each_is_judged() {
    let ak = SoftAk::new();
    let key = VerifyingKey::from_public(&ak.public);
    let mut leaves: Vec<_> = (0..25).map(|i| synthetic_leaf(i, false)).collect();
    let policies: Vec<_> = leaves.iter().map(VmPolicy::from_leaf).collect();
    leaves[7].qemu = QemuCode::Modified(HashAlg::Sha256.hash(b"qemu-system-x86_64"));
    let nonce = b"verifier nonce 0123";

    // Agent.
    let batch = Batch::new(&leaves).unwrap();
    let quote = ak.quote(&batch.qualifying_data(nonce));
    let sent: Vec<_> = batch.entries().map(|e| (e.vm, e.leaf.to_vec(), e.proof.encode())).collect();

    // Verifier.
    let expected = Expected { hash: Some(HashAlg::Sha256), ..Expected::nonce(nonce) };
    let verified = verify_batch_quote(&key, parts(&quote), expected, &batch.root()).unwrap();
    let claims: Vec<_> = sent.iter().map(|(vm, l, p)| VmClaim { vm: *vm, leaf: l, proof: p }).collect();
    let checked = check_batch(&verified, nonce, &batch.header(), &claims).unwrap();
    assert_eq!(checked.unclaimed, 0);
    let verdicts: Vec<_> = checked
        .outcomes
        .iter()
        .zip(&policies)
        .map(|(o, p)| match o {
            VmLeafOutcome::Proved { leaf, .. } => judge_leaf(p, leaf).err().map(|f| f.check()),
            VmLeafOutcome::NotIncluded { failure, .. } => Some(failure.check()),
        })
        .collect();
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(*v, (i == 7).then_some("vm_qemu_code_modified"), "vm {i}");
    }
}

#[test]
fn vmbatch_a_quote_binds_one_root_under_one_nonce() {
    let ak = SoftAk::new();
    let key = VerifyingKey::from_public(&ak.public);
    let batch = Batch::new(&[synthetic_leaf(0, false), synthetic_leaf(1, false)]).unwrap();
    let other = Batch::new(&[synthetic_leaf(0, false), synthetic_leaf(2, false)]).unwrap();
    let nonce = b"n-1";
    let quote = ak.quote(&batch.qualifying_data(nonce));
    let fails = |nonce: &[u8], root: &MerkleRoot| {
        verify_batch_quote(&key, parts(&quote), Expected::nonce(nonce), root).map(|_| ()).unwrap_err()
    };
    // Another root, or a replay of this quote for another nonce, fails in the quote module.
    assert!(matches!(fails(nonce, &other.root()), QuoteFailure::NonceMismatch { .. }));
    assert_eq!(fails(b"n-2", &batch.root()).check(), "nonce_mismatch");
    // A quote over the bare nonce (no batch) does not carry a batch either.
    let bare = ak.quote(nonce);
    let e = verify_batch_quote(&key, parts(&bare), Expected::nonce(nonce), &batch.root()).unwrap_err();
    assert_eq!(e.check(), "nonce_mismatch");
    // And check_batch refuses a verified quote whose extraData does not bind the header it is given.
    let verified = verify_batch_quote(&key, parts(&quote), Expected::nonce(nonce), &batch.root()).unwrap();
    assert_eq!(check_batch(&verified, nonce, &other.header(), &[]).unwrap_err().check(), "vm_batch_qualifying_data");
    // A flipped signature bit still fails as the quote module says.
    let mut forged = ak.quote(&batch.qualifying_data(nonce));
    let last = forged.signature.len() - 1;
    forged.signature[last] ^= 1;
    let e = verify_batch_quote(&key, parts(&forged), Expected::nonce(nonce), &batch.root()).unwrap_err();
    assert_eq!(e.check(), "bad_signature");
}

#[test]
fn vmbatch_a_host_batch_is_judged_per_vm_and_refused_whole_for_another_nonce() {
    use cairn_core::quote::encode_quote_string;
    use cairn_core::vmbatch::{judge_host_batch, BatchItem, HostBatch};
    let ak = SoftAk::new();
    let key = VerifyingKey::from_public(&ak.public);
    let leaves = [synthetic_leaf(0, false), synthetic_leaf(1, false)];
    let batch = Batch::new(&leaves).unwrap();
    let nonce = b"host round nonce";
    let q = ak.quote(&batch.qualifying_data(nonce));
    let quote = encode_quote_string(&q.message, &q.signature, &q.pcrs);
    let entries: Vec<_> = batch.entries().map(|e| (e.vm.to_string(), e.leaf.to_vec(), e.proof.encode())).collect();
    let items: Vec<BatchItem<'_>> = entries.iter().map(|(vm, leaf, proof)| BatchItem { vm, leaf, proof }).collect();
    let root = batch.root().to_hex();
    let host = HostBatch { quote: &quote, root: &root, count: batch.count(), items: &items };
    let ok = VmPolicy::from_leaf(&leaves[0]);
    let mut other_disk = VmPolicy::from_leaf(&leaves[1]);
    other_disk.disks = Some(vec![HashAlg::Sha256.hash(b"another image")]);
    let absent = synthetic_leaf(9, false).vm;
    let vms = [(leaves[0].vm, &ok), (leaves[1].vm, &other_disk), (absent, &ok)];
    let verdicts = judge_host_batch(&key, Expected::nonce(nonce), &host, &vms).unwrap();
    let checks: Vec<Vec<&str>> = verdicts.iter().map(|v| v.failures.iter().map(|f| f.check()).collect()).collect();
    assert_eq!(checks, [vec![], vec!["vm_disk_not_allowed"; leaves[1].disks.len()], vec!["vm_absent_from_batch"]]);
    assert!(verdicts[2].failures[0].to_string().contains("is not in the host's VM batch"));

    // The same batch presented for another nonce (a replay) is refused whole, naming the quote check.
    let e = judge_host_batch(&key, Expected::nonce(b"a later nonce"), &host, &vms).unwrap_err();
    assert_eq!(e.check(), "vm_batch_quote");
    assert!(e.to_string().contains("nonce_mismatch"), "{e}");
    // Another root next to the quote is refused too, as is a damaged quote string.
    let other = Batch::new(&[synthetic_leaf(3, false)]).unwrap().root().to_hex();
    let e = judge_host_batch(&key, Expected::nonce(nonce), &HostBatch { root: &other, ..host }, &vms).unwrap_err();
    assert_eq!(e.check(), "vm_batch_quote");
    let e = judge_host_batch(&key, Expected::nonce(nonce), &HostBatch { quote: "rnot:a:quote", ..host }, &vms).unwrap_err();
    assert_eq!(e.check(), "vm_batch_quote_string");
}
