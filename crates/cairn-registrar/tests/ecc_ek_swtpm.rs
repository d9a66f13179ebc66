//! An agent with an ECC P-256 EK (ECDH + KDFe MakeCredential) and no EK certificate, on a real
//! TPM (swtpm), against the in-process router with `accept_without_ek_cert`: the TPM activates
//! the blob, the auth_tag from the recovered secret activates the registration, and an AK made
//! under the EK but swapped at re-registration is refused. Also: with the option off the same
//! agent is refused and nothing is stored.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use cairn_core::credential::{keylime_auth_tag, MadeCredential};
use cairn_core::ekcert::TrustStore;
use cairn_registrar::{app, AppState, Port};
use cairn_store::{RegistrarStore, SqliteStore};
use cairn_tpm::swtpm::{Swtpm, SwtpmOptions};
use cairn_tpm::{AkAlg, AkSpec, EkKind, Tpm};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ID: &str = "ecc-agent-1";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn call(app: &Router, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn an_ecc_ek_without_certificate_enrols_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let swtpm = Swtpm::start(&dir.path().join("tpm"), SwtpmOptions::default()).unwrap();
    let spec = AkSpec { ek: EkKind::EccP256, ..AkSpec::new(AkAlg::EccP256Ecdsa) };
    let (ek, ak, other_ak) = {
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        let ek = tpm.ek(EkKind::EccP256).unwrap();
        let ak = tpm.load_or_create_ak(spec).unwrap();
        let other = tpm.load_or_create_ak(AkSpec { ek: EkKind::EccP256, ..AkSpec::new(AkAlg::Rsa2048Rsassa) }).unwrap();
        (ek, ak, other)
    };
    let body = json!({"ek_tpm": b64(&ek.public), "aik_tpm": b64(&ak.public), "ip": "127.0.0.1", "port": "9002"});
    let uri = format!("/v2.2/agents/{ID}");

    // Off by default: refused, nothing stored.
    let strict_store = Arc::new(SqliteStore::open(&dir.path().join("strict.sqlite")).unwrap());
    let strict = app(AppState::new(strict_store.clone(), TrustStore::new(), false, 1 << 20), Port::Registration);
    let (st, v) = call(&strict, Method::POST, &uri, body.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["status"].as_str().unwrap().contains("ekcert is missing"));
    assert!(strict_store.registration(ID).unwrap().is_none());

    let store = Arc::new(SqliteStore::open(&dir.path().join("r.sqlite")).unwrap());
    let state = AppState::new(store.clone(), TrustStore::new(), true, 1 << 20);
    let (http, tls) = (app(state.clone(), Port::Registration), app(state, Port::Tls));
    let (st, v) = call(&http, Method::POST, &uri, body.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let blob = base64::engine::general_purpose::STANDARD.decode(v["results"]["blob"].as_str().unwrap()).unwrap();
    let made = MadeCredential::from_tpm2_tools(&blob).unwrap();
    assert_eq!(made.encrypted_secret.len(), 2 + 2 + 32 + 2 + 32, "an ephemeral P-256 point");
    let secret = Tpm::open(&swtpm.tcti()).unwrap().activate_credential(&ak, &ek, &made.id_object, &made.encrypted_secret).unwrap();
    assert_eq!(secret.len(), 32);
    let (st, v) = call(&http, Method::PUT, &format!("{uri}/activate"), json!({"auth_tag": keylime_auth_tag(&secret, ID)})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let req = Request::builder().uri(&uri).body(Body::empty()).unwrap();
    let resp = tls.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let swapped = json!({"ek_tpm": b64(&ek.public), "aik_tpm": b64(&other_ak.public)});
    let (st, v) = call(&http, Method::POST, &uri, swapped).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(v["status"].as_str().unwrap().contains("different AK"));
    assert_eq!(store.registration(ID).unwrap().unwrap().aik_tpm, ak.public);
}
