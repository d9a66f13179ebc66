//! The TPMs of the benchmark: swtpm processes, each with a persisted AK and the verifier's prepared
//! key for it. Started before any round is timed; stopped (killed by PID) when dropped.

use std::path::Path;

use anyhow::Context;
use cairn_core::crypto::VerifyingKey;
use cairn_core::tpm::Public;
use cairn_tpm::swtpm::{Swtpm, SwtpmOptions};
use cairn_tpm::{Ak, AkAlg, AkSpec, EkKind, Tpm};

/// One running TPM and its AK.
pub struct Attester {
    /// The swtpm process (stopped on drop).
    pub swtpm: Swtpm,
    /// Its AK.
    pub ak: Ak,
    /// The verifier's key for that AK, prepared once.
    pub key: VerifyingKey,
}

impl Attester {
    /// Starts swtpm in `dir` (a fresh TPM; no EK certificate is needed to quote) and creates an AK
    /// of `alg` under its low-range ECC EK (a TPM makes that EK far faster than an RSA one).
    pub fn start(dir: &Path, alg: AkAlg) -> anyhow::Result<Attester> {
        let swtpm = Swtpm::start(dir, SwtpmOptions::default())
            .with_context(|| format!("cannot start swtpm in {} (is swtpm installed?)", dir.display()))?;
        let spec = AkSpec { ek: EkKind::EccP256, ..AkSpec::new(alg) };
        let ak = Tpm::open(&swtpm.tcti())
            .and_then(|mut tpm| tpm.load_or_create_ak(spec))
            .with_context(|| format!("cannot create {spec} on the swtpm in {}", dir.display()))?;
        let key = VerifyingKey::from_public(&Public::parse_tpm2b(&ak.public)?);
        Ok(Attester { swtpm, ak, key })
    }

    /// The swtpm process id.
    pub fn pid(&self) -> u32 {
        self.swtpm.pid()
    }
}

/// Starts `n` attesters in `dir/<prefix>-<i>`, on `threads` threads; in index order.
pub fn start_many(dir: &Path, prefix: &str, n: usize, alg: AkAlg, threads: usize) -> anyhow::Result<Vec<Attester>> {
    let threads = threads.clamp(1, n.max(1));
    let mut slots: Vec<Option<anyhow::Result<Attester>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let chunk = n.div_ceil(threads).max(1);
        for (c, part) in slots.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (j, slot) in part.iter_mut().enumerate() {
                    let i = c * chunk + j;
                    *slot = Some(Attester::start(&dir.join(format!("{prefix}-{i}")), alg));
                }
            });
        }
    });
    slots.into_iter().map(|s| s.unwrap_or_else(|| Err(anyhow::anyhow!("an attester was not started")))).collect()
}
