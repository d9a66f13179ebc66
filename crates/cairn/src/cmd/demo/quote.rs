//! `cairn demo --quote-only`: one quote end to end on real parts — a fresh swtpm manufactured
//! with EK certificates from a local CA, an AK created under the EK, a quote over a fresh nonce,
//! and its check in `cairn-core`, plus the same quote rejected once tampered with.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cairn_core::crypto::VerifyingKey;
use cairn_core::pcr::PcrSelection;
use cairn_core::quote::{verify_parsed, verify_quote, Expected, QuoteParts};
use cairn_core::tpm::{encode_pcr_blob, Attest, Public, Signature};
use cairn_core::HashAlg;
use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};
use cairn_tpm::{AkSpec, EkKind};
use clap::Args;

use super::super::quote::verified_json;
use super::super::tpm::{ak_alg, open};

/// Arguments of the one-quote demo.
#[derive(Args)]
pub struct QuoteDemoArgs {
    /// Keep the demo's state (local CA, swtpm state) here instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// AK type: rsa2048, ecc256, sm2, rsa2048-rsapss, …
    #[arg(long, default_value = "rsa2048")]
    ak_alg: String,
    /// PCRs to quote, in tpm2-tools syntax.
    #[arg(long, default_value = "sha1:10+sha256:0,1,2,3,4,5,6,7,10,16")]
    pcrs: PcrSelection,
    /// Print the verified quote as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

fn step(n: u32, text: String, since: Instant) {
    println!("[{n}/6] {text}  ({} ms)", since.elapsed().as_millis());
}

impl QuoteDemoArgs {
    /// Runs the demo.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let tmp;
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => {
                tmp = tempfile::Builder::new().prefix("cairn-demo-").tempdir()?;
                tmp.path().to_path_buf()
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        println!("Cairn demo: a TPM quote made by a fresh software TPM and judged by the verifier's core.");
        println!("state: {}\n", dir.display());

        let t = Instant::now();
        let ca = SwtpmCa::create(&dir.join("ca")).context("cannot create the local EK CA (is swtpm-tools installed?)")?;
        step(1, format!("local EK CA ready: root {}", ca.root_pem().display()), t);

        let t = Instant::now();
        let swtpm = Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(&ca), port: None })
            .context("cannot start swtpm (is the swtpm package installed?)")?;
        step(2, format!("swtpm running: pid {}, {}", swtpm.pid(), swtpm.tcti()), t);

        let t = Instant::now();
        let mut tpm = open(&swtpm.tcti())?;
        let ek = tpm.ek(EkKind::Rsa2048)?;
        let ek_public = Public::parse_tpm2b(&ek.public)?;
        let cert = tpm.ek_certificate(EkKind::Rsa2048)?;
        step(
            3,
            format!(
                "EK {} at {}; certificate {}",
                ek_public.key_name(),
                ek.persistent.map(|h| format!("{h:#010x}")).unwrap_or_else(|| "a transient handle".into()),
                cert.map(|c| format!("{} bytes from NV 0x01c00002, issued by the local CA", c.len()))
                    .unwrap_or_else(|| "absent".into())
            ),
            t,
        );

        let t = Instant::now();
        let spec = AkSpec::new(ak_alg(&self.ak_alg)?);
        let ak = tpm.load_or_create_ak(spec)?;
        step(4, format!("{spec} created under the EK, persisted at {:#010x}, name {}", ak.handle, hex::encode(&ak.name)), t);

        let t = Instant::now();
        let measured = b"cairn demo: a measured file";
        let pcr10 = cairn_core::pcr::PcrIndex::new(10).context("PCR 10")?;
        tpm.pcr_extend(pcr10, &[HashAlg::Sha1.hash(measured), HashAlg::Sha256.hash(measured)])?;
        let nonce = fresh_nonce()?;
        let quote = tpm.quote(&ak, nonce.as_bytes(), &self.pcrs)?;
        drop(tpm);
        step(5, format!("PCR 10 extended with a measurement; quote over {} with nonce {nonce:?}", self.pcrs), t);

        let t = Instant::now();
        let key = VerifyingKey::from_public(&Public::parse_tpm2b(&ak.public)?);
        let blob = encode_pcr_blob(&quote.pcrs);
        let parts = QuoteParts { message: &quote.attest, signature: &quote.signature, pcrs: &blob };
        let verified = verify_quote(&key, parts, Expected::nonce(nonce.as_bytes()))
            .map_err(|f| anyhow::anyhow!("the fresh quote failed verification ({}): {f}", f.check()))?;
        step(6, "verified: signature by the AK, nonce, PCR selection and PCR digest all check".into(), t);
        let c = verified.clock();
        println!("\n  signature {}/{}, TPM clock {} ms (resets {}, restarts {}, safe {})", verified.signature.scheme, verified.signature.hash, c.clock, c.reset_count, c.restart_count, c.safe);
        for (alg, pcr, v) in verified.pcrs.iter() {
            println!("  {alg}:{pcr:<2} {v}");
        }

        // The same quote, with one PCR value changed after the fact, must be refused.
        let attest = Attest::parse(&quote.attest)?;
        let signature = Signature::parse(&quote.signature)?;
        let mut values = quote.pcrs.values().to_vec();
        if let Some(first) = values.first_mut() {
            *first = first.alg().hash(b"something else ran");
        }
        let forged = cairn_core::pcr::PcrValues::new(quote.pcrs.selection().clone(), values)?;
        match verify_parsed(&key, &quote.attest, attest, signature, forged, Expected::nonce(nonce.as_bytes())) {
            Err(f) => println!("\n  and with one PCR value forged, the same quote is refused: {} ({f})", f.check()),
            Ok(_) => anyhow::bail!("a forged PCR value was accepted"),
        }
        let replay = fresh_nonce()?;
        match verify_quote(&key, parts, Expected::nonce(replay.as_bytes())) {
            Err(f) => println!("  and replayed against a new nonce, it is refused: {}", f.check()),
            Ok(_) => anyhow::bail!("a replayed quote was accepted"),
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&verified_json(&verified, key.key_name()))?);
        }
        swtpm.stop();
        println!("\nDone. swtpm stopped.");
        Ok(ExitCode::SUCCESS)
    }
}

/// 20 alphanumeric characters, like a Keylime verifier's nonce.
fn fresh_nonce() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 20];
    SystemRandom::new().fill(&mut raw).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(raw.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
}
