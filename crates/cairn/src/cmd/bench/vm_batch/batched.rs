//! The batched round: one host TPM, one quote over H(nonce ‖ root) for every VM's leaf.
//!
//! Agent: the leaves (their digests computed once at launch), the Merkle tree, every proof encoded,
//! one TPM2_Quote of the host's PCRs with the qualifying data. Verifier: `verify_batch_quote` once,
//! `check_batch` over every VM's claim, `judge_leaf` of each proved leaf against its policy.

use anyhow::{bail, Context};
use cairn_core::pcr::PcrSelection;
use cairn_core::quote::{Expected, QuoteParts};
use cairn_core::tpm::{encode_pcr_blob, ClockInfo};
use cairn_core::vmbatch::bench::synthetic_leaf;
use cairn_core::vmbatch::{
    check_batch, judge_leaf, verify_batch_quote, Batch, BatchHeader, VmClaim, VmId, VmLeaf, VmLeafOutcome, VmPolicy,
};
use cairn_core::HashAlg;
use cairn_tpm::Tpm;

use super::cost::{measure, measure_agent, RoundCost};
use super::tpms::Attester;

/// The host's PCRs quoted each round: boot (0–7), IMA (10), hypervisor measurement (13).
pub const HOST_PCRS: &str = "sha256:0,1,2,3,4,5,6,7,10,13";

/// The host, its VMs as launched, and the verifier's knowledge of them.
pub struct Host {
    host: Attester,
    sel: PcrSelection,
    /// Each VM's evidence, its digests computed at launch.
    launched: Vec<VmLeaf>,
    /// The verifier's list of the host's VMs and, in the same order, their policies.
    vms: Vec<VmId>,
    policies: Vec<VmPolicy>,
    previous: Option<ClockInfo>,
}

/// What the agent sends for one round.
struct Evidence {
    header: BatchHeader,
    /// Per VM: encoded leaf and encoded proof.
    claims: Vec<(Vec<u8>, Vec<u8>)>,
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: Vec<u8>,
}

/// What the verifier concluded in one round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verdict {
    /// Leaves proved in the batch the quote binds.
    pub proved: u32,
    /// Proved leaves that passed their VM's policy.
    pub judged_ok: u32,
    /// Tree leaves no claim proved.
    pub unclaimed: u32,
    /// Bytes of leaves and proofs sent.
    pub leaf_bytes: usize,
    /// Bytes of proofs sent.
    pub proof_bytes: usize,
}

impl Host {
    /// "Launches" `n` VMs on `host`: their evidence (QEMU code, launch configuration, disk, kernel,
    /// initrd, vTPM and guest-memory digests) is computed here, once, and each VM's policy pinned.
    pub fn launch(host: Attester, n: u32) -> anyhow::Result<Host> {
        let launched: Vec<VmLeaf> = (0..n).map(|i| synthetic_leaf(i, false)).collect();
        let vms = launched.iter().map(|l| l.vm).collect();
        let policies = launched.iter().map(VmPolicy::from_leaf).collect();
        Ok(Host { host, sel: HOST_PCRS.parse()?, launched, vms, policies, previous: None })
    }

    /// One round for `nonce`; fails unless the quote verifies and every VM is proved and judged ok.
    pub fn round(&mut self, nonce: &[u8]) -> anyhow::Result<(RoundCost, Verdict)> {
        let (ev, agent_wall, agent_cpu, tpm_cpu) = measure_agent(&[self.host.pid()], || self.evidence(nonce))?;
        let (verdict, verifier_wall, verifier_cpu) = measure(|| self.verify(nonce, &ev))?;
        let n = u32::try_from(self.vms.len()).unwrap_or(u32::MAX);
        if verdict.proved != n || verdict.judged_ok != n || verdict.unclaimed != 0 {
            bail!("batched round: {verdict:?} for {n} VMs");
        }
        Ok((RoundCost { agent_wall, agent_cpu, tpm_cpu, verifier_wall, verifier_cpu }, verdict))
    }

    /// The agent's side.
    fn evidence(&self, nonce: &[u8]) -> anyhow::Result<Evidence> {
        let batch = Batch::new(&self.launched)?;
        let claims = batch.entries().map(|e| (e.leaf.to_vec(), e.proof.encode())).collect();
        let qualifying = batch.qualifying_data(nonce);
        let mut tpm = Tpm::open(&self.host.swtpm.tcti())?;
        let quote = tpm.quote(&self.host.ak, &qualifying, &self.sel).context("host quote")?;
        drop(tpm);
        let pcrs = encode_pcr_blob(&quote.pcrs);
        Ok(Evidence { header: batch.header(), claims, attest: quote.attest, signature: quote.signature, pcrs })
    }

    /// The verifier's side.
    fn verify(&mut self, nonce: &[u8], ev: &Evidence) -> anyhow::Result<Verdict> {
        let parts = QuoteParts { message: &ev.attest, signature: &ev.signature, pcrs: &ev.pcrs };
        let expected =
            Expected { nonce, hash: Some(HashAlg::Sha256), previous_clock: self.previous, require_safe: false };
        let quote = verify_batch_quote(&self.host.key, parts, expected, &ev.header.root)
            .map_err(|f| anyhow::anyhow!("batch quote refused ({}): {f}", f.check()))?;
        let claims: Vec<VmClaim<'_>> =
            self.vms.iter().zip(&ev.claims).map(|(vm, (leaf, proof))| VmClaim { vm: *vm, leaf, proof }).collect();
        let checked = check_batch(&quote, nonce, &ev.header, &claims)
            .map_err(|f| anyhow::anyhow!("batch refused ({}): {f}", f.check()))?;
        let mut v = Verdict { unclaimed: checked.unclaimed, ..Verdict::default() };
        for (o, policy) in checked.outcomes.iter().zip(&self.policies) {
            if let VmLeafOutcome::Proved { leaf, .. } = o {
                v.proved += 1;
                v.judged_ok += u32::from(judge_leaf(policy, leaf).is_ok());
            }
        }
        v.leaf_bytes = ev.claims.iter().map(|c| c.0.len()).sum();
        v.proof_bytes = ev.claims.iter().map(|c| c.1.len()).sum();
        self.previous = Some(quote.clock());
        Ok(v)
    }
}
