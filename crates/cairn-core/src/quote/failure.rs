//! Why a quote was not accepted: one variant per check, each naming what it compared.

use thiserror::Error;

use crate::alg::HashAlg;
use crate::crypto::SignatureError;
use crate::error::ParseError;
use crate::tpm::{ClockInfo, SigScheme};

/// The reason a quote failed verification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuoteFailure {
    /// The TPMS_ATTEST bytes do not parse.
    #[error("quote message is malformed: {0}")]
    MalformedAttest(ParseError),
    /// The TPMT_SIGNATURE bytes do not parse.
    #[error("quote signature is malformed: {0}")]
    MalformedSignature(ParseError),
    /// The PCR blob does not parse.
    #[error("PCR values are malformed: {0}")]
    MalformedPcrs(ParseError),
    /// The magic is not TPM_GENERATED_VALUE: the TPM did not make this structure.
    #[error("not TPM-generated: magic {magic:#010x}, expected 0xff544347")]
    NotTpmGenerated {
        /// Magic found.
        magic: u32,
    },
    /// The attestation is not a quote.
    #[error("not a quote: attestation type {tag:#06x}, expected 0x8018")]
    NotAQuote {
        /// Type found.
        tag: u16,
    },
    /// The signature's hash is not the one required.
    #[error("signature hash is {actual}, but {required} is required")]
    HashNotAllowed {
        /// Required hash.
        required: HashAlg,
        /// Hash used.
        actual: HashAlg,
    },
    /// The signature cannot come from this AK (wrong key type or scheme).
    #[error("wrong attestation key: {0}")]
    KeyMismatch(SignatureError),
    /// The signature does not verify with the AK.
    #[error("signature invalid: the {scheme}/{hash} signature does not verify with the AK")]
    BadSignature {
        /// Scheme.
        scheme: SigScheme,
        /// Hash.
        hash: HashAlg,
    },
    /// extraData is not the nonce sent.
    #[error("nonce mismatch: sent {expected}, quote holds {quoted}")]
    NonceMismatch {
        /// Nonce sent, hex.
        expected: String,
        /// extraData, hex.
        quoted: String,
    },
    /// The PCR values supplied are for other PCRs than the quote covers.
    #[error("PCR selection mismatch: quote covers {quoted}, values supplied for {supplied}")]
    PcrSelectionMismatch {
        /// Selection signed.
        quoted: String,
        /// Selection of the values.
        supplied: String,
    },
    /// The PCR values do not hash to the signed pcrDigest.
    #[error("PCR digest mismatch: quote signs {quoted}, values hash to {computed}")]
    PcrDigestMismatch {
        /// pcrDigest signed, hex.
        quoted: String,
        /// Digest of the supplied values, hex.
        computed: String,
    },
    /// The TPM clock went back against the previous quote of the same AK.
    #[error(
        "TPM clock went back: (resetCount, restartCount, clock) was ({}, {}, {}), now ({}, {}, {})",
        previous.reset_count, previous.restart_count, previous.clock,
        current.reset_count, current.restart_count, current.clock
    )]
    ClockWentBack {
        /// Previous clock.
        previous: ClockInfo,
        /// This quote's clock.
        current: ClockInfo,
    },
    /// `safe` is NO and the policy requires it.
    #[error("TPM clock not safe (an unorderly shutdown may have rolled it back) and the policy requires it")]
    ClockNotSafe,
}

impl QuoteFailure {
    /// A stable, short name for the check that failed (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            QuoteFailure::MalformedAttest(_) => "malformed_message",
            QuoteFailure::MalformedSignature(_) => "malformed_signature",
            QuoteFailure::MalformedPcrs(_) => "malformed_pcrs",
            QuoteFailure::NotTpmGenerated { .. } => "not_tpm_generated",
            QuoteFailure::NotAQuote { .. } => "not_a_quote",
            QuoteFailure::HashNotAllowed { .. } => "hash_not_allowed",
            QuoteFailure::KeyMismatch(_) => "wrong_key",
            QuoteFailure::BadSignature { .. } => "bad_signature",
            QuoteFailure::NonceMismatch { .. } => "nonce_mismatch",
            QuoteFailure::PcrSelectionMismatch { .. } => "pcr_selection_mismatch",
            QuoteFailure::PcrDigestMismatch { .. } => "pcr_digest_mismatch",
            QuoteFailure::ClockWentBack { .. } => "clock_went_back",
            QuoteFailure::ClockNotSafe => "clock_not_safe",
        }
    }
}
