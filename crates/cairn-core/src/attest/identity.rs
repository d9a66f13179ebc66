//! The tenant's check of an identity quote (`GET /quotes/identity`), before it encrypts a
//! bootstrap-key half to the agent's NK: the quote verifies with the registered AK over the nonce
//! the tenant sent, and PCR 16 (quoted in the AK's bank) binds the NK the reply carries — so the
//! key U is sealed to a key that lives beside the enrolled TPM, not to one an impostor chose.

use super::binding::{check_coverage, check_nk, DATA_PCR};
use super::Failure;
use crate::alg::HashAlg;
use crate::crypto::VerifyingKey;
use crate::quote::{decode_quote_string, verify_quote, Expected, QuoteParts};

/// Checks an identity quote; `hash` is the AK's signing hash (also the bank PCR 16 is read in).
pub fn judge_identity(ak: &VerifyingKey, hash: HashAlg, nonce: &[u8], quote: &str, nk_pem: &str) -> Result<(), Vec<Failure>> {
    let (message, signature, pcrs) = decode_quote_string(quote).map_err(|e| vec![Failure::QuoteString(e)])?;
    let expected = Expected { nonce, hash: Some(hash), previous_clock: None, require_safe: false };
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    let quoted = verify_quote(ak, parts, expected).map_err(|f| vec![Failure::Quote(f)])?;
    let mut failures = Vec::new();
    check_coverage(hash, 1 << DATA_PCR, &quoted.pcrs, &mut failures);
    check_nk(hash, nk_pem, &quoted.pcrs, &mut failures);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
