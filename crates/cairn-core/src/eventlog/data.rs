//! Typed views of event data, chosen by event type.
//!
//! Decoding is on demand ([`Event::decode`]) and borrows from the log. Types without a typed
//! view, and EV_NO_ACTION records that are neither the Spec ID header nor "StartupLocality", come
//! back as [`EventData::Raw`]; the raw bytes are always available from the event itself.

use crate::codec::Reader;
use crate::error::ParseError;

use super::event_type::EventType;
use super::record::Event;
use super::replay::startup_locality;
use super::spec_id::SpecIdEvent;
use super::text::EventText;
use super::uefi::{FirmwareBlob, GptData, HandoffTables, UefiImageLoadEvent, UefiVariableData};

/// The decoded data of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventData<'a> {
    /// EV_S_CRTM_VERSION: usually a UCS-2 version string.
    ScrtmVersion(EventText<'a>),
    /// EV_POST_CODE holding a `UEFI_PLATFORM_FIRMWARE_BLOB`.
    PostCodeBlob(FirmwareBlob<'a>),
    /// EV_POST_CODE holding a description ("ACPI DATA", "POST CODE", …).
    PostCodeText(EventText<'a>),
    /// EV_NO_ACTION: the crypto-agile header.
    SpecId(SpecIdEvent),
    /// EV_NO_ACTION "StartupLocality": the locality the TPM was started from.
    StartupLocality(u8),
    /// EV_SEPARATOR with a 4-byte value (0 = normal, 1 = error, 0xFFFFFFFF on some firmware).
    Separator(u32),
    /// EV_EFI_VARIABLE_DRIVER_CONFIG / _BOOT / _BOOT2 / _AUTHORITY.
    Variable(UefiVariableData<'a>),
    /// EV_EFI_BOOT_SERVICES_APPLICATION / _DRIVER, EV_EFI_RUNTIME_SERVICES_DRIVER.
    ImageLoad(UefiImageLoadEvent<'a>),
    /// EV_EFI_GPT_EVENT.
    Gpt(GptData),
    /// EV_IPL as text (grub's "grub_cmd: …", "kernel_cmdline: …"; systemd-boot's UTF-16 lines).
    Ipl(EventText<'a>),
    /// EV_EFI_PLATFORM_FIRMWARE_BLOB(2).
    FirmwareBlob(FirmwareBlob<'a>),
    /// EV_EFI_HANDOFF_TABLES(2).
    HandoffTables(HandoffTables<'a>),
    /// EV_EFI_ACTION / EV_ACTION: an 8-bit action string.
    Action(&'a str),
    /// Anything else (unknown types, binary EV_IPL, other EV_NO_ACTION records).
    Raw(&'a [u8]),
}

impl<'a> Event<'a> {
    /// Decodes the event data by type; an error names this record.
    pub fn decode(&self) -> Result<EventData<'a>, ParseError> {
        self.decode_inner().map_err(|e| ParseError::Entry {
            list: "event log",
            index: self.index(),
            offset: self.offset(),
            source: Box::new(e),
        })
    }

    fn decode_inner(&self) -> Result<EventData<'a>, ParseError> {
        let data = self.data();
        // Offsets inside a decoding error are relative to the event data; the record is named around it.
        let mut r = Reader::new(data);
        Ok(match self.event_type() {
            EventType::S_CRTM_VERSION => EventText::classify(data).map_or(EventData::Raw(data), EventData::ScrtmVersion),
            EventType::POST_CODE if data.len() == 16 => EventData::PostCodeBlob(FirmwareBlob::read(&mut r)?),
            EventType::POST_CODE => EventText::classify(data).map_or(EventData::Raw(data), EventData::PostCodeText),
            EventType::NO_ACTION if SpecIdEvent::is_spec_id(data) => EventData::SpecId(SpecIdEvent::read(&mut r)?),
            EventType::NO_ACTION => startup_locality(data).map_or(EventData::Raw(data), EventData::StartupLocality),
            EventType::SEPARATOR if data.len() == 4 => EventData::Separator(r.u32_le("separator value")?),
            EventType::EFI_VARIABLE_DRIVER_CONFIG
            | EventType::EFI_VARIABLE_BOOT
            | EventType::EFI_VARIABLE_BOOT2
            | EventType::EFI_VARIABLE_AUTHORITY => EventData::Variable(UefiVariableData::read(&mut r)?),
            EventType::EFI_BOOT_SERVICES_APPLICATION
            | EventType::EFI_BOOT_SERVICES_DRIVER
            | EventType::EFI_RUNTIME_SERVICES_DRIVER => EventData::ImageLoad(UefiImageLoadEvent::read(&mut r)?),
            EventType::EFI_GPT_EVENT => EventData::Gpt(GptData::read(&mut r)?),
            EventType::IPL => EventText::classify(data).map_or(EventData::Raw(data), EventData::Ipl),
            EventType::EFI_PLATFORM_FIRMWARE_BLOB => EventData::FirmwareBlob(FirmwareBlob::read(&mut r)?),
            EventType::EFI_PLATFORM_FIRMWARE_BLOB2 => EventData::FirmwareBlob(FirmwareBlob::read2(&mut r)?),
            EventType::EFI_HANDOFF_TABLES => EventData::HandoffTables(HandoffTables::read(&mut r, false)?),
            EventType::EFI_HANDOFF_TABLES2 => EventData::HandoffTables(HandoffTables::read(&mut r, true)?),
            EventType::EFI_ACTION | EventType::ACTION => match EventText::classify(data) {
                Some(EventText::Ascii(s)) => EventData::Action(s),
                _ => EventData::Raw(data),
            },
            _ => EventData::Raw(data),
        })
    }

    /// The event's text when its data is text (EV_IPL, EV_EFI_ACTION, EV_S_CRTM_VERSION, …).
    pub fn text(&self) -> Option<EventText<'a>> {
        EventText::classify(self.data())
    }
}
