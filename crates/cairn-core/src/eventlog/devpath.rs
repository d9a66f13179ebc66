//! UEFI device paths (`EFI_DEVICE_PATH_PROTOCOL` node lists), rendered as text.
//!
//! The rendering follows the UEFI text form closely enough for people and policies to recognise
//! what was loaded — `PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0x0,0xffff,0x0)/HD(1,GPT,…)/\EFI\fedora\shimx64.efi`
//! — and the firmware-volume form Keylime matches to skip firmware applications
//! (`FvVol(guid)/FvFile(guid)`). Unknown nodes render as `Path(type,subtype,hex)`, so nothing is
//! hidden. Rendering never fails: a malformed node ends the path with `<malformed>`.

use std::fmt::{self, Write};

use crate::codec::Reader;

use super::guid::EfiGuid;
use super::text::Ucs2;

/// A device path borrowed from event data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DevicePath<'a>(&'a [u8]);

/// One node: type, subtype and the bytes after the 4-byte node header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePathNode<'a> {
    /// Type.
    pub kind: u8,
    /// SubType.
    pub subtype: u8,
    /// Node body.
    pub body: &'a [u8],
}

impl<'a> DevicePath<'a> {
    /// A path over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        DevicePath(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The nodes up to the end node; `Err(())` marks a malformed node (the rest is skipped).
    pub fn nodes(&self) -> impl Iterator<Item = Result<DevicePathNode<'a>, ()>> + 'a {
        let mut r = Reader::new(self.0);
        let mut done = false;
        std::iter::from_fn(move || {
            if done || r.is_empty() {
                return None;
            }
            let node = (|| {
                let kind = r.u8("type").ok()?;
                let subtype = r.u8("subtype").ok()?;
                let len = usize::from(r.u16_le("length").ok()?);
                let body = r.take(len.checked_sub(4)?, "body").ok()?;
                Some(DevicePathNode { kind, subtype, body })
            })();
            match node {
                Some(n) if n.kind == 0x7F && n.subtype == 0xFF => {
                    done = true;
                    None
                }
                Some(n) => Some(Ok(n)),
                None => {
                    done = true;
                    Some(Err(()))
                }
            }
        })
    }

    /// The file path of the last media file-path node, if any (`\EFI\BOOT\BOOTX64.EFI`).
    pub fn file_path(&self) -> Option<String> {
        self.nodes().flatten().filter(|n| n.kind == 4 && n.subtype == 4).last().map(|n| Ucs2::new(n.body).to_string_lossy())
    }

    /// True when the first two nodes are a firmware volume and a file in it (firmware apps).
    pub fn is_firmware_volume_file(&self) -> bool {
        let mut it = self.nodes();
        matches!(
            (it.next(), it.next()),
            (Some(Ok(DevicePathNode { kind: 4, subtype: 7, .. })), Some(Ok(DevicePathNode { kind: 4, subtype: 6, .. })))
        )
    }
}

fn u16_at(b: &[u8], i: usize) -> u64 {
    let mut r = Reader::new(b.get(i..).unwrap_or(&[]));
    r.u16_le("").map(u64::from).unwrap_or(0)
}
fn u32_at(b: &[u8], i: usize) -> u64 {
    let mut r = Reader::new(b.get(i..).unwrap_or(&[]));
    r.u32_le("").map(u64::from).unwrap_or(0)
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut r = Reader::new(b.get(i..).unwrap_or(&[]));
    r.u64_le("").unwrap_or(0)
}
fn guid_at(b: &[u8], i: usize) -> EfiGuid {
    let mut r = Reader::new(b.get(i..).unwrap_or(&[]));
    EfiGuid::read(&mut r, "").unwrap_or(EfiGuid([0; 16]))
}

fn write_node(f: &mut impl Write, n: &DevicePathNode<'_>) -> fmt::Result {
    let b = n.body;
    match (n.kind, n.subtype) {
        (1, 1) => write!(f, "Pci({:#x},{:#x})", b.get(1).copied().unwrap_or(0), b.first().copied().unwrap_or(0)),
        (1, 4) => write!(f, "VenHw({})", guid_at(b, 0)),
        (2, 1) if u32_at(b, 0) == 0x0A03_41D0 || u32_at(b, 0) == 0x0A08_41D0 => write!(f, "PciRoot({:#x})", u32_at(b, 4)),
        (2, 1) => write!(f, "Acpi({:#x},{:#x})", u32_at(b, 0), u32_at(b, 4)),
        (3, 2) => write!(f, "Scsi({:#x},{:#x})", u16_at(b, 0), u16_at(b, 2)),
        (3, 5) => write!(f, "USB({:#x},{:#x})", b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)),
        (3, 0x0a) => write!(f, "VenMsg({})", guid_at(b, 0)),
        (3, 0x12) => write!(f, "Sata({:#x},{:#x},{:#x})", u16_at(b, 0), u16_at(b, 2), u16_at(b, 4)),
        (3, 0x17) => write!(f, "NVMe({:#x},{})", u32_at(b, 0), hex::encode(b.get(4..12).unwrap_or(&[]))),
        (4, 1) => {
            let sig = match b.get(37) {
                Some(2) => format!("GPT,{}", guid_at(b, 20)),
                Some(1) => format!("MBR,{:#x}", u32_at(b, 20)),
                _ => "?".to_string(),
            };
            write!(f, "HD({},{sig},{:#x},{:#x})", u32_at(b, 0), u64_at(b, 4), u64_at(b, 12))
        }
        (4, 2) => write!(f, "CDROM({:#x},{:#x},{:#x})", u32_at(b, 0), u64_at(b, 4), u64_at(b, 12)),
        (4, 3) => write!(f, "VenMedia({})", guid_at(b, 0)),
        (4, 4) => write!(f, "{}", Ucs2::new(b)),
        (4, 6) => write!(f, "FvFile({})", guid_at(b, 0)),
        (4, 7) => write!(f, "FvVol({})", guid_at(b, 0)),
        (4, 8) => write!(f, "Offset({:#x},{:#x})", u64_at(b, 4), u64_at(b, 12)),
        (0x7F, 1) => f.write_str(","),
        (k, s) => write!(f, "Path({k},{s},{})", hex::encode(b)),
    }
}

impl fmt::Display for DevicePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for node in self.nodes() {
            if !first {
                f.write_str("/")?;
            }
            first = false;
            match node {
                Ok(n) => write_node(f, &n)?,
                Err(()) => f.write_str("<malformed>")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DevicePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn node(kind: u8, sub: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, sub];
        v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn renders_pci_and_file_path() {
        let mut p = node(2, 1, &[0xD0, 0x41, 0x03, 0x0A, 0, 0, 0, 0]);
        p.extend(node(1, 1, &[2, 0x1f]));
        let file: Vec<u8> = "\\EFI\\BOOT\\BOOTX64.EFI\0".encode_utf16().flat_map(u16::to_le_bytes).collect();
        p.extend(node(4, 4, &file));
        p.extend(node(0x7F, 0xFF, &[]));
        let dp = DevicePath::new(&p);
        assert_eq!(dp.to_string(), "PciRoot(0x0)/Pci(0x1f,0x2)/\\EFI\\BOOT\\BOOTX64.EFI");
        assert_eq!(dp.file_path().as_deref(), Some("\\EFI\\BOOT\\BOOTX64.EFI"));
    }

    #[test]
    fn malformed_node_is_marked_not_fatal() {
        let dp = DevicePath::new(&[4, 4, 2, 0]);
        assert_eq!(dp.to_string(), "<malformed>");
    }
}
