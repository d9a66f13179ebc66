//! Property: the TPM structure parsers return an error, never panic, on arbitrary bytes.

use cairn_core::crypto::spki;
use cairn_core::quote::decode_quote_string;
use cairn_core::tpm::{decode_pcr_blob, Attest, Public, Signature};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn structures_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let _ = Attest::parse(&bytes);
        let _ = Signature::parse(&bytes);
        let _ = Public::parse_tpm2b(&bytes);
        let _ = decode_pcr_blob(&bytes);
        let _ = spki::from_spki_der(&bytes);
    }

    #[test]
    fn quote_strings_never_panic(s in "r[A-Za-z0-9+/=:]{0,300}") {
        let _ = decode_quote_string(&s);
    }

    #[test]
    fn attest_with_valid_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut b = vec![0xff, 0x54, 0x43, 0x47, 0x80, 0x18];
        b.extend_from_slice(&tail);
        let _ = Attest::parse(&b);
    }
}
