//! Building a reference state from a known-good log (`cairn policy create measured-boot`).
//!
//! The result accepts exactly the boot it was made from: S-CRTM and PCR 0 firmware digests, the
//! measured PK/KEK/db/dbx contents, MokList digests, the boot applications in PCR 4 (shim, grub,
//! kernel), the PCR 9 initrd (and vmlinuz without Secure Boot) and the command line, escaped so
//! that it matches only itself. Operators widen it by hand.

use thiserror::Error;

use crate::eventlog::{Event, EventLog};

use super::facts::{sha256, BootFacts};
use super::refstate::{DigestRef, Hex, KernelRef, RefState, ScrtmAndBios, SignatureRef};
use super::MbFailure;

/// Why a reference state cannot be made from a log.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The log has no SHA-256 digests.
    #[error("the log has no sha256 digests")]
    NoSha256Bank,
    /// The SecureBoot variable is not measured exactly once.
    #[error("SecureBoot is measured {0} times, expected once")]
    SecureBootState(usize),
    /// Fewer than two boot applications in PCR 4.
    #[error("{0} boot applications in PCR 4; at least shim and a boot loader are needed")]
    BootApplications(usize),
    /// Some event data cannot be trusted or decoded.
    #[error("{0}")]
    Event(MbFailure),
}

fn digest_ref(ev: &Event<'_>) -> Result<DigestRef, GenerateError> {
    let d = sha256(ev).ok_or(GenerateError::NoSha256Bank)?;
    Ok(DigestRef::from([("sha256".to_string(), Hex(d.as_bytes().to_vec()))]))
}

fn hex256(ev: &Event<'_>) -> Result<Hex, GenerateError> {
    sha256(ev).map(|d| Hex(d.as_bytes().to_vec())).ok_or(GenerateError::NoSha256Bank)
}

/// A reference state accepting the boot recorded in `log`.
pub fn generate(log: &EventLog<'_>) -> Result<RefState, GenerateError> {
    if !log.banks().contains(&crate::alg::HashAlg::Sha256) {
        return Err(GenerateError::NoSha256Bank);
    }
    let facts = BootFacts::gather(log);
    if let Some(p) = facts.problems.first() {
        return Err(GenerateError::Event(p.clone()));
    }
    let has_secureboot = match facts.secure_boot.as_slice() {
        [(_, on)] => *on,
        other => return Err(GenerateError::SecureBootState(other.len())),
    };
    let scrtm = facts.scrtm.first().map(|e| digest_ref(e)).transpose()?;
    let platform_firmware = facts.firmware.iter().map(|e| digest_ref(e)).collect::<Result<_, _>>()?;
    let mut keys: [Vec<SignatureRef>; 4] = Default::default();
    for (slot, vars) in facts.keys.iter().enumerate() {
        if let (Some(var), Some(out)) = (vars.last(), keys.get_mut(slot)) {
            *out = var.entries.iter().map(|e| SignatureRef { owner: e.owner, data: Hex(e.data.to_vec()) }).collect();
        }
    }
    let [pk, kek, db, dbx] = keys;
    let apps = &facts.boot_apps;
    let (Some(shim), Some(grub)) = (apps.first(), apps.get(1)) else {
        return Err(GenerateError::BootApplications(apps.len()));
    };
    let kernel = KernelRef {
        shim_authcode_sha256: hex256(shim)?,
        grub_authcode_sha256: hex256(grub)?,
        kernel_authcode_sha256: if has_secureboot { apps.get(2).map(|e| hex256(e)).transpose()? } else { None },
        initrd_plain_sha256: facts.initrds.first().map(|e| hex256(e)).transpose()?,
        vmlinuz_plain_sha256: if has_secureboot { None } else { facts.vmlinuz.first().map(|e| hex256(e)).transpose()? },
        kernel_cmdline: facts.cmdlines.first().map_or_else(|| ".*".to_string(), |(_, c)| regex::escape(c)),
    };
    Ok(RefState {
        has_secureboot,
        scrtm_and_bios: vec![ScrtmAndBios { scrtm, platform_firmware }],
        pk,
        kek,
        db,
        dbx,
        mokdig: facts.mok.iter().map(|e| digest_ref(e)).collect::<Result<_, _>>()?,
        mokxdig: facts.mokx.iter().map(|e| digest_ref(e)).collect::<Result<_, _>>()?,
        kernels: vec![kernel],
    })
}
