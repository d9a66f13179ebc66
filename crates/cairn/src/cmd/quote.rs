//! `cairn quote verify`: check a quote the way the verifier does, from files.
//!
//! Exit codes are a contract: 0 = the quote is valid, 1 = it is not (the failed check is named on
//! stderr and in `--json`), 2 = usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_core::crypto::{spki, VerifyingKey};
use cairn_core::quote::{decode_quote_string, verify_quote, Expected, Nonce, QuoteParts, VerifiedQuote};
use cairn_core::tpm::Public;
use cairn_core::HashAlg;
use clap::{Args, Subcommand};
use serde_json::json;

use super::read;

/// Quote commands.
#[derive(Subcommand)]
pub enum QuoteCommand {
    /// Verify a quote: signature with the AK, nonce, PCR selection and digest.
    ///
    /// Exit status: 0 valid, 1 invalid (reason on stderr and in --json), 2 usage or I/O error.
    Verify(VerifyArgs),
}

/// Arguments of `cairn quote verify`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("nonce_src").required(true).args(["nonce", "nonce_hex"]))]
pub struct VerifyArgs {
    /// The AK public key: PEM (SubjectPublicKeyInfo) or TPM2B_PUBLIC (as tpm2_createak -u writes).
    #[arg(long, value_name = "FILE")]
    ak: PathBuf,
    /// TPMS_ATTEST bytes (tpm2_quote -m).
    #[arg(long, value_name = "FILE", required_unless_present = "quote_string")]
    message: Option<PathBuf>,
    /// TPMT_SIGNATURE bytes (tpm2_quote -s).
    #[arg(long, value_name = "FILE", required_unless_present = "quote_string")]
    signature: Option<PathBuf>,
    /// PCR values in tpm2-tools' serialized layout (tpm2_quote -o).
    #[arg(long, value_name = "FILE", required_unless_present = "quote_string")]
    pcrs: Option<PathBuf>,
    /// A file holding Keylime's quote string `r<b64>:<b64>:<b64>`, instead of the three files.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["message", "signature", "pcrs"])]
    quote_string: Option<PathBuf>,
    /// The nonce as the verifier sent it (its bytes are the expected extraData).
    #[arg(long, value_name = "TEXT")]
    nonce: Option<String>,
    /// The nonce as raw bytes, in hex.
    #[arg(long, value_name = "HEX")]
    nonce_hex: Option<String>,
    /// Require this signature hash (sha1, sha256, sha384, sha512, sm3_256).
    #[arg(long, value_name = "ALG")]
    hash: Option<String>,
    /// Require the TPM clock's `safe` flag.
    #[arg(long)]
    require_safe: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl QuoteCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            QuoteCommand::Verify(a) => a.run(),
        }
    }
}

/// Loads an AK from PEM or TPM2B_PUBLIC bytes.
pub fn load_ak(path: &std::path::Path) -> anyhow::Result<VerifyingKey> {
    let bytes = read(path)?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if text.contains("-----BEGIN") {
            let key = spki::from_pem(text).with_context(|| format!("{}: not a usable PEM public key", path.display()))?;
            return Ok(VerifyingKey::from_key(key));
        }
    }
    let public = Public::parse_tpm2b(&bytes)
        .with_context(|| format!("{}: neither PEM nor TPM2B_PUBLIC", path.display()))?;
    Ok(VerifyingKey::from_public(&public))
}

impl VerifyArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let ak = load_ak(&self.ak)?;
        let nonce = match (&self.nonce, &self.nonce_hex) {
            (Some(t), _) => Nonce::from_text(t)?,
            (None, Some(h)) => Nonce::from_hex(h)?,
            (None, None) => bail!("give --nonce or --nonce-hex"),
        };
        let hash = match &self.hash {
            Some(h) => Some(HashAlg::from_name(h).with_context(|| format!("--hash: unknown algorithm {h:?}"))?),
            None => None,
        };
        let (message, signature, pcrs) = match &self.quote_string {
            Some(p) => {
                let text = String::from_utf8(read(p)?).with_context(|| format!("{}: not text", p.display()))?;
                decode_quote_string(&text).with_context(|| format!("{}: not a Keylime quote string", p.display()))?
            }
            None => {
                let need = |o: &Option<PathBuf>, flag: &str| o.clone().with_context(|| format!("{flag} is required"));
                (read(&need(&self.message, "--message")?)?, read(&need(&self.signature, "--signature")?)?, read(&need(&self.pcrs, "--pcrs")?)?)
            }
        };
        let expected = Expected { nonce: nonce.as_bytes(), hash, previous_clock: None, require_safe: self.require_safe };
        let parts = QuoteParts { message: &message, signature: &signature, pcrs: &pcrs };
        match verify_quote(&ak, parts, expected) {
            Ok(q) => {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&verified_json(&q, ak.key_name()))?);
                } else {
                    print_verified(&q, ak.key_name());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(f) => {
                eprintln!("quote invalid ({}): {f}", f.check());
                if self.json {
                    let j = json!({ "valid": false, "check": f.check(), "reason": f.to_string() });
                    println!("{}", serde_json::to_string_pretty(&j)?);
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// JSON view of a verified quote.
pub fn verified_json(q: &VerifiedQuote, key_name: &str) -> serde_json::Value {
    let mut banks = serde_json::Map::new();
    for (alg, pcr, v) in q.pcrs.iter() {
        let bank = banks.entry(alg.name()).or_insert_with(|| json!({}));
        bank[pcr.to_string()] = json!(v.to_hex());
    }
    let c = q.clock();
    json!({
        "valid": true,
        "ak": key_name,
        "signature": { "scheme": q.signature.scheme.name(), "hash": q.signature.hash.name() },
        "extra_data": hex::encode(&q.attest.extra_data),
        "clock": { "clock": c.clock, "reset_count": c.reset_count, "restart_count": c.restart_count, "safe": c.safe },
        "firmware_version": format!("{:016x}", q.attest.firmware_version),
        "pcrs": banks,
    })
}

fn print_verified(q: &VerifiedQuote, key_name: &str) {
    let c = q.clock();
    println!("quote valid: {} {}/{} signature by a {key_name} AK", q.pcrs.selection(), q.signature.scheme, q.signature.hash);
    println!("  nonce (extraData): {}", hex::encode(&q.attest.extra_data));
    println!("  clock {} ms, resets {}, restarts {}, safe {}", c.clock, c.reset_count, c.restart_count, c.safe);
    for (alg, pcr, v) in q.pcrs.iter() {
        println!("  {alg}:{pcr:<2} {v}");
    }
}
