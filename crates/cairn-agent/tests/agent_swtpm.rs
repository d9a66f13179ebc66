//! The agent on a real swtpm: its router refuses bad requests with reasons; its integrity quotes
//! verify with cairn-core against the AK it wrote to `ak.pub`, bind the NK in PCR 16, and carry
//! IMA incrementally (the test writes the IMA log while extending the same digests into PCR 10,
//! as the kernel would, between agent requests); a restart keeps uuid, EK, AK and keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use cairn_agent::api::{app, AgentState};
use cairn_agent::identity::{TpmIdentity, AK_PUB_FILE};
use cairn_agent::keys::NodeKey;
use cairn_agent::tpm_owner::TpmOwner;
use cairn_agent::Agent;
use cairn_core::crypto::VerifyingKey;
use cairn_core::ima::{BankSet, ReplayConfig, ReplayState, Replayer};
use cairn_core::pcr::{PcrIndex, PcrValues};
use cairn_core::quote::{decode_quote_string, verify_quote, Expected, QuoteParts};
use cairn_core::tpm::Public;
use cairn_core::{Digest, HashAlg};
use cairn_tpm::Tpm;
use common::{client, get, Node};
use tower::ServiceExt;

/// Verifies a Keylime quote string with the AK in `ak.pub`; returns the proven PCR values.
fn verify(node: &Node, quote: &str, nonce: &str) -> PcrValues {
    let ak = Public::parse_tpm2b(&common::read(&node.path("state").join(AK_PUB_FILE))).unwrap();
    let (message, signature, pcrs) = decode_quote_string(quote).unwrap();
    let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
    verify_quote(&VerifyingKey::from_public(&ak), parts, Expected::nonce(nonce.as_bytes())).unwrap().pcrs
}

fn pcr(n: u8) -> PcrIndex {
    PcrIndex::new(n).unwrap()
}

/// Extends PCR 10 with `log`'s entries as the kernel does (sha1: template hash; sha256:
/// H(template data)), through our own short-lived TPM connection beside the running agent.
fn measure(node: &Node, log: &[u8]) {
    let mut tpm = Tpm::open(&node.swtpm.tcti()).unwrap();
    let mut scratch = Vec::new();
    for e in cairn_core::ima::parse(log).unwrap() {
        let data = e.template_data(&mut scratch).unwrap().to_vec();
        let sha1 = Digest::from_bytes(HashAlg::Sha1, e.template_hash.as_bytes()).unwrap();
        tpm.pcr_extend(pcr(10), &[sha1, HashAlg::Sha256.hash(&data)]).unwrap();
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_refuses_bad_requests_with_reasons() {
    let node = Node::new();
    let config = node.config();
    std::fs::create_dir_all(&config.state_dir).unwrap();
    let owner = TpmOwner::start(config.tcti.clone()).unwrap();
    let id = TpmIdentity::load(&owner, config.ak, &config.state_dir).await.unwrap();
    let nk = Arc::new(NodeKey::load_or_create(&config.state_dir).unwrap());
    let state = AgentState::new(owner, "agent-1".into(), &id, nk, config.ima_log.clone(), config.uefi_log.clone());
    let router = app(Arc::new(state));
    let call = |uri: &str| {
        let router = router.clone();
        let req = Request::get(uri).body(Body::empty()).unwrap();
        async move {
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap())
        }
    };
    for (uri, reason) in [
        ("/v2.5/quotes/integrity?nonce=a%20b&mask=0x400", "alphanumeric"),
        ("/v2.5/quotes/integrity?mask=0x400", "nonce is missing"),
        (&format!("/v2.5/quotes/identity?nonce={}", "n".repeat(65)), "1 to 64"),
        ("/v2.5/quotes/integrity?nonce=abc&mask=0xZZ", "hex PCR bitmask"),
        ("/v2.5/quotes/integrity?nonce=abc&mask=0x1ffffffff", "hex PCR bitmask"),
        ("/v2.5/quotes/integrity?nonce=abc&mask=0x400&partial=2", "partial"),
        ("/v2.5/quotes/integrity?nonce=abc&mask=0x400&ima_ml_entry=x", "ima_ml_entry"),
        ("/v9.9/agent/info", "not supported"),
    ] {
        let (status, body) = call(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["code"], 400);
        let text = body["status"].as_str().unwrap();
        assert!(text.contains(reason), "{uri}: {text}");
    }
    let (status, body) = call("/nowhere").await;
    assert_eq!((status, body["code"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
    let (status, body) = call("/version").await;
    assert_eq!((status, body["results"]["supported_version"].as_str()), (StatusCode::OK, Some("2.5")));
    let (status, body) = call("/v2.1/agent/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"]["agent_uuid"], "agent-1");
    assert_eq!(body["results"]["tpm_enc_alg"], "rsa2048");
    assert_eq!(body["results"]["tpm_sign_alg"], "rsassa");
    assert_eq!(body["results"]["ak_handle"], 0x8101_0010u32);
    // A valid request reaches the TPM and succeeds.
    let (status, body) = call("/v2.5/quotes/identity?nonce=abc").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_quotes_verify_bind_the_nk_and_carry_ima_incrementally() {
    let node = Node::new();
    let synth = cairn_core::ima::synth::generate(40);
    let lines: Vec<&[u8]> = synth.log.split_inclusive(|b| *b == b'\n').collect();
    let (first, rest) = lines.split_at(25);
    let first: Vec<u8> = first.concat();
    let rest: Vec<u8> = rest.concat();
    append(&node.path("ima.ascii"), &first);
    measure(&node, &first);
    std::fs::write(node.path("uefi.bin"), b"not really a UEFI log").unwrap();

    let agent = Agent::start(node.config()).await.unwrap();
    let http = client(&agent.mtls_cert);
    let base = format!("https://127.0.0.1:{}/v2.5", agent.addr.port());

    // Full request: NK included, IMA from entry 0.
    let (status, body) = get(&http, &format!("{base}/quotes/integrity?nonce=n0nce1&mask=0x400&partial=0&ima_ml_entry=0")).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    assert_eq!((r["hash_alg"].as_str(), r["enc_alg"].as_str(), r["sign_alg"].as_str()), (Some("sha256"), Some("rsa2048"), Some("rsassa")));
    let pem = r["pubkey"].as_str().unwrap();
    assert_eq!(pem, agent.nk_pem);
    assert!(r["boottime"].as_u64().unwrap() > 0);
    assert_eq!(r["ima_measurement_list_entry"], 0);
    assert!(r.get("mb_measurement_list").is_none(), "PCR 0 was not asked for");
    let pcrs = verify(&node, r["quote"].as_str().unwrap(), "n0nce1");
    assert_eq!(pcrs.selection().to_string(), "sha256:10,16");
    // PCR 16 = H(0…0 ‖ H(NK PEM)).
    let expected16 = HashAlg::Sha256.extend(&HashAlg::Sha256.zero(), HashAlg::Sha256.hash(pem.as_bytes()).as_bytes());
    assert_eq!(pcrs.get(HashAlg::Sha256, pcr(16)), Some(&expected16));
    // The quoted PCR 10 is the replay of exactly what was returned.
    let ima = r["ima_measurement_list"].as_str().unwrap();
    assert_eq!(ima.as_bytes(), first.as_slice());
    let mut replayer = Replayer::new(ReplayConfig::default());
    let mut state = ReplayState::new(BankSet::of(&[HashAlg::Sha256]));
    replayer.replay(&mut state, ima.as_bytes()).unwrap();
    assert_eq!(state.next_entry(), 25);
    assert_eq!(pcrs.get(HashAlg::Sha256, pcr(10)), state.value(HashAlg::Sha256).as_ref());

    // The kernel measures 15 more files (the test extends through its own TPM connection while
    // the agent runs); the verifier asks from entry 25 and replays on from its saved state.
    append(&node.path("ima.ascii"), &rest);
    measure(&node, &rest);
    let (status, body) = get(&http, &format!("{base}/quotes/integrity?nonce=n0nce2&mask=0x400&partial=1&ima_ml_entry=25")).await;
    assert_eq!(status, 200, "{body}");
    let r = &body["results"];
    assert!(r["pubkey"].is_null(), "partial=1 leaves the NK out");
    assert_eq!(r["ima_measurement_list_entry"], 25);
    let ima = r["ima_measurement_list"].as_str().unwrap();
    assert_eq!(ima.as_bytes(), rest.as_slice());
    let pcrs = verify(&node, r["quote"].as_str().unwrap(), "n0nce2");
    let mut resumed = ReplayState::resume(25, &[state.value(HashAlg::Sha256).unwrap()]);
    replayer.replay(&mut resumed, ima.as_bytes()).unwrap();
    assert_eq!(resumed.next_entry(), 40);
    assert_eq!(pcrs.get(HashAlg::Sha256, pcr(10)), resumed.value(HashAlg::Sha256).as_ref());
    // PCR 16 was reset before extending: still the one-step value.
    assert_eq!(pcrs.get(HashAlg::Sha256, pcr(16)), Some(&expected16));

    // Nothing new since entry 40: an empty list. PCR 0 asked: the UEFI log, base64.
    let (_, body) = get(&http, &format!("{base}/quotes/integrity?nonce=n3&mask=0x401&partial=1&ima_ml_entry=40")).await;
    let r = &body["results"];
    assert_eq!((r["ima_measurement_list"].as_str(), r["ima_measurement_list_entry"].as_u64()), (Some(""), Some(40)));
    let mb = base64::engine::general_purpose::STANDARD.decode(r["mb_measurement_list"].as_str().unwrap()).unwrap();
    assert_eq!(mb, b"not really a UEFI log");
    assert_eq!(verify(&node, r["quote"].as_str().unwrap(), "n3").selection().to_string(), "sha256:0,10,16");

    // The identity quote: PCR 16 only, with the NK.
    let (_, body) = get(&http, &format!("{base}/quotes/identity?nonce=ident")).await;
    let r = &body["results"];
    assert_eq!(r["pubkey"].as_str(), Some(pem));
    let pcrs = verify(&node, r["quote"].as_str().unwrap(), "ident");
    assert_eq!(pcrs.selection().to_string(), "sha256:16");
    assert_eq!(pcrs.get(HashAlg::Sha256, pcr(16)), Some(&expected16));
    // And /keys/pubkey serves the same NK.
    let (_, body) = get(&http, &format!("{base}/keys/pubkey")).await;
    assert_eq!(body["results"]["pubkey"].as_str(), Some(pem));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_its_identity() {
    let node = Node::new();
    let first = Agent::start(node.config()).await.unwrap();
    let (uuid, ak, ek, nk, cert) = (
        first.uuid.clone(),
        first.identity.ak.public.clone(),
        first.identity.ek.public.clone(),
        first.nk_pem.clone(),
        first.mtls_cert.clone(),
    );
    assert_eq!(uuid.len(), 64, "hash_ek: hex SHA-256");
    first.stop().await;
    let again = Agent::start(node.config()).await.unwrap();
    assert_eq!(again.uuid, uuid);
    assert_eq!(again.identity.ak.public, ak);
    assert_eq!(again.identity.ek.public, ek);
    assert_eq!(again.nk_pem, nk);
    assert_eq!(again.mtls_cert, cert);
    again.stop().await;
    // A generated uuid is kept in the state directory.
    let mut config = node.config();
    config.uuid = cairn_agent::identity::UuidSource::Generate;
    let a = Agent::start(config.clone()).await.unwrap();
    let generated = a.uuid.clone();
    a.stop().await;
    let b = Agent::start(config).await.unwrap();
    assert_eq!(b.uuid, generated);
    assert_ne!(generated, uuid);
    b.stop().await;
}
