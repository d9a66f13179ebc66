//! Keylime's quote string: `r` + b64(TPMS_ATTEST) + `:` + b64(TPMT_SIGNATURE) + `:` + b64(PCR blob).

use base64::Engine;

use crate::error::ParseError;

/// Largest quote string accepted (a 16-bank blob is ~9 KiB of base64; this is generous).
const MAX_QUOTE_STRING: usize = 64 * 1024;

/// The three decoded parts: (message, signature, pcrs).
pub type QuoteBytes = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Splits and decodes a Keylime quote string.
pub fn decode_quote_string(s: &str) -> Result<QuoteBytes, ParseError> {
    let s = s.trim();
    if s.len() > MAX_QUOTE_STRING {
        return Err(ParseError::TooLarge { field: "quote string", offset: 0, size: s.len(), max: MAX_QUOTE_STRING });
    }
    let body = s
        .strip_prefix('r')
        .ok_or_else(|| ParseError::text("quote string", "does not start with 'r' (raw TPM format)"))?;
    let mut parts = body.split(':');
    let mut next = |what: &'static str| -> Result<Vec<u8>, ParseError> {
        let p = parts.next().ok_or_else(|| ParseError::text("quote string", format!("{what} part missing")))?;
        base64::engine::general_purpose::STANDARD
            .decode(p)
            .map_err(|e| ParseError::text("quote string", format!("{what} part is not base64: {e}")))
    };
    let m = next("TPMS_ATTEST")?;
    let sig = next("TPMT_SIGNATURE")?;
    let pcrs = next("PCR")?;
    if parts.next().is_some() {
        return Err(ParseError::text("quote string", "more than three ':'-separated parts"));
    }
    Ok((m, sig, pcrs))
}

/// Builds a Keylime quote string.
pub fn encode_quote_string(message: &[u8], signature: &[u8], pcrs: &[u8]) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!("r{}:{}:{}", e(message), e(signature), e(pcrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let s = encode_quote_string(b"m", b"sig", b"pcrs");
        assert_eq!(decode_quote_string(&s).unwrap(), (b"m".to_vec(), b"sig".to_vec(), b"pcrs".to_vec()));
        assert!(decode_quote_string("xAA:AA:AA").is_err());
        assert!(decode_quote_string("rAA:AA").is_err());
        assert!(decode_quote_string("rAA:AA:AA:AA").is_err());
        assert!(decode_quote_string("rAA:A!:AA").is_err());
    }
}
