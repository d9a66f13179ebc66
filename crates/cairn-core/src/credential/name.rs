//! TPM2B_NAME contents of an object: nameAlg ‖ H_nameAlg(TPMT_PUBLIC).
//!
//! MakeCredential binds the secret to the AK's *name*, so the name is checked for shape (a
//! known hash algorithm followed by a digest of exactly its size) before it is used.

use crate::alg::{AlgId, HashAlg};
use crate::codec::Reader;
use crate::error::ParseError;
use crate::tpm::Public;

/// A TPM object name (TPMU_NAME holding a TPMT_HA): algorithm id then digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName(Vec<u8>);

impl ObjectName {
    /// Checks and wraps name bytes (e.g. Keylime's or tpm2-tools' hex name, decoded).
    pub fn parse(bytes: &[u8]) -> Result<ObjectName, ParseError> {
        let mut r = Reader::new(bytes);
        let off = r.offset();
        let id = r.u16_be("TPMT_HA.hashAlg")?;
        let alg = HashAlg::from_alg_id(AlgId(id)).ok_or(ParseError::UnsupportedAlgorithm { field: "TPMT_HA.hashAlg", offset: off, alg: id })?;
        let digest = r.rest();
        if digest.len() != alg.len() {
            return Err(ParseError::DigestLength { field: "TPMT_HA.digest", alg: alg.name(), len: digest.len(), expected: alg.len() });
        }
        Ok(ObjectName(bytes.to_vec()))
    }

    /// The name of a public area.
    pub fn of(public: &Public) -> ObjectName {
        ObjectName(public.name())
    }

    /// The name bytes (algorithm id included).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
