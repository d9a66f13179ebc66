//! The measured-boot reference state in Keylime's JSON shape (`keylime-policy create
//! measured-boot`), read and written with serde.
//!
//! Digests are `{"sha256": "0x…"}` maps, keys are `{SignatureOwner, SignatureData}`, and hex is
//! `0x`-prefixed lower case on output; on input the prefix is optional and case is ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::eventlog::EfiGuid;

/// Bytes written as `0x`-prefixed hex.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hex(pub Vec<u8>);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(&s);
        hex::decode(t).map(Hex).map_err(|e| serde::de::Error::custom(format!("{s:?} is not hex: {e}")))
    }
}

/// A digest per algorithm name (`sha1`, `sha256`, …), as Keylime writes event digests.
pub type DigestRef = BTreeMap<String, Hex>;

/// An allowed S-CRTM and platform firmware combination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrtmAndBios {
    /// Digest of the one EV_S_CRTM_VERSION event in PCR 0 (absent: no such event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrtm: Option<DigestRef>,
    /// Digests of the EV_EFI_PLATFORM_FIRMWARE_BLOB(2) events in PCR 0, in log order.
    #[serde(default)]
    pub platform_firmware: Vec<DigestRef>,
}

/// One `EFI_SIGNATURE_DATA`: owner GUID and the certificate or hash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignatureRef {
    /// SignatureOwner, registry-form GUID.
    #[serde(rename = "SignatureOwner", with = "guid_text")]
    pub owner: EfiGuid,
    /// SignatureData.
    #[serde(rename = "SignatureData")]
    pub data: Hex,
}

mod guid_text {
    use super::*;
    pub(super) fn serialize<S: Serializer>(g: &EfiGuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(g)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EfiGuid, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An allowed boot chain: shim, grub, kernel, initrd and command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRef {
    /// Authenticode SHA-256 of the first boot application (shim).
    pub shim_authcode_sha256: Hex,
    /// Authenticode SHA-256 of the second (grub, or the next loader).
    pub grub_authcode_sha256: Hex,
    /// Authenticode SHA-256 of the kernel (loaded through shim; Secure Boot only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_authcode_sha256: Option<Hex>,
    /// Plain SHA-256 of the initrd (PCR 9 EV_IPL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_plain_sha256: Option<Hex>,
    /// Plain SHA-256 of the kernel image (PCR 9 EV_IPL; without Secure Boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmlinuz_plain_sha256: Option<Hex>,
    /// Regular expression the whole kernel command line must match.
    pub kernel_cmdline: String,
}

fn yes() -> bool {
    true
}

/// The reference state (Keylime's `mb_refstate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefState {
    /// Whether Secure Boot must be enabled (Keylime's default: true).
    #[serde(default = "yes")]
    pub has_secureboot: bool,
    /// Allowed S-CRTM / firmware combinations.
    pub scrtm_and_bios: Vec<ScrtmAndBios>,
    /// Allowed PK entries.
    pub pk: Vec<SignatureRef>,
    /// Allowed KEK entries.
    pub kek: Vec<SignatureRef>,
    /// Allowed db entries.
    pub db: Vec<SignatureRef>,
    /// Required dbx entries.
    pub dbx: Vec<SignatureRef>,
    /// Allowed digests of the MokList measurement (PCR 14).
    pub mokdig: Vec<DigestRef>,
    /// Allowed digests of the MokListX measurement (PCR 14).
    pub mokxdig: Vec<DigestRef>,
    /// Allowed boot chains.
    pub kernels: Vec<KernelRef>,
}

impl RefState {
    /// Parses the JSON text.
    pub fn from_json(text: &str) -> Result<RefState, crate::error::ParseError> {
        serde_json::from_str(text).map_err(|e| crate::error::ParseError::text("measured-boot reference state", e.to_string()))
    }

    /// The JSON text (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
