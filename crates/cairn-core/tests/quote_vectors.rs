//! Every quote vector in shared/testdata gives the outcome its expected.json records, with the
//! reason we expect for each tampered variant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;

use cairn_core::crypto::{spki, VerifyingKey};
use cairn_core::quote::{decode_quote_string, verify_quote, Expected, QuoteFailure, QuoteParts};
use cairn_core::tpm::{Attest, AttestInfo, Public};
use serde_json::Value;

const DIRS: [&str; 3] = ["keylime-testdata-rsa2048", "swtpm-A-ecc-p256-ecdsa-sha256", "swtpm-A-rsa2048-rsassa-sha256"];

fn key_from(path: &Path) -> VerifyingKey {
    let bytes = std::fs::read(path).unwrap();
    match Public::parse_tpm2b(&bytes) {
        Ok(p) => VerifyingKey::from_public(&p),
        Err(_) => VerifyingKey::from_key(spki::from_pem(std::str::from_utf8(&bytes).unwrap()).unwrap()),
    }
}

fn run_case(dir: &Path, case: &Value, ak_override: Option<&str>) -> Result<(), QuoteFailure> {
    let f = |k: &str| std::fs::read(dir.join(case[k].as_str().unwrap())).unwrap();
    let ak = key_from(&dir.join(ak_override.unwrap_or(case["ak"].as_str().unwrap())));
    let nonce = hex::decode(case["nonce"].as_str().unwrap()).unwrap();
    let (m, s, p) = (f("message"), f("signature"), f("pcrs"));
    verify_quote(&ak, QuoteParts { message: &m, signature: &s, pcrs: &p }, Expected::nonce(&nonce)).map(|_| ())
}

#[test]
fn every_quote_vector_gives_its_recorded_outcome() {
    for d in DIRS {
        let Some(dir) = common::testdata(&format!("quotes/{d}")) else { return };
        let exp: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for case in exp["cases"].as_array().unwrap() {
            let name = case["case"].as_str().unwrap();
            let want_accept = case["expected"] == "accept";
            // tpm2_checkquote agrees with the expected outcome on every vector; so must we.
            assert_eq!(case["tpm2_checkquote_rc"] == 0, want_accept, "{d}/{name}: vector inconsistent");
            let got = run_case(&dir, case, None);
            assert_eq!(got.is_ok(), want_accept, "{d}/{name}: got {got:?}");
            if let Err(e) = got {
                let ok_reason = match name {
                    "message_bitflip" | "signature_bitflip" => matches!(e, QuoteFailure::BadSignature { .. }),
                    "wrong_nonce" => matches!(e, QuoteFailure::NonceMismatch { .. }),
                    "tampered_pcr_value" => matches!(e, QuoteFailure::PcrDigestMismatch { .. }),
                    "wrong_ak" => matches!(e, QuoteFailure::KeyMismatch(_) | QuoteFailure::BadSignature { .. }),
                    _ => true,
                };
                assert!(ok_reason, "{d}/{name}: unexpected reason {e}");
            }
            // The PEM form of the AK gives the same outcome as TPM2B_PUBLIC.
            if case["ak"] == "ak.pub" {
                assert_eq!(run_case(&dir, case, Some("ak.pem")).is_ok(), want_accept, "{d}/{name} via ak.pem");
            }
        }
    }
}

#[test]
fn decoded_fields_match_and_name_matches_ak_name_file() {
    for d in DIRS {
        let Some(dir) = common::testdata(&format!("quotes/{d}")) else { return };
        let exp: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let a = Attest::parse(&std::fs::read(dir.join("quote.msg")).unwrap()).unwrap();
        let e = &exp["attest"];
        assert_eq!(format!("{:#x}", a.magic), e["magic"].as_str().unwrap());
        assert_eq!(hex::encode(&a.qualified_signer), e["qualifiedSigner"].as_str().unwrap());
        assert_eq!(hex::encode(&a.extra_data), e["extraData"].as_str().unwrap());
        assert_eq!(a.clock_info.clock, e["clock"].as_u64().unwrap());
        assert_eq!(u64::from(a.clock_info.reset_count), e["resetCount"].as_u64().unwrap());
        assert_eq!(u64::from(a.clock_info.safe), e["safe"].as_u64().unwrap());
        assert_eq!(format!("{:016x}", a.firmware_version), e["firmwareVersion"].as_str().unwrap());
        let AttestInfo::Quote { selection, pcr_digest } = &a.info else { panic!("{d}: not a quote") };
        assert_eq!(hex::encode(pcr_digest), e["pcrDigest"].as_str().unwrap());
        let sel: Vec<String> = exp["pcr_selection"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(selection.to_string(), sel.join("+"));
        // Name = nameAlg || H(TPMT_PUBLIC), as tpm2_createak wrote it.
        let p = Public::parse_tpm2b(&std::fs::read(dir.join("ak.pub")).unwrap()).unwrap();
        assert_eq!(p.name(), std::fs::read(dir.join("ak.name")).unwrap(), "{d}: AK name");
        // Our PEM of the TPM2B_PUBLIC is the PEM tpm2-tools wrote (same key).
        let pem = std::fs::read_to_string(dir.join("ak.pem")).unwrap();
        assert_eq!(spki::from_pem(&pem).unwrap(), p.key, "{d}: ak.pem");
        // The Keylime string holds the very same three files.
        let s = std::fs::read_to_string(dir.join("quote.keylime.txt")).unwrap();
        let (m, sig, pcrs) = decode_quote_string(&s).unwrap();
        assert_eq!(m, std::fs::read(dir.join("quote.msg")).unwrap());
        assert_eq!(sig, std::fs::read(dir.join("quote.sig")).unwrap());
        assert_eq!(pcrs, std::fs::read(dir.join("quote.pcrs")).unwrap());
    }
}

#[test]
fn pcr_blob_values_match_the_json_sidecar() {
    for d in DIRS {
        let Some(dir) = common::testdata(&format!("quotes/{d}")) else { return };
        let v = cairn_core::tpm::decode_pcr_blob(&std::fs::read(dir.join("quote.pcrs")).unwrap()).unwrap();
        let j: Value = serde_json::from_slice(&std::fs::read(dir.join("quote.pcrs.json")).unwrap()).unwrap();
        let mut n = 0;
        for (alg, pcr, val) in v.iter() {
            assert_eq!(j[alg.name()][pcr.to_string()].as_str().unwrap(), val.to_hex(), "{d} {alg}:{pcr}");
            n += 1;
        }
        let total: usize = j.as_object().unwrap().values().map(|b| b.as_object().unwrap().len()).sum();
        assert_eq!(n, total);
        // Re-encoding gives tpm2-tools' bytes back.
        assert_eq!(cairn_core::tpm::encode_pcr_blob(&v), std::fs::read(dir.join("quote.pcrs")).unwrap(), "{d}");
    }
}

#[test]
fn keylime_quote_string_vector_decodes_and_its_digest_recomputes() {
    let Some(dir) = common::testdata("quotes/keylime-quote-string") else { return };
    let exp: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let e = &exp["expected_decoding"];
    let (m, sig, pcrs) = decode_quote_string(&std::fs::read_to_string(dir.join("test-quote.txt")).unwrap()).unwrap();
    let a = Attest::parse(&m).unwrap();
    assert_eq!(hex::encode(&a.extra_data), e["attest"]["extraData"].as_str().unwrap());
    assert_eq!(a.clock_info.clock, e["attest"]["clock"].as_u64().unwrap());
    let s = cairn_core::tpm::Signature::parse(&sig).unwrap();
    assert_eq!(format!("{}-{}", s.scheme, s.hash), e["signature_scheme"].as_str().unwrap());
    let v = cairn_core::tpm::decode_pcr_blob(&pcrs).unwrap();
    assert_eq!(v.values()[0].to_hex(), e["pcrs"]["sha1"]["16"].as_str().unwrap());
    let AttestInfo::Quote { pcr_digest, .. } = &a.info else { panic!("not a quote") };
    assert_eq!(v.composite_digest(s.hash).as_bytes(), pcr_digest.as_slice());
    assert_eq!(hex::encode(pcr_digest), e["pcrDigest_recomputed"].as_str().unwrap());
}
