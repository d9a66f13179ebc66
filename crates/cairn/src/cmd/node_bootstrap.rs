//! The tenant's side of the bootstrap-key protocol (Keylime's U/V split), for `cairn node add
//! --payload`: check the agent's identity quote against the registered AK (PCR 16 binds the NK
//! the reply carries), make K, encrypt the payload under K, send U (wrapped to the NK) with the
//! payload and the auth tag to the agent, and hand V to the verifier, which releases it only after
//! the node's first passing round. `wait_released` then asks the agent to prove it holds K.
//! K stays in memory (zeroed on drop) unless the tenant asks to keep it in a 0600 file.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::attest::judge_identity;
use cairn_core::bootstrap::{auth_tag, check_challenge_hmac, encrypt_payload, split, wrap_for_nk, BootstrapKey};
use cairn_core::crypto::VerifyingKey;
use cairn_core::tpm::Public;

use super::node::AgentEndpoint;

/// What was sent to the agent: the key (kept for the release check) and V for the verifier.
pub struct SentU {
    /// K.
    pub k: BootstrapKey,
    /// V, base64, for the verifier's add request.
    pub v_b64: String,
}

/// A fresh 20-character alphanumeric nonce.
fn nonce() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::new();
    while out.len() < 20 {
        let mut buf = [0u8; 32];
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| anyhow::anyhow!("no randomness"))?;
        out.extend(buf.iter().filter(|b| **b < 248).map(|b| char::from(ALPHABET[usize::from(*b % 62)])).take(20 - out.len()));
    }
    Ok(out)
}

/// Checks the identity quote, then sends U, the auth tag and the encrypted payload to the agent.
pub fn send_u(agent: &AgentEndpoint, uuid: &str, ak_tpm_b64: &str, payload: &[u8]) -> anyhow::Result<SentU> {
    let ak = Public::parse_tpm2b(&B64.decode(ak_tpm_b64.trim()).context("the registrar's AK is not base64")?)
        .context("the registrar's AK is not a TPM2B_PUBLIC")?;
    let (_, hash) = ak.signing_scheme().context("the registrar's AK has no signing scheme")?;
    let n = nonce()?;
    let reply = agent.get(&format!("/quotes/identity?nonce={n}"))?.map_err(|why| anyhow::anyhow!("identity quote: {why}"))?;
    let quote = reply["quote"].as_str().context("identity quote: no quote in the reply")?;
    let nk = reply["pubkey"].as_str().context("identity quote: no NK (pubkey) in the reply")?;
    if let Err(failures) = judge_identity(&VerifyingKey::from_public(&ak), hash, n.as_bytes(), quote, nk) {
        let why: Vec<String> = failures.iter().map(|f| format!("{}: {f}", f.check())).collect();
        bail!("the agent's identity quote does not check out, nothing was sent: {}", why.join("; "));
    }
    let k = BootstrapKey::generate()?;
    let (u, v) = split(&k)?;
    let body = serde_json::json!({
        "encrypted_key": wrap_for_nk(nk, &u)?,
        "auth_tag": auth_tag(&k, uuid),
        "payload": encrypt_payload(&k, payload)?,
    });
    agent.post("/keys/ukey", &body)?.map_err(|why| anyhow::anyhow!("the agent refused U: {why}"))?;
    Ok(SentU { k, v_b64: v.to_base64() })
}

/// Whether the agent proves it holds `k` now.
pub fn verify_once(agent: &AgentEndpoint, k: &BootstrapKey) -> anyhow::Result<bool> {
    let challenge = nonce()?;
    match agent.get(&format!("/keys/verify?challenge={challenge}"))? {
        Ok(r) => {
            let hmac = r["hmac"].as_str().context("/keys/verify: no hmac in the reply")?;
            Ok(check_challenge_hmac(k, &challenge, hmac).is_ok())
        }
        Err(_) => Ok(false),
    }
}

/// Waits until the agent proves it holds `k` (V was released and the auth tag checked).
pub fn wait_released(agent: &AgentEndpoint, k: &BootstrapKey, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if verify_once(agent, k)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the agent did not receive the key within {} s: is the node attesting? (`cairn node status`)", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Keeps K in a new 0600 file.
pub fn save_key(path: &Path, k: &BootstrapKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    f.write_all(B64.encode(k.as_bytes()).as_bytes())?;
    Ok(())
}

/// Reads K from a file written by [`save_key`].
pub fn load_key(path: &Path) -> anyhow::Result<BootstrapKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = B64.decode(text.trim()).with_context(|| format!("{} is not a key file", path.display()))?;
    Ok(BootstrapKey::from_bytes(&bytes)?)
}
