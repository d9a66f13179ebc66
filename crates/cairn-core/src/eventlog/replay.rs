//! Replaying a log into the PCR values a TPM would hold, and IMA's boot_aggregate from them.
//!
//! Every bank the header announces (and Cairn can hash) is replayed, even one no record carries a
//! digest for. EV_NO_ACTION records are never extended; an EV_NO_ACTION "StartupLocality" record
//! sets PCR 0's starting value to `00…0L` (L = the locality, 3 or 4) — honoured only before PCR 0
//! is first extended, because a TPM starts once. A record that omits a bank's digest leaves that
//! bank alone, as a TPM would for a PCR_Extend without that algorithm.

use crate::alg::{Digest, HashAlg, Hasher};
use crate::error::ParseError;
use crate::pcr::{BankSelection, PcrIndex, PcrSelection, PcrValues, PCR_COUNT};

use super::EventLog;

/// Data of the EV_NO_ACTION record that announces a locality-3/4 TPM start.
pub const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";

/// Final values of one bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    alg: HashAlg,
    values: [Digest; PCR_COUNT as usize],
    touched: u32,
}

impl PcrBank {
    fn new(alg: HashAlg) -> Self {
        PcrBank { alg, values: [alg.zero(); PCR_COUNT as usize], touched: 0 }
    }
    /// The bank's hash.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }
    /// The value of `pcr` (zero when the log never touched it).
    pub fn value(&self, pcr: PcrIndex) -> Digest {
        self.values.get(usize::from(pcr.get())).copied().unwrap_or(self.alg.zero())
    }
    /// Mask of the PCRs the log extended or initialised (bit n = PCR n).
    pub fn touched(&self) -> u32 {
        self.touched
    }
    /// (PCR, value) for every touched PCR, ascending.
    pub fn iter_touched(&self) -> impl Iterator<Item = (PcrIndex, Digest)> + '_ {
        (0..PCR_COUNT).filter_map(PcrIndex::new).filter(|p| self.touched & p.bit() != 0).map(|p| (p, self.value(p)))
    }
}

/// The replayed banks, in header order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayedPcrs {
    banks: Vec<PcrBank>,
}

/// Which PCRs IMA's boot_aggregate covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootAggregate {
    /// PCRs 0–7: every TPM 1.2 kernel and TPM 2.0 kernels before 5.8.
    Pcrs0To7,
    /// PCRs 0–9: TPM 2.0 kernels from 5.8 on.
    Pcrs0To9,
}

impl ReplayedPcrs {
    /// The banks.
    pub fn banks(&self) -> &[PcrBank] {
        &self.banks
    }

    /// One bank.
    pub fn bank(&self, alg: HashAlg) -> Option<&PcrBank> {
        self.banks.iter().find(|b| b.alg == alg)
    }

    /// Values of the PCRs in `mask` of bank `alg`, as [`PcrValues`] for policies and quote checks.
    pub fn pcr_values(&self, alg: HashAlg, mask: u32) -> Option<PcrValues> {
        let bank = self.bank(alg)?;
        let sel = PcrSelection::new(vec![BankSelection { alg, mask }]).ok()?;
        let values = sel.iter().map(|(_, p)| bank.value(p)).collect();
        PcrValues::new(sel, values).ok()
    }

    /// IMA's boot_aggregate: H_alg over PCRs 0–7 (or 0–9) of the same bank, as the kernel reads
    /// them from the TPM (untouched PCRs are zero).
    pub fn boot_aggregate(&self, alg: HashAlg, form: BootAggregate) -> Option<Digest> {
        let bank = self.bank(alg)?;
        let n = match form {
            BootAggregate::Pcrs0To7 => 8,
            BootAggregate::Pcrs0To9 => 10,
        };
        let mut h = Hasher::new(alg);
        for v in bank.values.iter().take(n) {
            h.update(v.as_bytes());
        }
        Some(h.finish())
    }
}

/// Replays `log` (see the module documentation for the rules).
pub fn replay(log: &EventLog<'_>) -> ReplayedPcrs {
    let mut banks: Vec<PcrBank> = log.banks().into_iter().map(PcrBank::new).collect();
    for ev in log.events() {
        if !ev.is_measured() {
            if let Some(locality) = startup_locality(ev.data()) {
                for b in banks.iter_mut().filter(|b| b.touched & 1 == 0) {
                    if let (Ok(d), Some(v)) = (locality_start(b.alg, locality), b.values.get_mut(0)) {
                        *v = d;
                        b.touched |= 1;
                    }
                }
            }
            continue;
        }
        let Some(pcr) = ev.pcr() else { continue };
        let i = usize::from(pcr.get());
        for b in banks.iter_mut() {
            if let (Some(d), Some(slot)) = (ev.digest(b.alg), b.values.get_mut(i)) {
                *slot = b.alg.extend(slot, d.as_bytes());
                b.touched |= pcr.bit();
            }
        }
    }
    ReplayedPcrs { banks }
}

/// The locality of a "StartupLocality" EV_NO_ACTION record's data.
pub fn startup_locality(data: &[u8]) -> Option<u8> {
    data.strip_prefix(STARTUP_LOCALITY.as_slice()).and_then(|rest| rest.first().copied())
}

fn locality_start(alg: HashAlg, locality: u8) -> Result<Digest, ParseError> {
    let mut b = [0u8; crate::alg::MAX_DIGEST_LEN];
    let n = alg.len();
    if let Some(last) = b.get_mut(n - 1) {
        *last = locality;
    }
    Digest::from_bytes(alg, b.get(..n).unwrap_or(&[]))
}
