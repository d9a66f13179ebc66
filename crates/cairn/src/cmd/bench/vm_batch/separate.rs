//! The separate round: a vTPM per VM, each with its own AK, quoted and verified one by one — what
//! attesting every VM through its own vTPM costs.

use anyhow::Context;
use cairn_core::pcr::PcrSelection;
use cairn_core::quote::{verify_quote, Expected, QuoteParts};
use cairn_core::tpm::{encode_pcr_blob, ClockInfo};
use cairn_core::HashAlg;
use cairn_tpm::Tpm;

use super::cost::{measure, measure_agent, RoundCost};
use super::tpms::Attester;

/// Each VM's PCRs quoted each round: boot (0–7) and IMA (10) of its vTPM.
pub const VM_PCRS: &str = "sha256:0,1,2,3,4,5,6,7,10";

/// The VMs' vTPMs and the verifier's clock history per AK.
pub struct Vtpms {
    vtpms: Vec<Attester>,
    pids: Vec<u32>,
    sel: PcrSelection,
    previous: Vec<Option<ClockInfo>>,
}

/// One quote as a VM's agent sends it.
struct Evidence {
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: Vec<u8>,
}

impl Vtpms {
    /// The vTPMs, already started with their AKs.
    pub fn new(vtpms: Vec<Attester>) -> anyhow::Result<Vtpms> {
        let pids = vtpms.iter().map(Attester::pid).collect();
        let previous = vec![None; vtpms.len()];
        Ok(Vtpms { vtpms, pids, sel: VM_PCRS.parse()?, previous })
    }

    /// The vTPMs' swtpm process ids.
    pub fn tpm_pids(&self) -> &[u32] {
        &self.pids
    }

    /// One round, VM `i` quoting over `nonces[i]`; fails unless every quote verifies. Returns the
    /// number of quotes verified.
    pub fn round(&mut self, nonces: &[Vec<u8>]) -> anyhow::Result<(RoundCost, u32)> {
        let (evs, agent_wall, agent_cpu, tpm_cpu) = measure_agent(&self.pids, || self.evidence(nonces))?;
        let (verified, verifier_wall, verifier_cpu) = measure(|| self.verify(nonces, &evs))?;
        Ok((RoundCost { agent_wall, agent_cpu, tpm_cpu, verifier_wall, verifier_cpu }, verified))
    }

    /// Every VM agent's side, one after the other.
    fn evidence(&self, nonces: &[Vec<u8>]) -> anyhow::Result<Vec<Evidence>> {
        self.vtpms
            .iter()
            .zip(nonces)
            .enumerate()
            .map(|(i, (v, nonce))| {
                let mut tpm = Tpm::open(&v.swtpm.tcti())?;
                let quote = tpm.quote(&v.ak, nonce, &self.sel).with_context(|| format!("vTPM {i} quote"))?;
                drop(tpm);
                let pcrs = encode_pcr_blob(&quote.pcrs);
                Ok(Evidence { attest: quote.attest, signature: quote.signature, pcrs })
            })
            .collect()
    }

    /// The verifier's side: each quote on its own.
    fn verify(&mut self, nonces: &[Vec<u8>], evs: &[Evidence]) -> anyhow::Result<u32> {
        let mut verified = 0u32;
        for (i, ((v, ev), nonce)) in self.vtpms.iter().zip(evs).zip(nonces).enumerate() {
            let parts = QuoteParts { message: &ev.attest, signature: &ev.signature, pcrs: &ev.pcrs };
            let previous = self.previous.get(i).copied().flatten();
            let expected =
                Expected { nonce, hash: Some(HashAlg::Sha256), previous_clock: previous, require_safe: false };
            let quote = verify_quote(&v.key, parts, expected)
                .map_err(|f| anyhow::anyhow!("vTPM {i} quote refused ({}): {f}", f.check()))?;
            if let Some(p) = self.previous.get_mut(i) {
                *p = Some(quote.clock());
            }
            verified += 1;
        }
        Ok(verified)
    }
}
