//! Fuzz target `tpm_structures`.

use cairn_core::crypto::spki;
use cairn_core::tpm::{decode_pcr_blob, encode_pcr_blob, Attest, Public, Signature};

/// TPM structures: each parser on the whole input; what parses re-encodes to the same bytes.
pub fn tpm_structures(data: &[u8]) {
    if let Ok(a) = Attest::parse(data) {
        assert_eq!(a.to_bytes(), data, "TPMS_ATTEST re-encodes differently");
    }
    if let Ok(s) = Signature::parse(data) {
        assert_eq!(s.to_bytes(), data, "TPMT_SIGNATURE re-encodes differently");
    }
    if let Ok(p) = Public::parse_tpm2b(data) {
        assert_eq!(p.to_tpm2b(), data, "TPM2B_PUBLIC re-encodes differently");
        let _ = spki::to_spki_der(&p.key);
    }
    if let Ok(v) = decode_pcr_blob(data) {
        let _ = encode_pcr_blob(&v);
    }
    let _ = spki::from_spki_der(data);
}
