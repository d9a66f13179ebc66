//! MakeCredential output and tpm2-tools' credential file, which Keylime's registrar sends.
//!
//! tpm2-tools (`tpm2_makecredential -o`) writes big-endian u32 0xBADCC0DE, u32 version 1, then
//! TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET with their size prefixes; the registrar
//! base64-encodes that file as the registration `blob`. Both parts are capped at their TPM
//! maxima when read, and the file must end with the secret.

use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

/// tpm2-tools credential file magic.
pub const TPM2_TOOLS_MAGIC: u32 = 0xBADC_C0DE;
/// tpm2-tools credential file version.
pub const TPM2_TOOLS_VERSION: u32 = 1;
/// sizeof(TPMS_ID_OBJECT): integrityHMAC and encIdentity, each a TPM2B_DIGEST.
pub const MAX_ID_OBJECT: usize = 2 * (2 + 64);
/// sizeof(TPMU_ENCRYPTED_SECRET): one RSA-4096 block (an ECC point is smaller).
pub const MAX_ENCRYPTED_SECRET: usize = 512;

/// The two outputs of TPM2_MakeCredential, as TPM wire bytes with their size prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// TPM2B_ID_OBJECT: integrity HMAC and encrypted credential.
    pub id_object: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK.
    pub encrypted_secret: Vec<u8>,
}

impl MadeCredential {
    /// From the two TPM2B bodies (size prefixes are added).
    pub(crate) fn from_bodies(id_object: &[u8], encrypted_secret: &[u8]) -> MadeCredential {
        let mut a = Vec::with_capacity(id_object.len() + 2);
        a.put_tpm2b(id_object);
        let mut b = Vec::with_capacity(encrypted_secret.len() + 2);
        b.put_tpm2b(encrypted_secret);
        MadeCredential { id_object: a, encrypted_secret: b }
    }

    /// tpm2-tools' credential file (what `tpm2_activatecredential -i` reads).
    pub fn to_tpm2_tools(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.id_object.len() + self.encrypted_secret.len());
        out.put_u32_be(TPM2_TOOLS_MAGIC);
        out.put_u32_be(TPM2_TOOLS_VERSION);
        out.extend_from_slice(&self.id_object);
        out.extend_from_slice(&self.encrypted_secret);
        out
    }

    /// Reads tpm2-tools' credential file.
    pub fn from_tpm2_tools(bytes: &[u8]) -> Result<MadeCredential, ParseError> {
        let mut r = Reader::new(bytes);
        let off = r.offset();
        let magic = r.u32_be("credential file magic")?;
        if magic != TPM2_TOOLS_MAGIC {
            return Err(ParseError::BadValue { field: "credential file magic", offset: off, value: u64::from(magic), expected: "0xBADCC0DE" });
        }
        let off = r.offset();
        let version = r.u32_be("credential file version")?;
        if version != TPM2_TOOLS_VERSION {
            return Err(ParseError::BadValue { field: "credential file version", offset: off, value: u64::from(version), expected: "1" });
        }
        let id = r.tpm2b(MAX_ID_OBJECT, "TPM2B_ID_OBJECT")?;
        let secret = r.tpm2b(MAX_ENCRYPTED_SECRET, "TPM2B_ENCRYPTED_SECRET")?;
        r.finish("tpm2-tools credential file")?;
        Ok(MadeCredential::from_bodies(id, secret))
    }
}
