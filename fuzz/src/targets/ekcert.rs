//! Fuzz target `ekcert`.


/// EK certificates: parse (DER with NV padding, or PEM bundles), read every field, build and
/// check a chain against the certificate itself as anchor; and the tpm2-tools credential file.
pub fn ekcert(data: &[u8]) {
    use cairn_core::credential::MadeCredential;
    use cairn_core::ekcert::{certificates_from_bytes, verify_chain, Certificate, TrustStore};
    if let Ok(c) = Certificate::from_der(data) {
        let _ = c.public_key();
        let _ = (c.subject().to_string(), c.issuer().to_string(), c.serial_hex(), c.tpm_identity());
        let mut store = TrustStore::new();
        store.add_anchor(c.clone());
        assert!(verify_chain(&c, &store, c.not_before()).is_ok() || c.not_after() < c.not_before() || !c.extensions().unknown_critical.is_empty());
        let _ = verify_chain(&c, &TrustStore::new(), 0);
    }
    let _ = certificates_from_bytes(data);
    if let Ok(m) = MadeCredential::from_tpm2_tools(data) {
        assert_eq!(m.to_tpm2_tools(), data, "credential file re-encodes differently");
    }
}
