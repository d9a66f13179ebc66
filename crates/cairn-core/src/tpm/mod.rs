//! TPM 2.0 structures as Rust types, parsed from and marshalled to their wire bytes.
//!
//! One type per TCG structure (TPM 2.0 Part 2), each documented with the structure it
//! corresponds to. Parsing is strict: sizes are capped at the spec's maxima, unknown selectors of
//! unions are refused with the field named, and a structure that must end its input rejects
//! trailing bytes. Marshalling reproduces the bytes a TPM would produce, so parse ∘ marshal is the
//! identity on everything a TPM emits.

pub mod attest;
pub mod pcr_blob;
pub mod public;
pub mod signature;

pub use attest::{Attest, AttestInfo, ClockInfo};
pub use pcr_blob::{decode_pcr_blob, encode_pcr_blob};
pub use public::{EccCurve, Public, PublicKey};
pub use signature::{SigScheme, Signature};

/// TPM2B_DIGEST / TPM2B_DATA capacity (sizeof(TPMU_HA)).
pub const MAX_DIGEST_BUFFER: usize = 64;
/// TPM2B_NAME capacity (sizeof(TPMU_NAME)).
pub const MAX_NAME: usize = 2 + 64;
/// RSA key and signature capacity (MAX_RSA_KEY_BYTES for 4096-bit keys).
pub const MAX_RSA_BYTES: usize = 512;
/// ECC coordinate / scalar capacity (MAX_ECC_KEY_BYTES for up to 521-bit curves).
pub const MAX_ECC_BYTES: usize = 66;
