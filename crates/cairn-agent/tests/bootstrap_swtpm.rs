//! Keylime's bootstrap-key protocol against a real agent on a real swtpm, over HTTPS. The test
//! plays the tenant and the verifier with `cairn_core::bootstrap`: it fetches the node key from
//! `/keys/pubkey`, sends U with an encrypted payload and then V (or V first), and checks what the
//! agent wrote in its state directory: the payload byte for byte, a zip's files, and the marker its
//! `autorun.sh` leaves. Wrong halves fail the auth tag with a clear error and leave nothing
//! written; `/keys/verify` answers HMAC(K, challenge) only once K exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_agent::payload::PayloadLayout;
use cairn_agent::Agent;
use cairn_core::bootstrap::{auth_tag, check_challenge_hmac, encrypt_payload, split, wrap_for_nk, BootstrapKey, KeyHalf};
use common::{client, get, Node};
use serde_json::{json, Value};

/// Unmounts the agent's payload tmpfs (if it made one) before the scratch directory is removed.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

struct Tenant {
    http: reqwest::Client,
    base: String,
    nk: String,
}

impl Tenant {
    async fn new(agent: &Agent) -> Tenant {
        let http = client(&agent.mtls_cert);
        let base = format!("https://127.0.0.1:{}/v2.5", agent.addr.port());
        let (status, body) = get(&http, &format!("{base}/keys/pubkey")).await;
        assert_eq!(status, 200, "{body}");
        let nk = body["results"]["pubkey"].as_str().unwrap().to_owned();
        assert_eq!(nk, agent.nk_pem);
        Tenant { http, base, nk }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.post(format!("{}/{path}", self.base)).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn send_u(&self, u: &KeyHalf, tag: &str, payload: Option<&str>) -> (u16, Value) {
        let mut body = json!({"encrypted_key": wrap_for_nk(&self.nk, u).unwrap(), "auth_tag": tag});
        if let Some(p) = payload {
            body["payload"] = json!(p);
        }
        self.post("keys/ukey", &body).await
    }

    async fn send_v(&self, v: &KeyHalf) -> (u16, Value) {
        self.post("keys/vkey", &json!({"encrypted_key": wrap_for_nk(&self.nk, v).unwrap()})).await
    }

    async fn verify(&self, challenge: &str) -> (u16, Value) {
        get(&self.http, &format!("{}/keys/verify?challenge={challenge}", self.base)).await
    }
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The file's contents once it exists (the autorun runs in the background).
async fn wait_for(path: &Path) -> Vec<u8> {
    for _ in 0..600 {
        if let Ok(bytes) = std::fs::read(path) {
            if bytes.ends_with(b"END\n") {
                return bytes;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

fn is_tmpfs_mount(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(dir) && l.split(" - ").nth(1).is_some_and(|t| t.starts_with("tmpfs ")))
}

fn status_text(body: &Value) -> &str {
    body["status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_payload_arrives_after_both_halves_and_its_autorun_runs() {
    let node = Node::new();
    let agent = Agent::start(node.config()).await.unwrap();
    let layout: PayloadLayout = agent.payload.clone();
    assert_eq!(layout, PayloadLayout::under(&node.path("state")));
    let _unmount = Unmount(layout.dir.clone());
    let tenant = Tenant::new(&agent).await;

    // Before any half: no K.
    let (status, body) = tenant.verify("abc123").await;
    assert_eq!(status, 400, "{body}");
    assert!(status_text(&body).contains("no bootstrap key yet"), "{body}");

    let secret: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let autorun = b"#!/bin/sh\nset -e\n\
        { pwd; od -An -tx1 secret.bin | head -c 12; echo; echo \"$CAIRN_PAYLOAD_DIR\"; echo END; } > ../autorun-marker\n";
    let zip = zip_of(&[("secret.bin", &secret), ("conf/node.toml", b"role = \"db\"\n"), ("autorun.sh", autorun)]);
    let k = BootstrapKey::generate().unwrap();
    let (u, v) = split(&k).unwrap();
    let payload = encrypt_payload(&k, &zip).unwrap();

    let (status, body) = tenant.send_u(&u, &auth_tag(&k, &agent.uuid), Some(&payload)).await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(200)), "{body}");
    // Only U: no K, no payload.
    let (status, body) = tenant.verify("abc123").await;
    assert_eq!(status, 400, "{body}");
    assert!(!layout.payload.exists() && !layout.unzipped.exists());

    let (status, body) = tenant.send_v(&v).await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(200)), "{body}");
    // The payload is there byte for byte, unpacked, and its autorun ran in the unpacked directory.
    assert_eq!(std::fs::read(&layout.payload).unwrap(), zip);
    assert_eq!(std::fs::read(layout.unzipped.join("secret.bin")).unwrap(), secret);
    assert_eq!(std::fs::read(layout.unzipped.join("conf/node.toml")).unwrap(), b"role = \"db\"\n");
    let marker = String::from_utf8(wait_for(&layout.dir.join("autorun-marker")).await).unwrap();
    let lines: Vec<&str> = marker.lines().collect();
    assert_eq!(lines[0], layout.unzipped.to_str().unwrap(), "{marker}");
    assert_eq!(lines[1].trim(), "00 01 02 03", "{marker}");
    assert_eq!(lines[2], layout.dir.to_str().unwrap(), "{marker}");
    // As root the agent mounts a tmpfs; otherwise the payload is in a private directory on disk.
    if rustix::process::geteuid().is_root() {
        assert!(is_tmpfs_mount(&layout.dir), "{} is not a tmpfs mount", layout.dir.display());
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&layout.dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&layout.payload).unwrap().permissions().mode() & 0o777, 0o600);

    // The tenant's challenge: HMAC(K, C).
    let (status, body) = tenant.verify("Zq9F3kLm0PxW7Rt2Yb5N").await;
    assert_eq!(status, 200, "{body}");
    check_challenge_hmac(&k, "Zq9F3kLm0PxW7Rt2Yb5N", body["results"]["hmac"].as_str().unwrap()).unwrap();
    for (bad, why) in [("", "challenge is missing"), ("a%20b", "letters and digits")] {
        let (status, body) = tenant.verify(bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(status_text(&body).contains(why), "{body}");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_halves_fail_the_auth_tag_write_nothing_and_a_correct_pair_follows() {
    let node = Node::new();
    let agent = Agent::start(node.config()).await.unwrap();
    let layout = agent.payload.clone();
    let _unmount = Unmount(layout.dir.clone());
    let tenant = Tenant::new(&agent).await;

    let plain = b"LUKS passphrase: correct horse battery staple\n".to_vec();
    let k = BootstrapKey::generate().unwrap();
    let (u, v) = split(&k).unwrap();
    let tag = auth_tag(&k, &agent.uuid);
    let payload = encrypt_payload(&k, &plain).unwrap();
    let (wrong_u, wrong_v) = split(&BootstrapKey::generate().unwrap()).unwrap();

    // A wrong U: the pair is refused on the request that completes it, and nothing is written.
    assert_eq!(tenant.send_u(&wrong_u, &tag, Some(&payload)).await.0, 200);
    let (status, body) = tenant.send_v(&v).await;
    assert_eq!(status, 400, "{body}");
    assert!(status_text(&body).contains("auth_tag: HMAC-SHA384(K, agent uuid) does not match"), "{body}");
    assert!(status_text(&body).contains("send U and V again"), "{body}");
    assert!(!layout.payload.exists());
    assert_eq!(tenant.verify("abc").await.0, 400);

    // Both halves were dropped: V alone now waits for a U; a wrong V completing it is refused.
    assert_eq!(tenant.send_u(&u, &tag, Some(&payload)).await.0, 200);
    let (status, body) = tenant.send_v(&wrong_v).await;
    assert_eq!(status, 400, "{body}");
    assert!(status_text(&body).contains("auth_tag"), "{body}");
    assert!(!layout.payload.exists());
    assert_eq!(tenant.verify("abc").await.0, 400);

    // A tag made for another agent fails the same way.
    assert_eq!(tenant.send_u(&u, &auth_tag(&k, "another-agent"), Some(&payload)).await.0, 200);
    assert_eq!(tenant.send_v(&v).await.0, 400);
    assert!(!layout.payload.exists());

    // Malformed fields are refused at once, naming them.
    let other_nk = aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let other_spki = aws_lc_rs::encoding::AsDer::as_der(&other_nk.public_key()).unwrap();
    let other_pem = cairn_core::crypto::spki::pem_encode("PUBLIC KEY", other_spki.as_ref());
    let to_other = wrap_for_nk(&other_pem, &u).unwrap();
    let good_u = wrap_for_nk(&tenant.nk, &u).unwrap();
    for (body, why) in [
        (json!({"encrypted_key": to_other, "auth_tag": tag}), "U: encrypted_key: not RSA-OAEP"),
        (json!({"encrypted_key": "%%%", "auth_tag": tag}), "U: encrypted_key: not base64"),
        (json!({"encrypted_key": good_u, "auth_tag": "beef"}), "U: auth_tag: 2 bytes, but 48"),
        (json!({"encrypted_key": good_u, "auth_tag": tag, "payload": "AAAA"}), "U: payload: 3 bytes"),
        (json!({"encrypted_key": good_u}), "ukey body"),
    ] {
        let (status, resp) = tenant.post("keys/ukey", &body).await;
        assert_eq!(status, 400, "{resp}");
        assert!(status_text(&resp).contains(why), "{why}: {resp}");
    }
    let (status, resp) = tenant.post("keys/vkey", &json!({"encrypted_key": to_other})).await;
    assert_eq!(status, 400, "{resp}");
    assert!(status_text(&resp).contains("V: encrypted_key: not RSA-OAEP"), "{resp}");

    // The right pair, V first this time: a plain payload arrives byte for byte, nothing unpacked.
    assert_eq!(tenant.send_v(&v).await.0, 200);
    assert!(!layout.payload.exists());
    let (status, body) = tenant.send_u(&u, &tag, Some(&payload)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(&layout.payload).unwrap(), plain);
    assert!(!layout.unzipped.exists());
    let (status, body) = tenant.verify("abc").await;
    assert_eq!(status, 200, "{body}");
    check_challenge_hmac(&k, "abc", body["results"]["hmac"].as_str().unwrap()).unwrap();
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_u_gives_no_key_and_no_payload() {
    let node = Node::new();
    let agent = Agent::start(node.config()).await.unwrap();
    let layout = agent.payload.clone();
    let _unmount = Unmount(layout.dir.clone());
    let tenant = Tenant::new(&agent).await;
    let k = BootstrapKey::generate().unwrap();
    let (u, _v) = split(&k).unwrap();
    let payload = encrypt_payload(&k, &zip_of(&[("autorun.sh", b"echo END > ../ran\n")])).unwrap();
    let (status, body) = tenant.send_u(&u, &auth_tag(&k, &agent.uuid), Some(&payload)).await;
    assert_eq!(status, 200, "{body}");
    // U again (a tenant retrying) still makes no K.
    assert_eq!(tenant.send_u(&u, &auth_tag(&k, &agent.uuid), Some(&payload)).await.0, 200);
    let (status, body) = tenant.verify("abc").await;
    assert_eq!(status, 400, "{body}");
    assert!(status_text(&body).contains("no bootstrap key yet"), "{body}");
    assert!(!layout.dir.exists(), "nothing is prepared before K exists");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v_sent_again_for_the_held_key_does_not_spoil_the_next_pair() {
    let node = Node::new();
    let agent = Agent::start(node.config()).await.unwrap();
    let layout = agent.payload.clone();
    let _unmount = Unmount(layout.dir.clone());
    let tenant = Tenant::new(&agent).await;
    let k1 = BootstrapKey::generate().unwrap();
    let (u1, v1) = split(&k1).unwrap();
    assert_eq!(tenant.send_u(&u1, &auth_tag(&k1, &agent.uuid), Some(&encrypt_payload(&k1, b"first").unwrap())).await.0, 200);
    assert_eq!(tenant.send_v(&v1).await.0, 200);
    assert_eq!(std::fs::read(&layout.payload).unwrap(), b"first");

    // The verifier attests the node anew (a reactivation) and sends the same V again: no new half.
    let (status, body) = tenant.send_v(&v1).await;
    assert_eq!(status, 200, "{body}");
    // The tenant's next key: its U meets no stale V, and the pair completes.
    let k2 = BootstrapKey::generate().unwrap();
    let (u2, v2) = split(&k2).unwrap();
    let (status, body) = tenant.send_u(&u2, &auth_tag(&k2, &agent.uuid), Some(&encrypt_payload(&k2, b"second").unwrap())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(&layout.payload).unwrap(), b"first", "U alone changes nothing");
    let (status, body) = tenant.send_v(&v2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(&layout.payload).unwrap(), b"second");
    let (status, body) = tenant.verify("abc").await;
    assert_eq!(status, 200, "{body}");
    check_challenge_hmac(&k2, "abc", body["results"]["hmac"].as_str().unwrap()).unwrap();
    agent.stop().await;
}
