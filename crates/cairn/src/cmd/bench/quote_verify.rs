//! `cairn bench quote-verify`: how many quotes one core checks per second, and how close the whole
//! check is to the bare signature operation it cannot avoid.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_core::crypto::VerifyingKey;
use cairn_core::quote::{verify_quote, Expected, QuoteParts};
use cairn_core::tpm::{Public, Signature};
use clap::Args;
use serde_json::json;

use super::quote_material::{make, Family};

/// Arguments.
#[derive(Args)]
pub struct QuoteVerifyArgs {
    /// Seconds to spend on each measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

fn rate(seconds: f64, mut f: impl FnMut() -> bool) -> anyhow::Result<(f64, u64)> {
    let budget = Duration::from_secs_f64(seconds);
    // Warm up.
    for _ in 0..50 {
        if !f() {
            bail!("benchmark quote did not verify");
        }
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..50 {
            black_box(f());
        }
        n += 50;
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

impl QuoteVerifyArgs {
    /// Runs the benchmark.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut results = serde_json::Map::new();
        for family in [Family::Rsa2048, Family::EcdsaP256, Family::Sm2] {
            eprintln!("measuring {} …", family.name());
            let m = make(family)?;
            let key = VerifyingKey::from_public(&Public::parse_tpm2b(&m.ak)?);
            let sig = Signature::parse(&m.signature)?;
            let (bare, _) = rate(self.seconds, || key.verify(black_box(&m.message), &sig).is_ok())?;
            let parts = QuoteParts { message: &m.message, signature: &m.signature, pcrs: &m.pcrs };
            let (full, n) = rate(self.seconds, || verify_quote(&key, black_box(parts), Expected::nonce(&m.nonce)).is_ok())?;
            results.insert(
                family.name().into(),
                json!({
                    "full_checks_per_sec": full.round(),
                    "bare_signature_checks_per_sec": bare.round(),
                    "us_per_full_check": (1e6 / full * 100.0).round() / 100.0,
                    "us_per_bare_signature_check": (1e6 / bare * 100.0).round() / 100.0,
                    "full_over_bare": (bare / full * 1000.0).round() / 1000.0,
                    "iterations": n,
                }),
            );
        }
        let out = json!({
            "benchmark": "quote-verify",
            "threads": 1,
            "quote": "sha256 PCRs 0-10,16; 20-byte nonce; parse + signature + nonce + selection + pcrDigest",
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(ExitCode::SUCCESS)
    }
}
