//! What a measured-boot policy reads from a log, gathered in one pass.
//!
//! Only data the PCRs vouch for is used. Digests are taken as they are (they are what the quote
//! covers). Event *data* is believed only when the record's SHA-256 digest is the hash of that
//! data as the measuring component computes it: the whole `UEFI_VARIABLE_DATA` for
//! EV_EFI_VARIABLE_DRIVER_CONFIG (the SecureBoot flag, PK/KEK/db/dbx), the command line after
//! "kernel_cmdline: " for grub's PCR 8 records, the UTF-16 data itself for systemd-boot's PCR 12
//! records. Data that does not hash to its digest is a failure ([`MbFailure::DataNotMeasured`]),
//! so a log cannot claim keys or a command line other than the ones measured.

use crate::alg::{Digest, HashAlg};
use crate::eventlog::text::EventText;
use crate::eventlog::uefi::{signature_lists, SignatureData};
use crate::eventlog::{EfiGuid, Event, EventData, EventLog, EventType};

use super::MbFailure;

/// The four Secure Boot key databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDb {
    /// PK.
    Pk,
    /// KEK.
    Kek,
    /// db.
    Db,
    /// dbx.
    Dbx,
}

impl KeyDb {
    /// All four, in policy order.
    pub const ALL: [KeyDb; 4] = [KeyDb::Pk, KeyDb::Kek, KeyDb::Db, KeyDb::Dbx];

    /// Variable name.
    pub fn name(self) -> &'static str {
        match self {
            KeyDb::Pk => "PK",
            KeyDb::Kek => "KEK",
            KeyDb::Db => "db",
            KeyDb::Dbx => "dbx",
        }
    }

    fn vendor(self) -> EfiGuid {
        match self {
            KeyDb::Pk | KeyDb::Kek => EfiGuid::GLOBAL_VARIABLE,
            KeyDb::Db | KeyDb::Dbx => EfiGuid::IMAGE_SECURITY_DATABASE,
        }
    }
}

/// One measurement of a key database: record index and its entries.
#[derive(Clone, Debug)]
pub struct KeyVar<'a> {
    /// Record index.
    pub index: usize,
    /// Entries of its EFI_SIGNATURE_LISTs.
    pub entries: Vec<SignatureData<'a>>,
}

/// Facts of one log.
#[derive(Clone, Debug, Default)]
pub struct BootFacts<'a> {
    /// PCR 0 EV_S_CRTM_VERSION records.
    pub scrtm: Vec<&'a Event<'a>>,
    /// PCR 0 EV_EFI_PLATFORM_FIRMWARE_BLOB(2) records.
    pub firmware: Vec<&'a Event<'a>>,
    /// (record index, enabled) of each SecureBoot measurement.
    pub secure_boot: Vec<(usize, bool)>,
    /// Key database measurements, by [`KeyDb::ALL`] position.
    pub keys: [Vec<KeyVar<'a>>; 4],
    /// PCR 4 boot applications, firmware-volume applications left out.
    pub boot_apps: Vec<&'a Event<'a>>,
    /// (record index, command line) from PCR 8 grub and PCR 12 systemd-boot records.
    pub cmdlines: Vec<(usize, String)>,
    /// PCR 9 EV_IPL records naming an initrd / initramfs.
    pub initrds: Vec<&'a Event<'a>>,
    /// PCR 9 EV_IPL records naming a vmlinuz.
    pub vmlinuz: Vec<&'a Event<'a>>,
    /// PCR 14 EV_IPL "MokList" records.
    pub mok: Vec<&'a Event<'a>>,
    /// PCR 14 EV_IPL "MokListX" records.
    pub mokx: Vec<&'a Event<'a>>,
    /// Records whose data could not be used.
    pub problems: Vec<MbFailure>,
}

/// SHA-256 digest of a record (the bank measured-boot policies judge).
pub fn sha256(ev: &Event<'_>) -> Option<Digest> {
    ev.digest(HashAlg::Sha256).copied()
}

fn bound(ev: &Event<'_>, measured: &[u8], what: &'static str, problems: &mut Vec<MbFailure>) -> bool {
    match ev.digest(HashAlg::Sha256) {
        Some(d) if *d == HashAlg::Sha256.hash(measured) => true,
        _ => {
            problems.push(MbFailure::DataNotMeasured { index: ev.index(), what });
            false
        }
    }
}

impl<'a> BootFacts<'a> {
    /// Gathers the facts of `log`.
    pub fn gather(log: &'a EventLog<'a>) -> BootFacts<'a> {
        let mut f = BootFacts::default();
        for ev in log.events() {
            let (pcr, ty) = (ev.pcr_raw(), ev.event_type());
            match ty {
                EventType::S_CRTM_VERSION if pcr == 0 => f.scrtm.push(ev),
                EventType::EFI_PLATFORM_FIRMWARE_BLOB | EventType::EFI_PLATFORM_FIRMWARE_BLOB2 if pcr == 0 => {
                    f.firmware.push(ev)
                }
                EventType::EFI_VARIABLE_DRIVER_CONFIG if pcr == 7 => f.variable(ev),
                EventType::EFI_BOOT_SERVICES_APPLICATION if pcr == 4 => match ev.decode() {
                    Ok(EventData::ImageLoad(img)) if img.device_path.is_firmware_volume_file() => {}
                    _ => f.boot_apps.push(ev),
                },
                EventType::IPL => f.ipl(ev),
                _ => {}
            }
        }
        f
    }

    fn variable(&mut self, ev: &'a Event<'a>) {
        let var = match ev.decode() {
            Ok(EventData::Variable(v)) => v,
            Ok(_) => return,
            Err(error) => return self.problems.push(MbFailure::Undecodable { index: ev.index(), error }),
        };
        if var.is(EfiGuid::GLOBAL_VARIABLE, "SecureBoot") {
            if bound(ev, ev.data(), "SecureBoot variable", &mut self.problems) {
                self.secure_boot.push((ev.index(), var.data.first() == Some(&1)));
            }
            return;
        }
        for (slot, db) in KeyDb::ALL.into_iter().enumerate() {
            if !var.is(db.vendor(), db.name()) || !bound(ev, ev.data(), db.name(), &mut self.problems) {
                continue;
            }
            match signature_lists(var.data) {
                Ok(entries) => {
                    if let Some(v) = self.keys.get_mut(slot) {
                        v.push(KeyVar { index: ev.index(), entries });
                    }
                }
                Err(error) => self.problems.push(MbFailure::Undecodable { index: ev.index(), error }),
            }
        }
    }

    fn ipl(&mut self, ev: &'a Event<'a>) {
        let Some(text) = ev.text() else { return };
        match (ev.pcr_raw(), text) {
            (8, EventText::Ascii(s)) => {
                if let Some(cmd) = s.strip_prefix("kernel_cmdline: ") {
                    if bound(ev, cmd.as_bytes(), "kernel command line", &mut self.problems) {
                        self.cmdlines.push((ev.index(), cmd.to_string()));
                    }
                }
            }
            (12, t @ EventText::Utf16(_)) if bound(ev, ev.data(), "kernel command line", &mut self.problems) => {
                self.cmdlines.push((ev.index(), t.as_str().trim().to_string()));
            }
            (9, EventText::Ascii(s)) if s.contains("initrd") || s.contains("initramfs") => self.initrds.push(ev),
            (9, EventText::Ascii(s)) if s.contains("vmlinuz") => self.vmlinuz.push(ev),
            (14, EventText::Ascii("MokList")) => self.mok.push(ev),
            (14, EventText::Ascii("MokListX")) => self.mokx.push(ev),
            _ => {}
        }
    }
}
