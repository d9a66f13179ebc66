//! Host mode: hypervisor dynamic measurement.
//!
//! Every `interval`, the agent finds the processes its selectors match (by default `qemu-system-*`,
//! `swtpm`, `libvirtd`) and itself, and measures each executable, file-backed mapping: the code read
//! from `/proc/PID/mem` against the same range of the mapped file ([`measure`]). New or changed
//! results are appended to the hypervisor measurement list (format: `cairn_core::hvm`) and extended
//! into the hvm PCR through the agent's single TPM owner ([`store`]); unchanged repeats are not.
//! The list is served at `GET /cairn/v1/hvm?from=N` on the agent's mTLS API.
//!
//! # Which PCR
//!
//! No PCR is free on every machine. PCRs 16–23 can be reset by software (16 is reset on every quote
//! to bind the node key; 23 is the application PCR), so a root attacker could reset one and replay
//! a clean list into it. PCRs 0–15 cannot be reset, but firmware uses 0–7, grub 8–9, IMA 10, shim
//! 14 (MOK lists), and systemd-stub on unified kernel image (UKI) boots 11–13 and 15; Keylime
//! quotes 0–9 and 11–15 under a measured-boot policy. The default is **13**: not resettable, and
//! touched only by systemd-stub when a UKI boot loads system extensions — then the UEFI log
//! records it and the measured-boot check compares it. On such hosts pick another (`hvm_pcr`;
//! 15 when systemd does not measure into it, or 23 accepting that software can reset it). The
//! agent reads the PCR at start: a value its saved list does not explain is logged as an error.
//!
//! # Banks
//!
//! Each entry extends SHA-256 (with the logged entry hash) and, when different, the AK's quote bank
//! (with that bank's hash of the entry's canonical bytes), so the verifier replays the bank it is
//! quoted.

pub mod glob;
pub mod measure;
pub mod procs;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::pcr::PcrIndex;
use cairn_core::HashAlg;
use tokio::task::JoinHandle;

pub use glob::Selector;
pub use measure::{Measurer, Stats};
pub use store::HvmStore;

use crate::tpm_owner::TpmOwner;

/// The default hvm PCR (see the module docs).
pub const DEFAULT_PCR: u8 = 13;
/// The default measurement interval.
pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
/// The default selectors (the agent itself is always measured).
pub const DEFAULT_SELECTORS: [&str; 3] = ["qemu-system-*", "swtpm", "libvirtd"];

/// Host-mode settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmConfig {
    /// The PCR extended.
    pub pcr: PcrIndex,
    /// Time between measurement rounds.
    pub interval: Duration,
    /// Which executables to measure.
    pub selectors: Vec<Selector>,
    /// Where `/proc` is.
    pub proc_root: PathBuf,
}

/// The banks entries extend: SHA-256, and the quote bank when different.
pub fn banks(quote_bank: HashAlg) -> Vec<HashAlg> {
    let mut b = vec![HashAlg::Sha256];
    if quote_bank != HashAlg::Sha256 {
        b.push(quote_bank);
    }
    b
}

/// One round: measures every selected process (and the agent) and returns the measurements.
pub fn measure_round(config: &HvmConfig, measurer: &mut Measurer) -> Vec<cairn_core::hvm::Measurement> {
    let me = std::process::id();
    let mut out = Vec::new();
    for p in procs::select(&config.proc_root, &config.selectors, Some(me)) {
        out.extend(measurer.measure(&p));
    }
    measurer.end_round();
    out
}

/// Starts the periodic measurement; the task runs until aborted.
pub fn spawn(config: HvmConfig, store: Arc<HvmStore>, tpm: TpmOwner) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut measurer = Some(Measurer::new(&config.proc_root, HashAlg::Sha256));
        loop {
            let started = Instant::now();
            let (Some(m), c) = (measurer.take(), config.clone()) else { return };
            let joined = tokio::task::spawn_blocking(move || {
                let mut m = m;
                let ms = measure_round(&c, &mut m);
                let stats = m.take_stats();
                (m, ms, stats)
            })
            .await;
            let Ok((m, ms, stats)) = joined else {
                tracing::error!("hvm measurement task failed");
                return;
            };
            measurer = Some(m);
            let measured = started.elapsed();
            match store.append(&tpm, &ms).await {
                Ok(n) => tracing::debug!(
                    processes = stats.processes,
                    mappings = stats.mappings,
                    mem_bytes = stats.mem_bytes,
                    file_bytes = stats.file_bytes,
                    skipped = stats.skipped,
                    new_entries = n,
                    micros = measured.as_micros() as u64,
                    "hvm round"
                ),
                Err(e) => tracing::error!("hvm: extending PCR {} failed: {e}", store.pcr()),
            }
            tokio::time::sleep(config.interval.saturating_sub(started.elapsed())).await;
        }
    })
}
