//! AKs of every algorithm: persisted and reused, quoting, and tpm2_checkquote accepting our quotes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_core::pcr::{PcrIndex, PcrSelection};
use cairn_core::HashAlg;
use cairn_tpm::{AkAlg, AkSpec, TpmError};
use common::{path_str, tpm2_tools_pcr_file, TestTpm};

const SELECTION: &str = "sha1:10+sha256:0,1,16";

/// Who checks the quote independently.
#[derive(PartialEq)]
enum Peer {
    /// `tpm2_checkquote`: signature, nonce and PCR digest.
    CheckQuote,
    /// `openssl dgst` with PSS padding (tpm2_checkquote 5.4 rejects valid RSA-PSS quotes).
    OpenSslPss,
    /// Nobody here can (SM2); cairn-core's verifier is the judge of those.
    None,
}

/// Creates the AK twice (the second time it is found persisted), quotes with it, and has an
/// independent tool verify the quote.
fn quote_round_trip(alg: AkAlg, peer: Peer) {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let spec = AkSpec::new(alg);
    let ak = tpm.load_or_create_ak(spec).unwrap();
    assert_eq!(ak.handle, alg.default_handle());
    let again = tpm.load_or_create_ak(spec).unwrap();
    assert_eq!(again, ak, "the persisted AK is reused");

    let sixteen = PcrIndex::new(16).unwrap();
    let measured = HashAlg::Sha256.hash(b"cairn measured this");
    tpm.pcr_extend(sixteen, &[measured]).unwrap();

    let sel: PcrSelection = SELECTION.parse().unwrap();
    let nonce = b"0123456789abcdef0123";
    let quote = tpm.quote(&ak, nonce, &sel).unwrap();
    assert_eq!(quote.pcrs.selection(), &sel);
    assert_eq!(
        quote.pcrs.get(HashAlg::Sha256, sixteen).unwrap(),
        &HashAlg::Sha256.extend(&HashAlg::Sha256.zero(), measured.as_bytes())
    );
    assert_eq!(quote.pcrs.get(HashAlg::Sha1, PcrIndex::new(10).unwrap()).unwrap(), &HashAlg::Sha1.zero());
    // TPMS_ATTEST starts with TPM_GENERATED_VALUE and TPM_ST_ATTEST_QUOTE, and carries the nonce.
    assert_eq!(quote.attest[..6], [0xff, 0x54, 0x43, 0x47, 0x80, 0x18]);
    assert!(quote.attest.windows(nonce.len()).any(|w| w == nonce));
    // TPMT_SIGNATURE names the key's scheme and sha256.
    let sig_alg: u16 = match alg {
        AkAlg::Rsa2048Rsassa | AkAlg::Rsa3072Rsassa => 0x0014,
        AkAlg::Rsa2048Rsapss => 0x0016,
        AkAlg::EccP256Ecdsa | AkAlg::EccP384Ecdsa => 0x0018,
        AkAlg::Sm2P256 => 0x001b,
    };
    assert_eq!(quote.signature[..4], [(sig_alg >> 8) as u8, sig_alg as u8, 0x00, 0x0b]);
    drop(tpm);

    if peer == Peer::OpenSslPss {
        let ak_pub = t.write("ak.pub", &ak.public);
        let pem = t.tool_ok("tpm2_print", &["-t", "TPM2B_PUBLIC", "-f", "pem", path_str(&ak_pub)]);
        let pem = t.write("ak.pem", pem.as_bytes());
        // TPMT_SIGNATURE: sigAlg, hash, then the TPM2B signature.
        let sig = t.write("quote.sig", &quote.signature[6..]);
        let msg = t.write("quote.msg", &quote.attest);
        let verify = |msg: &std::path::Path| {
            std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:auto"])
                .args(["-verify", path_str(&pem), "-signature", path_str(&sig), path_str(msg)])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify(&msg), "openssl rejected the RSA-PSS quote");
        let mut tampered = quote.attest.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!verify(&t.write("tampered.msg", &tampered)), "openssl accepted a tampered quote");
    }
    if peer == Peer::CheckQuote {
        let ak_pub = t.write("ak.pub", &ak.public);
        let msg = t.write("quote.msg", &quote.attest);
        let sig = t.write("quote.sig", &quote.signature);
        let pcrs = t.write("quote.pcrs", &tpm2_tools_pcr_file(&quote.pcrs));
        let nonce_hex = hex::encode(nonce);
        let args = [
            "-u", path_str(&ak_pub), "-m", path_str(&msg), "-s", path_str(&sig), "-f", path_str(&pcrs), "-q",
            &nonce_hex, "-g", "sha256",
        ];
        t.tool_ok("tpm2_checkquote", &args);
        // The same quote with another nonce must be refused.
        let mut wrong = args;
        wrong[9] = "00";
        assert!(!t.tool("tpm2_checkquote", &wrong).status.success(), "checkquote accepted a wrong nonce");
    }
}

#[test]
fn rsa2048_rsassa_quote_passes_checkquote() {
    quote_round_trip(AkAlg::Rsa2048Rsassa, Peer::CheckQuote);
}

#[test]
fn rsa2048_rsapss_quote_passes_openssl() {
    quote_round_trip(AkAlg::Rsa2048Rsapss, Peer::OpenSslPss);
}

#[test]
fn rsa3072_rsassa_quote_passes_checkquote() {
    quote_round_trip(AkAlg::Rsa3072Rsassa, Peer::CheckQuote);
}

#[test]
fn ecc_p256_ecdsa_quote_passes_checkquote() {
    quote_round_trip(AkAlg::EccP256Ecdsa, Peer::CheckQuote);
}

#[test]
fn ecc_p384_ecdsa_quote_passes_checkquote() {
    quote_round_trip(AkAlg::EccP384Ecdsa, Peer::CheckQuote);
}

#[test]
fn sm2_quote_is_produced() {
    quote_round_trip(AkAlg::Sm2P256, Peer::None);
}

#[test]
fn a_different_key_at_the_handle_is_refused_and_evict_frees_it() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let handle = 0x8101_0100;
    let rsa = tpm.load_or_create_ak(AkSpec { handle: Some(handle), ..AkSpec::new(AkAlg::Rsa2048Rsassa) }).unwrap();
    let ecc_spec = AkSpec { handle: Some(handle), ..AkSpec::new(AkAlg::EccP256Ecdsa) };
    match tpm.load_or_create_ak(ecc_spec) {
        Err(TpmError::KeyMismatch { handle: h, .. }) => assert_eq!(h, handle),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let sha384 = AkSpec { hash: HashAlg::Sha384, handle: Some(handle), ..AkSpec::new(AkAlg::Rsa2048Rsassa) };
    assert!(matches!(tpm.load_or_create_ak(sha384), Err(TpmError::KeyMismatch { .. })));

    tpm.evict(handle).unwrap();
    assert!(!tpm.handle_exists(handle).unwrap());
    let ecc = tpm.load_or_create_ak(ecc_spec).unwrap();
    assert_ne!(ecc.name, rsa.name);
}

#[test]
fn oversized_nonce_is_refused_before_the_tpm() {
    let t = TestTpm::plain();
    let mut tpm = t.open();
    let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa)).unwrap();
    let sel: PcrSelection = "sha256:0".parse().unwrap();
    assert!(matches!(tpm.quote(&ak, &[0; 65], &sel), Err(TpmError::Unsupported(_))));
    assert!(tpm.quote(&ak, &[0; 64], &sel).is_ok());
}
