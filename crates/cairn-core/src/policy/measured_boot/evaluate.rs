//! Judging a log against a reference state (rules in the parent module's documentation).

use regex::Regex;

use crate::alg::HashAlg;
use crate::error::ParseError;
use crate::eventlog::{Event, EventLog};

use super::facts::{sha256, BootFacts, KeyDb};
use super::refstate::{DigestRef, Hex, KernelRef, RefState, SignatureRef};
use super::MbFailure;

/// A reference state ready to judge logs: patterns compiled, digests checked, parsed once.
#[derive(Clone, Debug)]
pub struct MeasuredBootPolicy {
    refstate: RefState,
    cmdlines: Vec<Regex>,
}

fn digest_matches(r: &DigestRef, ev: &Event<'_>) -> bool {
    let mut shared = 0;
    for (name, hex) in r {
        if let Some(d) = HashAlg::from_name(name).and_then(|a| ev.digest(a)) {
            if d.as_bytes() != hex.0.as_slice() {
                return false;
            }
            shared += 1;
        }
    }
    shared > 0
}

fn hex_of(ev: &Event<'_>) -> String {
    sha256(ev).map_or_else(|| "(no sha256)".to_string(), |d| d.to_hex())
}

fn indexed(evs: &[&Event<'_>]) -> Vec<(usize, String)> {
    evs.iter().map(|e| (e.index(), hex_of(e))).collect()
}

fn sha256_is(ev: &Event<'_>, want: &Hex) -> bool {
    sha256(ev).is_some_and(|d| d.as_bytes() == want.0.as_slice())
}

fn check_sha256(field: &str, h: &Hex) -> Result<(), ParseError> {
    if h.0.len() == 32 {
        Ok(())
    } else {
        Err(ParseError::text("measured-boot reference state", format!("{field} is {} bytes, not a sha256", h.0.len())))
    }
}

impl MeasuredBootPolicy {
    /// Prepares `refstate`: compiles each command-line pattern (anchored to the whole line) and
    /// checks that the kernels' digests are SHA-256 sized.
    pub fn new(refstate: RefState) -> Result<Self, ParseError> {
        let mut cmdlines = Vec::with_capacity(refstate.kernels.len());
        for k in &refstate.kernels {
            check_sha256("shim_authcode_sha256", &k.shim_authcode_sha256)?;
            check_sha256("grub_authcode_sha256", &k.grub_authcode_sha256)?;
            for h in [&k.kernel_authcode_sha256, &k.initrd_plain_sha256, &k.vmlinuz_plain_sha256].into_iter().flatten() {
                check_sha256("kernel digest", h)?;
            }
            let re = Regex::new(&format!("^(?:{})$", k.kernel_cmdline))
                .map_err(|e| ParseError::text("measured-boot kernel_cmdline", e.to_string()))?;
            cmdlines.push(re);
        }
        Ok(MeasuredBootPolicy { refstate, cmdlines })
    }

    /// Parses and prepares a reference state from JSON text.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        Self::new(RefState::from_json(text)?)
    }

    /// The reference state.
    pub fn refstate(&self) -> &RefState {
        &self.refstate
    }

    /// Judges `log`; every failure is reported.
    pub fn evaluate(&self, log: &EventLog<'_>) -> Result<(), Vec<MbFailure>> {
        if !log.banks().contains(&HashAlg::Sha256) {
            return Err(vec![MbFailure::NoSha256Bank]);
        }
        let facts = BootFacts::gather(log);
        let mut out = facts.problems.clone();
        self.secure_boot(&facts, &mut out);
        self.scrtm_and_bios(&facts, &mut out);
        for (slot, db) in KeyDb::ALL.into_iter().enumerate() {
            self.keys(db, facts.keys.get(slot).map_or(&[][..], |v| v.as_slice()), &mut out);
        }
        self.kernels(&facts, &mut out);
        for (list, evs, allowed) in
            [("MokList", &facts.mok, &self.refstate.mokdig), ("MokListX", &facts.mokx, &self.refstate.mokxdig)]
        {
            for ev in evs {
                if !allowed.iter().any(|r| digest_matches(r, ev)) {
                    out.push(MbFailure::Mok { list, index: ev.index(), actual: hex_of(ev) });
                }
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }

    fn secure_boot(&self, facts: &BootFacts<'_>, out: &mut Vec<MbFailure>) {
        let expected = self.refstate.has_secureboot;
        match facts.secure_boot.as_slice() {
            [(_, actual)] if *actual == expected => {}
            [(index, actual)] => out.push(MbFailure::SecureBoot { index: Some(*index), expected, actual: Some(*actual) }),
            many => out.push(MbFailure::SecureBoot { index: many.first().map(|m| m.0), expected, actual: None }),
        }
    }

    fn scrtm_and_bios(&self, facts: &BootFacts<'_>, out: &mut Vec<MbFailure>) {
        let ok = self.refstate.scrtm_and_bios.iter().any(|a| {
            let scrtm_ok = match (&a.scrtm, facts.scrtm.as_slice()) {
                (None, []) => true,
                (Some(r), [ev]) => digest_matches(r, ev),
                _ => false,
            };
            scrtm_ok
                && a.platform_firmware.len() == facts.firmware.len()
                && a.platform_firmware.iter().zip(&facts.firmware).all(|(r, ev)| digest_matches(r, ev))
        });
        if !ok {
            out.push(MbFailure::ScrtmAndBios { scrtm: indexed(&facts.scrtm), firmware: indexed(&facts.firmware) });
        }
    }

    fn keys(&self, db: KeyDb, measured: &[super::facts::KeyVar<'_>], out: &mut Vec<MbFailure>) {
        let allowed: &[SignatureRef] = match db {
            KeyDb::Pk => &self.refstate.pk,
            KeyDb::Kek => &self.refstate.kek,
            KeyDb::Db => &self.refstate.db,
            KeyDb::Dbx => &self.refstate.dbx,
        };
        if !self.refstate.has_secureboot && allowed.is_empty() {
            return;
        }
        let [var] = measured else {
            out.push(MbFailure::KeyDbCount { var: db.name(), indexes: measured.iter().map(|m| m.index).collect() });
            return;
        };
        let data_sha = |d: &[u8]| HashAlg::Sha256.hash(d).to_hex();
        if db == KeyDb::Dbx {
            for req in allowed {
                if !var.entries.iter().any(|e| e.owner == req.owner && e.data == req.data.0.as_slice()) {
                    out.push(MbFailure::DbxEntryMissing { index: var.index, owner: req.owner.to_string(), data_sha256: data_sha(&req.data.0) });
                }
            }
        } else {
            for e in &var.entries {
                if !allowed.iter().any(|a| a.owner == e.owner && a.data.0.as_slice() == e.data) {
                    out.push(MbFailure::KeyNotAllowed {
                        var: db.name(),
                        index: var.index,
                        owner: e.owner.to_string(),
                        data_sha256: data_sha(e.data),
                    });
                }
            }
        }
    }

    fn kernels(&self, facts: &BootFacts<'_>, out: &mut Vec<MbFailure>) {
        let mut best: Option<Vec<MbFailure>> = None;
        for (k, re) in self.refstate.kernels.iter().zip(&self.cmdlines) {
            let f = self.kernel_failures(k, re, facts);
            if f.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| f.len() < b.len()) {
                best = Some(f);
            }
        }
        out.extend(best.unwrap_or_else(|| {
            vec![MbFailure::BootChain { actual: indexed(&facts.boot_apps), expected: vec!["(no kernels entry)".into()] }]
        }));
    }

    fn kernel_failures(&self, k: &KernelRef, re: &Regex, facts: &BootFacts<'_>) -> Vec<MbFailure> {
        let sb = self.refstate.has_secureboot;
        let mut f = Vec::new();
        let mut expected = vec![&k.shim_authcode_sha256, &k.grub_authcode_sha256];
        if let (true, Some(kernel)) = (sb, &k.kernel_authcode_sha256) {
            expected.push(kernel);
        }
        let apps = &facts.boot_apps;
        let same = |exp: &[&Hex]| exp.len() == apps.len() && exp.iter().zip(apps).all(|(h, ev)| sha256_is(ev, h));
        let mut twice = expected.clone();
        if let (true, Some(kernel)) = (sb, &k.kernel_authcode_sha256) {
            twice.push(kernel);
        }
        let kernel_twice = twice.len() > expected.len() && same(&twice);
        if !same(&expected) && !kernel_twice {
            f.push(MbFailure::BootChain { actual: indexed(apps), expected: expected.iter().map(|h| h.to_string()).collect() });
        }
        for (index, line) in &facts.cmdlines {
            if !re.is_match(line) {
                f.push(MbFailure::KernelCmdline { index: *index, actual: line.clone(), pattern: k.kernel_cmdline.clone() });
            }
        }
        let plain: [(&'static str, &[&Event<'_>], Option<&Hex>, bool); 2] = [
            ("initrd", &facts.initrds, k.initrd_plain_sha256.as_ref(), true),
            ("vmlinuz", &facts.vmlinuz, k.vmlinuz_plain_sha256.as_ref(), !sb),
        ];
        for (what, evs, want, judged) in plain {
            for ev in evs.iter().filter(|_| judged) {
                if !want.is_some_and(|w| sha256_is(ev, w)) {
                    let expected = want.map_or_else(|| "(none in the reference state)".to_string(), |w| w.to_string());
                    f.push(MbFailure::PlainDigest { what, index: ev.index(), actual: hex_of(ev), expected });
                }
            }
        }
        f
    }
}
