//! UEFI structures carried in event data (TCG PC Client PFP section 10.2.6 and the UEFI spec).
//!
//! Each type borrows from the event data; lengths inside them are checked against what is left
//! before anything is taken, so a hostile length can neither over-read nor make us allocate.

use crate::codec::Reader;
use crate::error::ParseError;

use super::devpath::DevicePath;
use super::guid::EfiGuid;
use super::text::Ucs2;

/// `UEFI_VARIABLE_DATA`: a measured UEFI variable (EV_EFI_VARIABLE_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UefiVariableData<'a> {
    /// VariableName (the vendor GUID).
    pub vendor: EfiGuid,
    /// UnicodeName.
    pub name: Ucs2<'a>,
    /// VariableData.
    pub data: &'a [u8],
    /// Bytes after VariableData. Some firmware (seen on Lenovo EV_EFI_VARIABLE_AUTHORITY records)
    /// writes a few; they are kept, not rejected, and policies that read variable contents also
    /// require the record's digest to cover the data they read.
    pub trailing: &'a [u8],
}

impl<'a> UefiVariableData<'a> {
    /// Reads the structure from the whole of `r`.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let vendor = EfiGuid::read(r, "UEFI_VARIABLE_DATA.VariableName")?;
        let name_len = r.u64_le("UEFI_VARIABLE_DATA.UnicodeNameLength")?;
        let data_len = r.u64_le("UEFI_VARIABLE_DATA.VariableDataLength")?;
        let name_bytes = bounded(r, name_len.saturating_mul(2), "UEFI_VARIABLE_DATA.UnicodeName")?;
        let data = bounded(r, data_len, "UEFI_VARIABLE_DATA.VariableData")?;
        Ok(UefiVariableData { vendor, name: Ucs2::new(name_bytes), data, trailing: r.rest() })
    }

    /// True when this is variable `name` of `vendor`.
    pub fn is(&self, vendor: EfiGuid, name: &str) -> bool {
        self.vendor == vendor && self.name.eq_str(name)
    }
}

/// Takes `len` bytes, a u64 from the input, after checking it fits in what is left.
fn bounded<'a>(r: &mut Reader<'a>, len: u64, field: &'static str) -> Result<&'a [u8], ParseError> {
    let offset = r.offset();
    match usize::try_from(len) {
        Ok(n) if n <= r.remaining() => r.take(n, field),
        _ => Err(ParseError::TooLarge { field, offset, size: usize::try_from(len).unwrap_or(usize::MAX), max: r.remaining() }),
    }
}

/// `UEFI_IMAGE_LOAD_EVENT`: a PE image loaded by the firmware (EV_EFI_BOOT_SERVICES_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UefiImageLoadEvent<'a> {
    /// ImageLocationInMemory.
    pub location: u64,
    /// ImageLengthInMemory.
    pub length: u64,
    /// ImageLinkTimeAddress.
    pub link_time_address: u64,
    /// DevicePath.
    pub device_path: DevicePath<'a>,
}

impl<'a> UefiImageLoadEvent<'a> {
    /// Reads the structure from the whole of `r`.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let location = r.u64_le("UEFI_IMAGE_LOAD_EVENT.ImageLocationInMemory")?;
        let length = r.u64_le("UEFI_IMAGE_LOAD_EVENT.ImageLengthInMemory")?;
        let link_time_address = r.u64_le("UEFI_IMAGE_LOAD_EVENT.ImageLinkTimeAddress")?;
        let dp_len = r.u64_le("UEFI_IMAGE_LOAD_EVENT.LengthOfDevicePath")?;
        let dp = bounded(r, dp_len, "UEFI_IMAGE_LOAD_EVENT.DevicePath")?;
        // Some firmware pads the structure; the device path length is authoritative.
        Ok(UefiImageLoadEvent { location, length, link_time_address, device_path: DevicePath::new(dp) })
    }
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB` (and the base/length part of `…_BLOB2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareBlob<'a> {
    /// BlobDescription (BLOB2 only), 8-bit text.
    pub description: Option<&'a [u8]>,
    /// BlobBase.
    pub base: u64,
    /// BlobLength.
    pub length: u64,
}

impl<'a> FirmwareBlob<'a> {
    /// Reads `UEFI_PLATFORM_FIRMWARE_BLOB`.
    pub fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let base = r.u64_le("UEFI_PLATFORM_FIRMWARE_BLOB.BlobBase")?;
        let length = r.u64_le("UEFI_PLATFORM_FIRMWARE_BLOB.BlobLength")?;
        r.finish("UEFI_PLATFORM_FIRMWARE_BLOB")?;
        Ok(FirmwareBlob { description: None, base, length })
    }

    /// Reads `UEFI_PLATFORM_FIRMWARE_BLOB2`.
    pub fn read2(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let n = usize::from(r.u8("UEFI_PLATFORM_FIRMWARE_BLOB2.BlobDescriptionSize")?);
        let description = r.take(n, "UEFI_PLATFORM_FIRMWARE_BLOB2.BlobDescription")?;
        let base = r.u64_le("UEFI_PLATFORM_FIRMWARE_BLOB2.BlobBase")?;
        let length = r.u64_le("UEFI_PLATFORM_FIRMWARE_BLOB2.BlobLength")?;
        r.finish("UEFI_PLATFORM_FIRMWARE_BLOB2")?;
        Ok(FirmwareBlob { description: Some(description), base, length })
    }
}

/// `UEFI_HANDOFF_TABLE_POINTERS(2)`: configuration tables handed to the OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoffTables<'a> {
    /// TableDescription (the `2` form only).
    pub description: Option<&'a [u8]>,
    tables: &'a [u8],
}

/// One `EFI_CONFIGURATION_TABLE`: vendor GUID and table address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigurationTable {
    /// VendorGuid.
    pub vendor: EfiGuid,
    /// VendorTable.
    pub address: u64,
}

impl<'a> HandoffTables<'a> {
    /// Reads the structure; `with_description` for `UEFI_HANDOFF_TABLE_POINTERS2`.
    pub fn read(r: &mut Reader<'a>, with_description: bool) -> Result<Self, ParseError> {
        let description = if with_description {
            let n = usize::from(r.u8("UEFI_HANDOFF_TABLE_POINTERS2.TableDescriptionSize")?);
            Some(r.take(n, "UEFI_HANDOFF_TABLE_POINTERS2.TableDescription")?)
        } else {
            None
        };
        let count = r.u64_le("UEFI_HANDOFF_TABLE_POINTERS.NumberOfTables")?;
        let tables = bounded(r, count.saturating_mul(24), "UEFI_HANDOFF_TABLE_POINTERS.TableEntry")?;
        r.finish("UEFI_HANDOFF_TABLE_POINTERS")?;
        Ok(HandoffTables { description, tables })
    }

    /// The tables.
    pub fn tables(&self) -> impl Iterator<Item = ConfigurationTable> + 'a {
        self.tables.chunks_exact(24).map(|c| {
            let mut r = Reader::new(c);
            ConfigurationTable {
                vendor: EfiGuid::read(&mut r, "VendorGuid").unwrap_or(EfiGuid([0; 16])),
                address: r.u64_le("VendorTable").unwrap_or(0),
            }
        })
    }
}

/// `UEFI_GPT_DATA`: the GPT header and partition entries measured by the boot manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptData {
    /// DiskGUID of the EFI_PARTITION_TABLE_HEADER.
    pub disk_guid: EfiGuid,
    /// NumberOfPartitions measured.
    pub partitions: u64,
}

impl GptData {
    /// Reads the header (92 bytes of EFI_PARTITION_TABLE_HEADER) and the partition count; the
    /// partition entries must fill the rest.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        let mut hdr = r.sub(92, "UEFI_GPT_DATA.UEFIPartitionHeader")?;
        hdr.take(56, "EFI_PARTITION_TABLE_HEADER (signature to last LBA)")?;
        let disk_guid = EfiGuid::read(&mut hdr, "EFI_PARTITION_TABLE_HEADER.DiskGUID")?;
        hdr.take(12, "EFI_PARTITION_TABLE_HEADER.PartitionEntryLBA/NumberOfPartitionEntries")?;
        let entry_size_offset = hdr.offset();
        let entry_size = hdr.u32_le("EFI_PARTITION_TABLE_HEADER.SizeOfPartitionEntry")?;
        let partitions = r.u64_le("UEFI_GPT_DATA.NumberOfPartitions")?;
        if entry_size < 128 {
            return Err(ParseError::BadValue {
                field: "EFI_PARTITION_TABLE_HEADER.SizeOfPartitionEntry",
                offset: entry_size_offset,
                value: u64::from(entry_size),
                expected: "at least 128",
            });
        }
        bounded(r, partitions.saturating_mul(u64::from(entry_size)), "UEFI_GPT_DATA.Partitions")?;
        r.finish("UEFI_GPT_DATA")?;
        Ok(GptData { disk_guid, partitions })
    }
}

/// One `EFI_SIGNATURE_DATA` of an `EFI_SIGNATURE_LIST`: owner and signature (a certificate or a hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureData<'a> {
    /// SignatureType of the enclosing list.
    pub signature_type: EfiGuid,
    /// SignatureOwner.
    pub owner: EfiGuid,
    /// SignatureData.
    pub data: &'a [u8],
}

/// Every `EFI_SIGNATURE_DATA` in a sequence of `EFI_SIGNATURE_LIST`s (PK, KEK, db, dbx contents).
pub fn signature_lists(bytes: &[u8]) -> Result<Vec<SignatureData<'_>>, ParseError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let list_offset = r.offset();
        let signature_type = EfiGuid::read(&mut r, "EFI_SIGNATURE_LIST.SignatureType")?;
        let list_size = r.u32_le("EFI_SIGNATURE_LIST.SignatureListSize")? as usize;
        let header_size = r.u32_le("EFI_SIGNATURE_LIST.SignatureHeaderSize")? as usize;
        let sig_size_offset = r.offset();
        let sig_size = r.u32_le("EFI_SIGNATURE_LIST.SignatureSize")? as usize;
        let body = list_size.checked_sub(28).ok_or(ParseError::BadValue {
            field: "EFI_SIGNATURE_LIST.SignatureListSize",
            offset: list_offset + 16,
            value: list_size as u64,
            expected: "at least the 28-byte list header",
        })?;
        let mut list = r.sub(body, "EFI_SIGNATURE_LIST")?;
        list.take(header_size, "EFI_SIGNATURE_LIST.SignatureHeader")?;
        if sig_size < 16 {
            return Err(ParseError::BadValue {
                field: "EFI_SIGNATURE_LIST.SignatureSize",
                offset: sig_size_offset,
                value: sig_size as u64,
                expected: "at least 16 (the owner GUID)",
            });
        }
        while !list.is_empty() {
            let mut sig = list.sub(sig_size, "EFI_SIGNATURE_DATA")?;
            let owner = EfiGuid::read(&mut sig, "EFI_SIGNATURE_DATA.SignatureOwner")?;
            out.push(SignatureData { signature_type, owner, data: sig.rest() });
        }
    }
    Ok(out)
}
