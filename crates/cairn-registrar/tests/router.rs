//! The registrar's routers, in process (no socket): every class of bad input is refused with a
//! 4xx naming the problem and leaves the store untouched; a good registration yields a blob,
//! activates with the right auth_tag and is then visible to admin endpoints.
//!
//! EK, EK certificate and CA are swtpm instance A's from `shared/testdata/ekcerts/swtpm-A`; the
//! AK is a software P-256 key in a TPM AK's public-area shape. The clock is pinned inside the
//! certificates' validity.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use cairn_core::alg::HashAlg;
use cairn_core::credential::{keylime_auth_tag, MadeCredential};
use cairn_core::ekcert::TrustStore;
use cairn_core::tpm::{EccCurve, Public, PublicKey, SigScheme};
use cairn_registrar::{app, AppState, Port};
use cairn_store::{RegistrarStore, SqliteStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ID: &str = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
/// 2026-12-01, inside the swtpm-A certificates' validity.
fn pinned() -> i64 {
    1_796_083_200
}
/// After every certificate's notAfter (9999-12-31).
fn far_future() -> i64 {
    253_402_300_800
}

struct Vectors {
    ek_pub: Vec<u8>,
    ek_cert: Vec<u8>,
    root: Vec<u8>,
    issuer: Vec<u8>,
}

fn vectors() -> Option<Vectors> {
    let read = |f: &str| common::testdata(&format!("ekcerts/swtpm-A/{f}")).map(|p| std::fs::read(p).unwrap());
    Some(Vectors { ek_pub: read("ek-rsa2048.pub")?, ek_cert: read("ek-rsa2048.der")?, root: read("localca-root.pem")?, issuer: read("localca-issuer.pem")? })
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A software P-256 key in the public-area shape of a TPM AK.
fn software_ak() -> Public {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let point = kp.public_key().as_ref();
    let key = PublicKey::Ecc { curve: EccCurve::NistP256, x: point[1..33].to_vec(), y: point[33..65].to_vec() };
    Public::for_signing_key(&key, SigScheme::Ecdsa, HashAlg::Sha256).unwrap()
}

struct Fixture {
    v: Vectors,
    ak: Public,
    store: Arc<SqliteStore>,
    http: Router,
    tls: Router,
    _dir: tempfile::TempDir,
}

fn fixture_with(trusted: bool, accept_without_ek_cert: bool, clock: fn() -> i64) -> Option<Fixture> {
    let v = vectors()?;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("r.sqlite")).unwrap());
    let mut trust = TrustStore::new();
    if trusted {
        trust.add_anchors_from_bytes(&v.root).unwrap();
        trust.add_anchors_from_bytes(&v.issuer).unwrap();
    }
    let state = AppState::new(store.clone(), trust, accept_without_ek_cert, 64 * 1024).with_clock(clock);
    Some(Fixture { v, ak: software_ak(), store, http: app(state.clone(), Port::Registration), tls: app(state, Port::Tls), _dir: dir })
}

fn fixture() -> Option<Fixture> {
    fixture_with(true, false, pinned)
}

impl Fixture {
    fn body(&self) -> Value {
        json!({
            "ekcert": b64(&self.v.ek_cert),
            "ek_tpm": b64(&self.v.ek_pub),
            "aik_tpm": b64(&self.ak.to_tpm2b()),
            "mtls_cert": null,
            "ip": "127.0.0.1",
            "port": 9002,
        })
    }

    fn nothing_stored(&self) {
        assert!(self.store.registration(ID).unwrap().is_none(), "a refused request left a row");
    }

    async fn register(&self, body: &Value) -> (StatusCode, Value) {
        call(&self.http, Method::POST, &format!("/v2.5/agents/{ID}"), Some(body.to_string().into_bytes())).await
    }

    /// Registers and activates with the tag the agent would compute from the secret.
    async fn enrol(&self) {
        let (st, v) = self.register(&self.body()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let tag = self.expected_tag();
        let (st, v) = call(&self.http, Method::PUT, &format!("/v2.5/agents/{ID}/activate"), Some(json!({"auth_tag": tag}).to_string().into_bytes())).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    /// The registrar's secret is only in its store; a test may read it to play the TPM's part.
    fn expected_tag(&self) -> String {
        let secret = self.store.registration(ID).unwrap().unwrap().challenge.unwrap();
        keylime_auth_tag(&secret, ID)
    }
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Vec<u8>>) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, v)
}

fn assert_refused(got: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    let msg = got.1["status"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "status message {msg:?} lacks {needle:?}");
    assert_eq!(got.1["code"], status.as_u16());
}

#[tokio::test]
async fn a_good_registration_returns_a_blob_and_activates() {
    let Some(f) = fixture() else { return };
    let (st, v) = f.register(&f.body()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let blob = base64::engine::general_purpose::STANDARD.decode(v["results"]["blob"].as_str().unwrap()).unwrap();
    let made = MadeCredential::from_tpm2_tools(&blob).unwrap();
    assert_eq!(made.encrypted_secret.len(), 2 + 256, "RSA-2048 OAEP block");
    let row = f.store.registration(ID).unwrap().unwrap();
    assert!(!row.active && row.regcount == 1);
    // Not visible to admins before activation.
    assert_eq!(call(&f.tls, Method::GET, &format!("/v2.5/agents/{ID}"), None).await.0, StatusCode::NOT_FOUND);
    let tag = f.expected_tag();
    let (st, v) = call(&f.http, Method::PUT, &format!("/v2.1/agents/{ID}/activate"), Some(json!({"auth_tag": tag.to_uppercase()}).to_string().into_bytes())).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = call(&f.tls, Method::GET, &format!("/v2.5/agents/{ID}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"]["ek_tpm"], b64(&f.v.ek_pub));
    assert_eq!(v["results"]["aik_tpm"], b64(&f.ak.to_tpm2b()));
    assert_eq!(v["results"]["ekcert"], b64(&f.v.ek_cert));
    assert_eq!((v["results"]["port"].as_u64(), v["results"]["regcount"].as_u64()), (Some(9002), Some(1)));
    let (_, v) = call(&f.tls, Method::GET, "/v2.5/agents/", None).await;
    assert_eq!(v["results"]["uuids"], json!([ID]));
    // Same identity again: allowed, regcount bumps, stays listed.
    let (st, _) = f.register(&f.body()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(f.store.registration(ID).unwrap().unwrap().regcount, 2);
    let (_, v) = call(&f.tls, Method::GET, &format!("/v2.5/agents/{ID}"), None).await;
    assert_eq!(v["results"]["regcount"], 2);
    // Delete over the TLS router.
    assert_eq!(call(&f.tls, Method::DELETE, &format!("/v2.5/agents/{ID}"), None).await.0, StatusCode::OK);
    f.nothing_stored();
    assert_eq!(call(&f.tls, Method::DELETE, &format!("/v2.5/agents/{ID}"), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn version_is_negotiable_and_unknown_versions_and_ids_are_refused() {
    let Some(f) = fixture() else { return };
    let (st, v) = call(&f.http, Method::GET, "/version", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["results"]["current_version"], "2.5");
    assert_refused(&call(&f.http, Method::POST, &format!("/v1.0/agents/{ID}"), Some(f.body().to_string().into_bytes())).await, StatusCode::BAD_REQUEST, "API version");
    assert_refused(&call(&f.http, Method::POST, "/v2.5/agents/a;b", Some(f.body().to_string().into_bytes())).await, StatusCode::BAD_REQUEST, "agent id");
    f.nothing_stored();
}

#[tokio::test]
async fn malformed_json_and_oversized_bodies_are_refused() {
    let Some(f) = fixture() else { return };
    let uri = format!("/v2.5/agents/{ID}");
    assert_refused(&call(&f.http, Method::POST, &uri, Some(b"{\"ek_tpm\": ".to_vec())).await, StatusCode::BAD_REQUEST, "malformed JSON");
    assert_refused(&call(&f.http, Method::POST, &uri, Some(b"{\"ek_tpm\": \"AA==\"}".to_vec())).await, StatusCode::BAD_REQUEST, "aik_tpm");
    let mut big = f.body();
    big["mtls_cert"] = json!("x".repeat(100 * 1024));
    assert_refused(&call(&f.http, Method::POST, &uri, Some(big.to_string().into_bytes())).await, StatusCode::PAYLOAD_TOO_LARGE, "exceeds 65536 bytes");
    f.nothing_stored();
}

#[tokio::test]
async fn bad_base64_and_wrong_tpm2b_sizes_name_the_field() {
    let Some(f) = fixture() else { return };
    let mut b = f.body();
    b["ek_tpm"] = json!("not base64!");
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ek_tpm is not valid base64");
    let mut b = f.body();
    b["ekcert"] = json!("%%%");
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ekcert is not valid base64");
    // TPM2B size larger than the data.
    let mut ek = f.v.ek_pub.clone();
    ek[1] = ek[1].wrapping_add(4);
    let mut b = f.body();
    b["ek_tpm"] = json!(b64(&ek));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ek_tpm is malformed");
    // Trailing bytes after the TPM2B.
    let mut ak = f.ak.to_tpm2b();
    ak.push(0);
    let mut b = f.body();
    b["aik_tpm"] = json!(b64(&ak));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "aik_tpm is malformed");
    // A certificate that is not DER.
    let mut b = f.body();
    b["ekcert"] = json!(b64(b"\x30\x03\x02\x01"));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ekcert is malformed");
    f.nothing_stored();
}

#[tokio::test]
async fn unknown_algorithms_and_wrong_key_kinds_are_refused() {
    let Some(f) = fixture() else { return };
    let mut ak = f.ak.to_tpm2b();
    ak[2..4].copy_from_slice(&0x9999u16.to_be_bytes()); // TPMT_PUBLIC.type
    let mut b = f.body();
    b["aik_tpm"] = json!(b64(&ak));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "TPMT_PUBLIC.type");
    let mut ak = f.ak.to_tpm2b();
    ak[4..6].copy_from_slice(&0x0777u16.to_be_bytes()); // nameAlg
    b["aik_tpm"] = json!(b64(&ak));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "nameAlg");
    // The EK offered as the AK: a decryption key, not a signing one.
    b["aik_tpm"] = json!(b64(&f.v.ek_pub));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "aik_tpm refused");
    // The AK offered as the EK.
    let mut b = f.body();
    b["ek_tpm"] = json!(b64(&f.ak.to_tpm2b()));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ek_tpm refused");
    // An AK that signs with SHA-1.
    let PublicKey::Ecc { .. } = &f.ak.key else { unreachable!() };
    let weak = Public::for_signing_key(&f.ak.key, SigScheme::Ecdsa, HashAlg::Sha1).unwrap();
    let mut b = f.body();
    b["aik_tpm"] = json!(b64(&weak.to_tpm2b()));
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "SHA-1");
    f.nothing_stored();
}

#[tokio::test]
async fn ek_certificates_unchained_expired_or_for_another_key_are_refused_with_the_reason() {
    let Some(untrusting) = fixture_with(false, false, pinned) else { return };
    assert_refused(&untrusting.register(&untrusting.body()).await, StatusCode::FORBIDDEN, "not chained to a trust anchor");
    untrusting.nothing_stored();

    let expired = fixture_with(true, false, far_future).unwrap();
    assert_refused(&expired.register(&expired.body()).await, StatusCode::FORBIDDEN, "expired");
    expired.nothing_stored();

    let f = fixture().unwrap();
    let mut ek = f.v.ek_pub.clone();
    let last = ek.len() - 1;
    ek[last] ^= 1; // another modulus
    let mut b = f.body();
    b["ek_tpm"] = json!(b64(&ek));
    assert_refused(&f.register(&b).await, StatusCode::FORBIDDEN, "the TPM's EK is");
    f.nothing_stored();
}

#[tokio::test]
async fn a_missing_ek_certificate_is_refused_unless_allowed() {
    let Some(f) = fixture() else { return };
    let mut b = f.body();
    b["ekcert"] = Value::Null;
    assert_refused(&f.register(&b).await, StatusCode::BAD_REQUEST, "ekcert is missing");
    f.nothing_stored();
    let lax = fixture_with(false, true, pinned).unwrap();
    let mut b = lax.body();
    b.as_object_mut().unwrap().remove("ekcert");
    let (st, v) = lax.register(&b).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(lax.store.registration(ID).unwrap().unwrap().ekcert, None);
}

#[tokio::test]
async fn a_wrong_auth_tag_removes_the_registration() {
    let Some(f) = fixture() else { return };
    assert_eq!(f.register(&f.body()).await.0, StatusCode::OK);
    let uri = format!("/v2.5/agents/{ID}/activate");
    assert_refused(&call(&f.http, Method::PUT, &uri, Some(br#"{"auth_tag":"zz"}"#.to_vec())).await, StatusCode::BAD_REQUEST, "96 hex characters");
    assert!(f.store.registration(ID).unwrap().is_some(), "a malformed tag is not an activation attempt");
    let wrong = "0".repeat(96);
    assert_refused(&call(&f.http, Method::PUT, &uri, Some(json!({"auth_tag": wrong}).to_string().into_bytes())).await, StatusCode::UNAUTHORIZED, "registration removed");
    f.nothing_stored();
    assert_refused(&call(&f.http, Method::PUT, &uri, Some(json!({"auth_tag": wrong}).to_string().into_bytes())).await, StatusCode::NOT_FOUND, "not registered");
}

#[tokio::test]
async fn re_registration_with_another_ak_ek_or_certificate_is_forbidden() {
    let Some(f) = fixture_with(true, true, pinned) else { return };
    f.enrol().await;
    let before = f.store.registration(ID).unwrap().unwrap();
    let mut b = f.body();
    b["aik_tpm"] = json!(b64(&software_ak().to_tpm2b()));
    assert_refused(&f.register(&b).await, StatusCode::FORBIDDEN, "different AK");
    let mut b = f.body();
    b["ekcert"] = Value::Null;
    assert_refused(&f.register(&b).await, StatusCode::FORBIDDEN, "different EK certificate");
    assert_eq!(f.store.registration(ID).unwrap().unwrap(), before, "refusals write nothing");
}

#[tokio::test]
async fn admin_endpoints_are_not_served_on_the_registration_port() {
    let Some(f) = fixture() else { return };
    f.enrol().await;
    assert_refused(&call(&f.http, Method::GET, "/v2.5/agents/", None).await, StatusCode::FORBIDDEN, "TLS port");
    assert_refused(&call(&f.http, Method::GET, &format!("/v2.5/agents/{ID}"), None).await, StatusCode::FORBIDDEN, "TLS port");
    assert_refused(&call(&f.http, Method::DELETE, &format!("/v2.5/agents/{ID}"), None).await, StatusCode::FORBIDDEN, "TLS port");
    assert!(f.store.registration(ID).unwrap().unwrap().active);
    assert_refused(&call(&f.http, Method::GET, "/nowhere", None).await, StatusCode::NOT_FOUND, "no such endpoint");
}
