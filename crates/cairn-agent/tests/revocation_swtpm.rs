//! Revocation notifications to a real agent on a real swtpm, over mutual TLS: a message signed by
//! the configured revocation key (given to the agent as an X.509 certificate made by the openssl
//! command, or as a public key) runs the operator's action scripts — real shell scripts that
//! record their environment and stdin — with the message; messages signed by another key,
//! malformed bodies, and every message to an agent without a revocation key are refused, and no
//! script runs for them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_agent::Agent;
use cairn_core::revocation::{sign, sign_text, EmbeddedJson, RevocationKeySize, RevocationMessage, RevocationSigner, REVOCATION_TYPE};
use common::{client_ca, mtls_client, Node};

/// A recording action: one block per run, ended by `END`.
fn write_recorder(actions: &Path, record: &Path) {
    std::fs::create_dir_all(actions).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         {{ printf 'id=%s ip=%s port=%s event=%s severity=%s self=%s\\n' \"$CAIRN_REVOKED_AGENT_ID\" \"$CAIRN_REVOKED_IP\" \
         \"$CAIRN_REVOKED_PORT\" \"$CAIRN_REVOCATION_EVENT_ID\" \"$CAIRN_REVOCATION_SEVERITY\" \"$CAIRN_REVOKED_SELF\"; \
         cat; printf '\\nEND\\n'; }} >> '{}'\n",
        record.display()
    );
    let path = actions.join("20-record");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A failing action before it does not stop it.
    let fails = actions.join("10-fails");
    std::fs::write(&fails, "#!/bin/sh\necho 'this action fails' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&fails, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The recorded blocks, once there are `n` of them.
async fn wait_for_runs(record: &Path, n: usize) -> Vec<String> {
    for _ in 0..1200 {
        let text = std::fs::read_to_string(record).unwrap_or_default();
        // Only blocks whose END is written are complete (a run writes in several steps).
        let complete = text.rfind("END\n").map_or("", |end| &text[..end + 4]);
        let blocks: Vec<String> = complete.split_terminator("END\n").map(str::to_owned).collect();
        if blocks.len() >= n {
            return blocks;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the action did not run {n} times: {:?}", std::fs::read_to_string(record));
}

fn message(agent_id: &str) -> RevocationMessage {
    RevocationMessage {
        kind: REVOCATION_TYPE.into(),
        ip: "192.0.2.9".into(),
        agent_id: agent_id.into(),
        port: 9002,
        tpm_policy: Some(EmbeddedJson::Text("{\"mask\": \"0x400\"}".into())),
        meta_data: Some(EmbeddedJson::Text("{}".into())),
        event_time: "Mon Aug  3 12:00:00 2026".into(),
        event_id: Some("ima.validation.ima-ng.not_in_allowlist".into()),
        severity_label: Some("emergency".into()),
        context: Some(EmbeddedJson::text_of(&serde_json::json!({"message": "File not found in allowlist: /root/evil"}))),
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let resp = client.post(url).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_revocations_run_the_actions_and_others_are_refused() {
    let node = Node::new();
    let signer = RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap();
    let key = key_file(node.dir.path(), "revocation.key", &signer.to_pkcs8_pem().unwrap());
    // The agent is given a certificate of the revocation key, made by openssl.
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(&key)
        .args(["-subj", "/CN=revocation", "-days", "2", "-out"])
        .arg(node.path("revocation.crt"))
        .output()
        .expect("the openssl command");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (client_cert, client_key) = client_ca(&node.path("tls"));
    let record = node.path("record.txt");
    let mut config = node.config();
    // The default actions directory: <state_dir>/revocation_actions.
    write_recorder(&config.state_dir.join("revocation_actions"), &record);
    config.revocation_cert = Some(node.path("revocation.crt"));
    config.client_ca = Some(node.path("tls/ca.crt"));

    let agent = Agent::start(config).await.unwrap();
    let url = format!("https://127.0.0.1:{}/v2.5/notifications/revocation", agent.addr.port());
    let http = mtls_client(&agent.mtls_cert, &client_cert, &client_key);

    // Without a client certificate there is no connection at all.
    let bare = common::client(&agent.mtls_cert);
    assert!(bare.post(&url).json(&serde_json::json!({})).send().await.is_err());

    // Refusals, none of which runs anything.
    let other = RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap();
    let forged = sign(&other, &message("node-forged")).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&forged).unwrap()).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(403)), "{body}");
    assert!(body["status"].as_str().unwrap().contains("signature"), "{body}");
    let (status, body) = post(&http, &url, &serde_json::json!({"msg": forged.msg, "signature": ""})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["status"].as_str().unwrap().contains("not signed"), "{body}");
    let (status, body) = post(&http, &url, &serde_json::json!({"msg": forged.msg, "signature": "%%%"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["status"].as_str().unwrap().contains("base64"), "{body}");
    let (status, body) = post(&http, &url, &serde_json::json!({"message": "no msg"})).await;
    assert_eq!(status, 400, "{body}");
    let signed_but_odd = sign_text(&signer, "{\"type\": \"revocation\", \"ip\": \"192.0.2.9\"}".into()).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&signed_but_odd).unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["status"].as_str().unwrap().contains("agent_id: missing"), "{body}");
    let resp = http.post(&url).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // A message signed by the revocation key: 200 at once, then the actions run with it.
    let good = sign(&signer, &message("node-7")).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&good).unwrap()).await;
    assert_eq!((status, body["code"].as_u64(), body["status"].as_str()), (200, Some(200), Some("Success")), "{body}");
    let runs = wait_for_runs(&record, 1).await;
    let (env, stdin) = runs[0].split_once('\n').unwrap();
    assert_eq!(env, "id=node-7 ip=192.0.2.9 port=9002 event=ima.validation.ima-ng.not_in_allowlist severity=emergency self=0");
    assert_eq!(stdin.trim_end_matches('\n'), good.msg, "the action reads the message exactly as signed");

    // A message about this agent itself is acted on too, and says so.
    let about_me = sign(&signer, &message(&agent.uuid)).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&about_me).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let runs = wait_for_runs(&record, 2).await;
    assert!(runs[1].starts_with(&format!("id={} ", agent.uuid)), "{}", runs[1]);
    assert!(runs[1].lines().next().unwrap().ends_with("self=1"), "{}", runs[1]);
    // Exactly the two verified messages ran the recorder; the refused ones did not.
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(!std::fs::read_to_string(&record).unwrap().contains("node-forged"));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_revocation_cert_every_notification_is_refused() {
    let node = Node::new();
    let signer = RevocationSigner::generate_sized(RevocationKeySize::Rsa2048).unwrap();
    let (client_cert, client_key) = client_ca(&node.path("tls"));
    let record = node.path("record.txt");
    let actions = node.path("actions");
    write_recorder(&actions, &record);
    let mut config = node.config();
    config.revocation_actions_dir = actions;
    config.client_ca = Some(node.path("tls/ca.crt"));

    let agent = Agent::start(config.clone()).await.unwrap();
    let url = format!("https://127.0.0.1:{}/v2.5/notifications/revocation", agent.addr.port());
    let http = mtls_client(&agent.mtls_cert, &client_cert, &client_key);
    let first = sign(&signer, &message("node-first")).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&first).unwrap()).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(403)), "{body}");
    assert!(body["status"].as_str().unwrap().contains("no revocation_cert"), "{body}");
    agent.stop().await;

    // The same agent restarted with the key as a PEM public key acts on the next message; the
    // refused one never ran.
    config.revocation_cert = Some(key_file(node.dir.path(), "revocation.pub.pem", signer.public_key_pem()));
    let agent = Agent::start(config).await.unwrap();
    let url = format!("https://127.0.0.1:{}/v2.5/notifications/revocation", agent.addr.port());
    let http = mtls_client(&agent.mtls_cert, &client_cert, &client_key);
    let second = sign(&signer, &message("node-second")).unwrap();
    let (status, body) = post(&http, &url, &serde_json::to_value(&second).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let runs = wait_for_runs(&record, 1).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].starts_with("id=node-second "), "{}", runs[0]);
    agent.stop().await;

    // A revocation_cert that is not a usable key stops the agent at start, naming the file.
    let mut bad = node.config();
    bad.revocation_cert = Some(key_file(node.dir.path(), "not-a-key.pem", "hello"));
    let e = Agent::start(bad).await.unwrap_err().to_string();
    assert!(e.contains("revocation_cert") && e.contains("not-a-key.pem"), "{e}");
}
