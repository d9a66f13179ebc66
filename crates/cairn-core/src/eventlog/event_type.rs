//! Event types of the TCG PC Client Platform Firmware Profile (section 10.4.1).
//!
//! The wire value is kept as a newtype so that unknown types survive a parse, are re-encoded
//! unchanged and can be named in errors; the named constants cover the PC Client and UEFI types.

use std::fmt;

/// An event type (`TCG_EVENTTYPE`, a UINT32 in every record).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(pub u32);

#[allow(missing_docs)]
impl EventType {
    pub const PREBOOT_CERT: EventType = EventType(0x0000_0000);
    pub const POST_CODE: EventType = EventType(0x0000_0001);
    pub const UNUSED: EventType = EventType(0x0000_0002);
    pub const NO_ACTION: EventType = EventType(0x0000_0003);
    pub const SEPARATOR: EventType = EventType(0x0000_0004);
    pub const ACTION: EventType = EventType(0x0000_0005);
    pub const EVENT_TAG: EventType = EventType(0x0000_0006);
    pub const S_CRTM_CONTENTS: EventType = EventType(0x0000_0007);
    pub const S_CRTM_VERSION: EventType = EventType(0x0000_0008);
    pub const CPU_MICROCODE: EventType = EventType(0x0000_0009);
    pub const PLATFORM_CONFIG_FLAGS: EventType = EventType(0x0000_000A);
    pub const TABLE_OF_DEVICES: EventType = EventType(0x0000_000B);
    pub const COMPACT_HASH: EventType = EventType(0x0000_000C);
    pub const IPL: EventType = EventType(0x0000_000D);
    pub const IPL_PARTITION_DATA: EventType = EventType(0x0000_000E);
    pub const NONHOST_CODE: EventType = EventType(0x0000_000F);
    pub const NONHOST_CONFIG: EventType = EventType(0x0000_0010);
    pub const NONHOST_INFO: EventType = EventType(0x0000_0011);
    pub const OMIT_BOOT_DEVICE_EVENTS: EventType = EventType(0x0000_0012);
    pub const POST_CODE2: EventType = EventType(0x0000_0013);
    pub const EFI_VARIABLE_DRIVER_CONFIG: EventType = EventType(0x8000_0001);
    pub const EFI_VARIABLE_BOOT: EventType = EventType(0x8000_0002);
    pub const EFI_BOOT_SERVICES_APPLICATION: EventType = EventType(0x8000_0003);
    pub const EFI_BOOT_SERVICES_DRIVER: EventType = EventType(0x8000_0004);
    pub const EFI_RUNTIME_SERVICES_DRIVER: EventType = EventType(0x8000_0005);
    pub const EFI_GPT_EVENT: EventType = EventType(0x8000_0006);
    pub const EFI_ACTION: EventType = EventType(0x8000_0007);
    pub const EFI_PLATFORM_FIRMWARE_BLOB: EventType = EventType(0x8000_0008);
    pub const EFI_HANDOFF_TABLES: EventType = EventType(0x8000_0009);
    pub const EFI_PLATFORM_FIRMWARE_BLOB2: EventType = EventType(0x8000_000A);
    pub const EFI_HANDOFF_TABLES2: EventType = EventType(0x8000_000B);
    pub const EFI_VARIABLE_BOOT2: EventType = EventType(0x8000_000C);
    pub const EFI_GPT_EVENT2: EventType = EventType(0x8000_000D);
    pub const EFI_HCRTM_EVENT: EventType = EventType(0x8000_0010);
    pub const EFI_VARIABLE_AUTHORITY: EventType = EventType(0x8000_00E0);
    pub const EFI_SPDM_FIRMWARE_BLOB: EventType = EventType(0x8000_00E1);
    pub const EFI_SPDM_FIRMWARE_CONFIG: EventType = EventType(0x8000_00E2);

    /// The specification's name (`EV_…`), when the type is known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            EventType::PREBOOT_CERT => "EV_PREBOOT_CERT",
            EventType::POST_CODE => "EV_POST_CODE",
            EventType::UNUSED => "EV_UNUSED",
            EventType::NO_ACTION => "EV_NO_ACTION",
            EventType::SEPARATOR => "EV_SEPARATOR",
            EventType::ACTION => "EV_ACTION",
            EventType::EVENT_TAG => "EV_EVENT_TAG",
            EventType::S_CRTM_CONTENTS => "EV_S_CRTM_CONTENTS",
            EventType::S_CRTM_VERSION => "EV_S_CRTM_VERSION",
            EventType::CPU_MICROCODE => "EV_CPU_MICROCODE",
            EventType::PLATFORM_CONFIG_FLAGS => "EV_PLATFORM_CONFIG_FLAGS",
            EventType::TABLE_OF_DEVICES => "EV_TABLE_OF_DEVICES",
            EventType::COMPACT_HASH => "EV_COMPACT_HASH",
            EventType::IPL => "EV_IPL",
            EventType::IPL_PARTITION_DATA => "EV_IPL_PARTITION_DATA",
            EventType::NONHOST_CODE => "EV_NONHOST_CODE",
            EventType::NONHOST_CONFIG => "EV_NONHOST_CONFIG",
            EventType::NONHOST_INFO => "EV_NONHOST_INFO",
            EventType::OMIT_BOOT_DEVICE_EVENTS => "EV_OMIT_BOOT_DEVICE_EVENTS",
            EventType::POST_CODE2 => "EV_POST_CODE2",
            EventType::EFI_VARIABLE_DRIVER_CONFIG => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            EventType::EFI_VARIABLE_BOOT => "EV_EFI_VARIABLE_BOOT",
            EventType::EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
            EventType::EFI_BOOT_SERVICES_DRIVER => "EV_EFI_BOOT_SERVICES_DRIVER",
            EventType::EFI_RUNTIME_SERVICES_DRIVER => "EV_EFI_RUNTIME_SERVICES_DRIVER",
            EventType::EFI_GPT_EVENT => "EV_EFI_GPT_EVENT",
            EventType::EFI_ACTION => "EV_EFI_ACTION",
            EventType::EFI_PLATFORM_FIRMWARE_BLOB => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
            EventType::EFI_HANDOFF_TABLES => "EV_EFI_HANDOFF_TABLES",
            EventType::EFI_PLATFORM_FIRMWARE_BLOB2 => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            EventType::EFI_HANDOFF_TABLES2 => "EV_EFI_HANDOFF_TABLES2",
            EventType::EFI_VARIABLE_BOOT2 => "EV_EFI_VARIABLE_BOOT2",
            EventType::EFI_GPT_EVENT2 => "EV_EFI_GPT_EVENT2",
            EventType::EFI_HCRTM_EVENT => "EV_EFI_HCRTM_EVENT",
            EventType::EFI_VARIABLE_AUTHORITY => "EV_EFI_VARIABLE_AUTHORITY",
            EventType::EFI_SPDM_FIRMWARE_BLOB => "EV_EFI_SPDM_FIRMWARE_BLOB",
            EventType::EFI_SPDM_FIRMWARE_CONFIG => "EV_EFI_SPDM_FIRMWARE_CONFIG",
            _ => return None,
        })
    }

    /// True for the types whose records are never extended into a PCR (EV_NO_ACTION).
    pub fn is_no_action(self) -> bool {
        self == EventType::NO_ACTION
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "EV_UNKNOWN({:#010x})", self.0),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_types_render() {
        assert_eq!(EventType(0x8000_0003).to_string(), "EV_EFI_BOOT_SERVICES_APPLICATION");
        assert_eq!(EventType(0x1234).to_string(), "EV_UNKNOWN(0x00001234)");
        assert!(EventType::NO_ACTION.is_no_action());
    }
}
