//! The hypervisor measurement list the agent keeps, serves and extends into its PCR.
//!
//! Appending is write-ahead: new lines go to `<state_dir>/hvm/list` first, then their hashes are
//! extended into the PCR (one TPM job for the batch, through the agent's single TPM owner), then
//! they join the served list. A crash between the two steps leaves lines on disk that the PCR does
//! not hold; at start the agent reads the PCR and keeps the longest prefix of the saved list that
//! replays to it (after a reboot the PCR is zero: the empty prefix, a fresh list). When no prefix
//! replays to the PCR, something else extended it: the agent starts an empty list and says so,
//! and the verifier will fail the host — the honest outcome, since the PCR no longer tells a
//! story anyone can check.
//!
//! The served list and the PCR move under one lock, and a list request takes it too, so a list
//! fetched after a quote always covers the quote (it may run ahead; the verifier finds the prefix).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_core::hvm::{parse, Measurement, Rendered, ReplayState, Replayer};
use cairn_core::pcr::{BankSelection, PcrIndex, PcrSelection};
use cairn_core::{Digest, HashAlg};
use cairn_proto::agent::HvmListResponse;
use tokio::sync::Mutex;

use crate::error::AgentError;
use crate::tpm_owner::TpmOwner;

/// What identifies a mapping across rounds: a repeat with the same digests is not logged again.
type Key = (u32, u64, u64, u64, Vec<u8>);
type Seen = (Digest, Digest, Digest);

#[derive(Debug, Default)]
struct Inner {
    text: String,
    /// Byte offset of each line in `text`.
    starts: Vec<usize>,
    last: HashMap<Key, Seen>,
}

impl Inner {
    fn push(&mut self, line: &str, key: Key, seen: Seen) {
        self.starts.push(self.text.len());
        self.text.push_str(line);
        self.last.insert(key, seen);
    }
}

fn key(m: &Measurement) -> Key {
    (m.pid.get(), m.range.start(), m.range.end(), m.offset, m.file.clone())
}

/// The list, its file and its PCR.
#[derive(Debug)]
pub struct HvmStore {
    pcr: PcrIndex,
    banks: Vec<HashAlg>,
    file: PathBuf,
    inner: Mutex<Inner>,
}

impl HvmStore {
    /// Opens (or starts) the list under `state_dir`, reconciled with the PCR's value in `banks[0]`.
    pub async fn open(state_dir: &Path, pcr: PcrIndex, banks: Vec<HashAlg>, tpm: &TpmOwner) -> Result<HvmStore, AgentError> {
        let dir = state_dir.join("hvm");
        std::fs::create_dir_all(&dir).map_err(AgentError::io(&dir))?;
        let file = dir.join("list");
        let saved = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(AgentError::Io { path: file, source: e }),
        };
        let bank = banks.first().copied().unwrap_or(HashAlg::Sha256);
        let sel = PcrSelection::new(vec![BankSelection { alg: bank, mask: pcr.bit() }])
            .map_err(|source| AgentError::Parse { what: "PCR selection", source })?;
        let values = tpm.run(move |t| Ok(t.pcr_read(&sel)?)).await?;
        let quoted = values.get(bank, pcr).copied().unwrap_or_else(|| bank.zero());
        let mut state = ReplayState::new(bank);
        let kept = match Replayer::new(pcr).replay_to_quote(&mut state, &saved, &quoted) {
            Ok(m) => m.matched.map(|s| s.next_entry()),
            Err(e) => {
                tracing::warn!("saved hvm list {}: {e}", file.display());
                None
            }
        };
        let mut inner = Inner::default();
        match kept {
            Some(n) => {
                let entries = parse(&saved).unwrap_or_default();
                for e in entries.iter().take(usize::try_from(n).unwrap_or(usize::MAX)) {
                    let line = format!("{} {} {}\n", e.pcr, e.entry_hash.to_hex(), String::from_utf8_lossy(e.canonical()));
                    let k = (e.pid.get(), e.range.start(), e.range.end(), e.offset, e.file.to_bytes());
                    inner.push(&line, k, (e.mem, e.disk, e.file_digest));
                }
                if n > 0 {
                    tracing::info!("hvm list: {n} saved entries match PCR {pcr}; continuing it");
                }
            }
            None => tracing::error!(
                "PCR {pcr} ({bank}) holds {quoted}, which no prefix of the saved hvm list explains: something else \
                 extends this PCR, so verifiers will fail this host until it reboots (choose another hvm_pcr)"
            ),
        }
        std::fs::write(&file, inner.text.as_bytes()).map_err(AgentError::io(&file))?;
        Ok(HvmStore { pcr, banks, file, inner: Mutex::new(inner) })
    }

    /// The PCR.
    pub fn pcr(&self) -> PcrIndex {
        self.pcr
    }

    /// Logs and extends the measurements that are new or changed since last seen; returns how many.
    pub async fn append(&self, tpm: &TpmOwner, ms: &[Measurement]) -> Result<usize, AgentError> {
        let mut inner = self.inner.lock().await;
        let mut fresh: Vec<(Key, Seen, Rendered, Vec<Digest>)> = Vec::new();
        let mut batch_keys = HashSet::new();
        for m in ms {
            let seen = (m.mem, m.disk, m.file_digest);
            let k = key(m);
            if inner.last.get(&k) != Some(&seen) && batch_keys.insert(k.clone()) {
                let r = m.render(self.pcr);
                let digests: Vec<Digest> = self.banks.iter().map(|a| r.extend_digest(*a)).collect();
                fresh.push((k, seen, r, digests));
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        // Write ahead: the file may run ahead of the PCR, never behind (see the module docs).
        let before = inner.text.len() as u64;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.file).map_err(AgentError::io(&self.file))?;
        let batch: String = fresh.iter().map(|(_, _, r, _)| r.line.as_str()).collect();
        f.write_all(batch.as_bytes()).and_then(|()| f.sync_data()).map_err(AgentError::io(&self.file))?;
        let pcr = self.pcr;
        let all: Vec<Vec<Digest>> = fresh.iter().map(|(_, _, _, d)| d.clone()).collect();
        let (done, failed) = tpm
            .run(move |t| {
                for (i, d) in all.iter().enumerate() {
                    if let Err(e) = t.pcr_extend(pcr, d) {
                        return Ok((i, Some(e)));
                    }
                }
                Ok((all.len(), None))
            })
            .await?;
        for (k, seen, r, _) in fresh.iter().take(done) {
            inner.push(&r.line, k.clone(), *seen);
        }
        if let Some(e) = failed {
            // Lines not extended leave the file; the next round logs them again.
            let keep = before + fresh.iter().take(done).map(|(_, _, r, _)| r.line.len() as u64).sum::<u64>();
            let _ = f.set_len(keep);
            return Err(AgentError::Tpm(e));
        }
        Ok(done)
    }

    /// The list from entry `from` on (all of it, from 0, when `from` is past the end).
    pub async fn from(&self, from: u64) -> HvmListResponse {
        let inner = self.inner.lock().await;
        let total = inner.starts.len() as u64;
        let from = if from > total { 0 } else { from };
        let start = usize::try_from(from).ok().and_then(|i| inner.starts.get(i).copied()).unwrap_or(inner.text.len());
        HvmListResponse {
            pcr: self.pcr.get(),
            banks: self.banks.iter().map(|a| a.name().to_owned()).collect(),
            from,
            total,
            list: inner.text.get(start..).unwrap_or_default().to_owned(),
        }
    }
}
