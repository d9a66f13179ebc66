//! Quote requests: validating what a verifier asks for, and the TPM job that answers it.
//!
//! The job binds the NK to the TPM as Keylime does: reset PCR 16, extend it (in the quote's bank)
//! with H(NK public key PEM), and quote PCR 16 along with the asked-for PCRs — so a verifier that
//! finds PCR 16 = H(0…0 ‖ H(PEM)) knows the key it encrypts to lives beside this TPM. The three
//! steps run inside one TPM job, so no other quote can interleave with them.

use cairn_core::pcr::{BankSelection, PcrIndex, PcrSelection};
use cairn_core::quote::encode_quote_string;
use cairn_core::tpm::encode_pcr_blob;
use cairn_core::HashAlg;
use cairn_tpm::Ak;

use crate::error::AgentError;
use crate::tpm_owner::TpmOwner;

/// Longest nonce accepted (TPM2B_DATA's capacity; Keylime's verifier sends 20 characters).
pub const MAX_NONCE: usize = 64;
/// The PCR that binds the NK.
pub const DATA_PCR: u8 = 16;
/// The IMA PCR.
pub const IMA_PCR: u8 = 10;

/// A validated nonce: 1–64 ASCII letters and digits; its bytes are the qualifying data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteNonce(String);

impl QuoteNonce {
    /// Checks a nonce as sent in the query string.
    pub fn parse(s: Option<&str>) -> Result<QuoteNonce, AgentError> {
        let s = s.ok_or_else(|| AgentError::BadRequest("nonce is missing".into()))?;
        if s.is_empty() || s.len() > MAX_NONCE {
            return Err(AgentError::BadRequest(format!("nonce must be 1 to {MAX_NONCE} characters, got {}", s.len())));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AgentError::BadRequest("nonce must be alphanumeric".into()));
        }
        Ok(QuoteNonce(s.to_owned()))
    }

    /// The qualifying data.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A PCR mask: bit n = PCR n, sent as hex (`0x408000` or `408000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcrMask(u32);

impl PcrMask {
    /// Parses the `mask` query value; absent means no PCRs besides 16.
    pub fn parse(s: Option<&str>) -> Result<PcrMask, AgentError> {
        let Some(s) = s else { return Ok(PcrMask(0)) };
        let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AgentError::BadRequest(format!("mask {s:?} is not a hex PCR bitmask of at most 32 bits")));
        }
        u32::from_str_radix(hex, 16)
            .map(PcrMask)
            .map_err(|e| AgentError::BadRequest(format!("mask {s:?}: {e}")))
    }

    /// Whether PCR `n` is selected.
    pub fn has(self, n: u8) -> bool {
        PcrIndex::new(n).is_some_and(|p| self.0 & p.bit() != 0)
    }

    /// The quote's selection: this mask plus PCR 16, in one bank.
    pub fn selection(self, bank: HashAlg) -> PcrSelection {
        let mask = self.0 | (1 << DATA_PCR);
        // One bank is always within MAX_BANKS.
        PcrSelection::new(vec![BankSelection { alg: bank, mask }]).unwrap_or_default()
    }
}

/// Parses `partial` (`0` or `1`; absent = `0`, the full reply with the NK).
pub fn parse_partial(s: Option<&str>) -> Result<bool, AgentError> {
    match s {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => Err(AgentError::BadRequest(format!("partial must be 0 or 1, got {other:?}"))),
    }
}

/// Parses `ima_ml_entry` (a decimal entry index; absent = 0).
pub fn parse_entry(s: Option<&str>) -> Result<u64, AgentError> {
    match s {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| AgentError::BadRequest(format!("ima_ml_entry {v:?} is not an entry number"))),
    }
}

/// Binds `nk_pem` into PCR 16 and quotes `mask` + 16 with `ak`; returns Keylime's quote string.
pub async fn quote(owner: &TpmOwner, ak: Ak, nk_pem: String, nonce: QuoteNonce, mask: PcrMask) -> Result<String, AgentError> {
    let bank = ak.hash;
    let sel = mask.selection(bank);
    let pcr16 = PcrIndex::new(DATA_PCR).ok_or_else(|| AgentError::BadRequest("no PCR 16".into()))?;
    let quote = owner
        .run(move |tpm| {
            tpm.pcr_reset(pcr16)?;
            tpm.pcr_extend(pcr16, &[bank.hash(nk_pem.as_bytes())])?;
            Ok(tpm.quote(&ak, nonce.as_bytes(), &sel)?)
        })
        .await?;
    Ok(encode_quote_string(&quote.attest, &quote.signature, &encode_pcr_blob(&quote.pcrs)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nonces() {
        assert!(QuoteNonce::parse(Some("abcDEF0123456789abcd")).is_ok());
        assert!(QuoteNonce::parse(Some(&"a".repeat(64))).is_ok());
        for bad in [None, Some(""), Some("has space"), Some("a-b"), Some("é")] {
            assert!(matches!(QuoteNonce::parse(bad), Err(AgentError::BadRequest(_))), "{bad:?}");
        }
        let e = QuoteNonce::parse(Some(&"a".repeat(65))).unwrap_err().to_string();
        assert!(e.contains("1 to 64"), "{e}");
    }

    #[test]
    fn masks() {
        let m = PcrMask::parse(Some("0x408401")).unwrap();
        assert!(m.has(0) && m.has(10) && m.has(15) && m.has(22) && !m.has(16));
        assert_eq!(m.selection(HashAlg::Sha256).to_string(), "sha256:0,10,15,16,22");
        assert_eq!(PcrMask::parse(Some("400")).unwrap(), PcrMask(0x400));
        assert_eq!(PcrMask::parse(None).unwrap().selection(HashAlg::Sha1).to_string(), "sha1:16");
        for bad in ["", "0x", "0xZZ", "0x123456789", "-1", "1 "] {
            assert!(matches!(PcrMask::parse(Some(bad)), Err(AgentError::BadRequest(_))), "{bad}");
        }
        assert!(parse_partial(Some("2")).is_err());
        assert!(parse_partial(Some("1")).unwrap());
        assert_eq!(parse_entry(Some("17")).unwrap(), 17);
        assert!(parse_entry(Some("-1")).is_err());
    }
}
