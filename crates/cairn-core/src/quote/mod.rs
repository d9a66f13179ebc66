//! Quote verification: does this TPMS_ATTEST prove these PCR values, for this nonce, from this AK?
//!
//! The checks, in order — the first that fails is the reason reported, each a distinct
//! [`QuoteFailure`] variant:
//! 1. the three parts parse (TPMS_ATTEST, TPMT_SIGNATURE, tpm2-tools PCR blob);
//! 2. the attestation is TPM-generated (magic) and is a quote (type);
//! 3. the signature's scheme fits the AK (type, and the scheme fixed in the AK's public area)
//!    and its hash is the one required, if any;
//! 4. the signature verifies over the TPMS_ATTEST bytes;
//! 5. extraData equals the nonce the verifier sent;
//! 6. the PCR selection in the blob equals the selection the TPM signed;
//! 7. pcrDigest equals H_sig(values in selection order) — several banks in one quote are fine;
//! 8. the TPM clock never goes back against the previous quote of the same AK: (resetCount,
//!    restartCount, clock) is compared lexicographically, because restartCount returns to 0 when
//!    a reboot bumps resetCount (Keylime's per-field rule rejects every reboot);
//! 9. `safe` is set — only when the policy asks for it, since it stays NO for a while after an
//!    unorderly shutdown and says nothing about the node's integrity.

mod clock;
mod failure;
mod keylime;
mod nonce;

pub use clock::check_clock;
pub use failure::QuoteFailure;
pub use keylime::{decode_quote_string, encode_quote_string, QuoteBytes};
pub use nonce::{Nonce, MAX_NONCE};

use crate::alg::HashAlg;
use crate::crypto::{SignatureError, VerifyingKey};
use crate::pcr::PcrValues;
use crate::tpm::attest::{AttestInfo, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};
use crate::tpm::{decode_pcr_blob, Attest, ClockInfo, Signature};

/// The three byte strings a quote travels as.
#[derive(Clone, Copy, Debug)]
pub struct QuoteParts<'a> {
    /// TPMS_ATTEST (the signed bytes).
    pub message: &'a [u8],
    /// TPMT_SIGNATURE.
    pub signature: &'a [u8],
    /// tpm2-tools PCR blob.
    pub pcrs: &'a [u8],
}

/// What the verifier expects of this quote.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The nonce sent (extraData).
    pub nonce: &'a [u8],
    /// The signature hash required, if any.
    pub hash: Option<HashAlg>,
    /// Clock of the previous accepted quote of the same AK.
    pub previous_clock: Option<ClockInfo>,
    /// Whether `safe` must be set.
    pub require_safe: bool,
}

impl<'a> Expected<'a> {
    /// Only a nonce: no hash requirement, no clock history, `safe` not required.
    pub fn nonce(nonce: &'a [u8]) -> Self {
        Expected { nonce, hash: None, previous_clock: None, require_safe: false }
    }
}

/// A quote that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedQuote {
    /// The attestation.
    pub attest: Attest,
    /// The signature.
    pub signature: Signature,
    /// The proven PCR values.
    pub pcrs: PcrValues,
}

impl VerifiedQuote {
    /// The TPM clock at signing.
    pub fn clock(&self) -> ClockInfo {
        self.attest.clock_info
    }
}

/// Verifies a quote against an AK and expectations. See the module docs for the checks.
pub fn verify_quote(ak: &VerifyingKey, parts: QuoteParts<'_>, expected: Expected<'_>) -> Result<VerifiedQuote, QuoteFailure> {
    let attest = Attest::parse(parts.message).map_err(QuoteFailure::MalformedAttest)?;
    let signature = Signature::parse(parts.signature).map_err(QuoteFailure::MalformedSignature)?;
    let pcrs = decode_pcr_blob(parts.pcrs).map_err(QuoteFailure::MalformedPcrs)?;
    verify_parsed(ak, parts.message, attest, signature, pcrs, expected)
}

/// As [`verify_quote`], for parts already parsed; `message` must be the bytes `attest` came from.
pub fn verify_parsed(
    ak: &VerifyingKey,
    message: &[u8],
    attest: Attest,
    signature: Signature,
    pcrs: PcrValues,
    expected: Expected<'_>,
) -> Result<VerifiedQuote, QuoteFailure> {
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(QuoteFailure::NotTpmGenerated { magic: attest.magic });
    }
    let AttestInfo::Quote { selection, pcr_digest } = &attest.info else {
        return Err(QuoteFailure::NotAQuote { tag: attest.tag() });
    };
    debug_assert_eq!(attest.tag(), TPM_ST_ATTEST_QUOTE);
    if let Some(required) = expected.hash {
        if signature.hash != required {
            return Err(QuoteFailure::HashNotAllowed { required, actual: signature.hash });
        }
    }
    ak.verify(message, &signature).map_err(|e| match e {
        SignatureError::Invalid { scheme, hash } => QuoteFailure::BadSignature { scheme, hash },
        other => QuoteFailure::KeyMismatch(other),
    })?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(attest.extra_data.as_slice(), expected.nonce)) {
        return Err(QuoteFailure::NonceMismatch {
            expected: hex::encode(expected.nonce),
            quoted: hex::encode(&attest.extra_data),
        });
    }
    if !selection.same_pcrs(pcrs.selection()) {
        return Err(QuoteFailure::PcrSelectionMismatch {
            quoted: selection.to_string(),
            supplied: pcrs.selection().to_string(),
        });
    }
    let computed = pcrs.composite_digest(signature.hash);
    if computed.as_bytes() != pcr_digest.as_slice() {
        return Err(QuoteFailure::PcrDigestMismatch { quoted: hex::encode(pcr_digest), computed: computed.to_hex() });
    }
    if let Some(prev) = expected.previous_clock {
        check_clock(&prev, &attest.clock_info)?;
    }
    if expected.require_safe && !attest.clock_info.safe {
        return Err(QuoteFailure::ClockNotSafe);
    }
    Ok(VerifiedQuote { attest, signature, pcrs })
}
