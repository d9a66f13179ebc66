//! `cairn tpm …`: talking to a TPM — quotes in tpm2-tools' file formats, PCRs, the EK.
//!
//! Each command opens the TPM, does its work and closes it: a TPM without a resource manager
//! (and swtpm) serves one client at a time, so nothing here holds it longer than needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_core::crypto::spki;
use cairn_core::pcr::{PcrIndex, PcrSelection};
use cairn_core::quote::{encode_quote_string, Nonce};
use cairn_core::tpm::{encode_pcr_blob, Public};
use cairn_core::{Digest, HashAlg};
use cairn_tpm::{AkAlg, AkSpec, EkKind, Tpm};
use clap::{Args, Subcommand};

/// TPM commands.
#[derive(Subcommand)]
pub enum TpmCommand {
    /// Quote PCRs with an AK under the EK (created and persisted on first use) and write the
    /// quote in the files tpm2-tools reads: quote.msg, quote.sig, quote.pcrs, ak.pub, ak.pem
    /// (plus quote.keylime.txt, Keylime's wire form).
    Quote(QuoteArgs),
    /// Read PCR values.
    PcrRead(PcrReadArgs),
    /// Extend a PCR with a digest (in every bank given, or the digest's own bank).
    PcrExtend(PcrExtendArgs),
    /// Show the endorsement key and, when present, write its certificate.
    Ek(EkArgs),
}

/// The TPM to use.
#[derive(Args, Clone)]
pub struct TctiArg {
    /// TPM connection: `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`, `mssim:…`.
    #[arg(long, env = "CAIRN_TCTI", default_value = "device:/dev/tpmrm0")]
    pub tcti: String,
}

/// Arguments of `cairn tpm quote`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("nonce_src").required(true).args(["nonce", "nonce_hex"]))]
pub struct QuoteArgs {
    #[command(flatten)]
    tcti: TctiArg,
    /// The nonce as text (its bytes become the quote's extraData), as a Keylime verifier sends it.
    #[arg(long, value_name = "TEXT")]
    nonce: Option<String>,
    /// The nonce as raw bytes, in hex.
    #[arg(long, value_name = "HEX")]
    nonce_hex: Option<String>,
    /// PCRs in tpm2-tools syntax; several banks as `sha1:10+sha256:0,1`.
    #[arg(long, value_name = "SEL", default_value = "sha256:0,1,2,3,4,5,6,7,10,16")]
    pcrs: PcrSelection,
    /// AK type: rsa2048 (RSASSA), ecc256 (ECDSA P-256), sm2; or rsa2048-rsapss, rsa3072-rsassa,
    /// ecc-p384-ecdsa. Persisted at 0x81010010 (rsa2048), 0x81010011 (rsa2048-rsapss),
    /// 0x81010012 (ecc256), 0x81010013 (sm2), 0x81010014 (rsa3072), 0x81010015 (ecc384).
    #[arg(long, value_name = "ALG", default_value = "rsa2048")]
    ak_alg: String,
    /// The AK's signing hash.
    #[arg(long, value_name = "ALG", default_value = "sha256")]
    ak_hash: String,
    /// Persist the AK at this handle instead of the default (hex, e.g. 0x81010020).
    #[arg(long, value_name = "HANDLE")]
    ak_handle: Option<String>,
    /// Directory to write the files to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Arguments of `cairn tpm pcr-read`.
#[derive(Args)]
pub struct PcrReadArgs {
    #[command(flatten)]
    tcti: TctiArg,
    /// PCRs in tpm2-tools syntax.
    #[arg(default_value = "sha256:all")]
    pcrs: PcrSelection,
}

/// Arguments of `cairn tpm pcr-extend`.
#[derive(Args)]
pub struct PcrExtendArgs {
    #[command(flatten)]
    tcti: TctiArg,
    /// PCR number.
    pcr: PcrIndex,
    /// `ALG:HEX` digests, e.g. `sha256:9f86…`; several extend several banks at once.
    #[arg(required = true)]
    digests: Vec<String>,
}

/// Arguments of `cairn tpm ek`.
#[derive(Args)]
pub struct EkArgs {
    #[command(flatten)]
    tcti: TctiArg,
    /// Write the EK certificate (DER, as stored in NV) here.
    #[arg(long, value_name = "FILE")]
    cert_out: Option<PathBuf>,
    /// Write the EK public area (TPM2B_PUBLIC) here.
    #[arg(long, value_name = "FILE")]
    pub_out: Option<PathBuf>,
}

impl TpmCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TpmCommand::Quote(a) => a.run(),
            TpmCommand::PcrRead(a) => {
                let mut tpm = open(&a.tcti.tcti)?;
                for (alg, pcr, v) in tpm.pcr_read(&a.pcrs)?.iter() {
                    println!("{alg}:{pcr:<2} {v}");
                }
                Ok(ExitCode::SUCCESS)
            }
            TpmCommand::PcrExtend(a) => {
                let digests = a
                    .digests
                    .iter()
                    .map(|d| {
                        let (alg, hex) = d.split_once(':').with_context(|| format!("{d:?} is not ALG:HEX"))?;
                        let alg = HashAlg::from_name(alg).with_context(|| format!("unknown bank {alg:?}"))?;
                        Ok(Digest::from_hex(alg, hex)?)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                open(&a.tcti.tcti)?.pcr_extend(a.pcr, &digests)?;
                Ok(ExitCode::SUCCESS)
            }
            TpmCommand::Ek(a) => {
                let mut tpm = open(&a.tcti.tcti)?;
                let ek = tpm.ek(EkKind::Rsa2048)?;
                let public = Public::parse_tpm2b(&ek.public)?;
                match ek.persistent {
                    Some(h) => println!("EK {} persisted at {h:#010x}", public.key_name()),
                    None => println!("EK {} created from the TCG default template (not persisted)", public.key_name()),
                }
                println!("name {}", hex::encode(public.name()));
                if let Some(p) = &a.pub_out {
                    write(p, &ek.public)?;
                }
                match tpm.ek_certificate(EkKind::Rsa2048)? {
                    Some(cert) => {
                        println!("certificate: {} bytes in NV 0x01c00002", cert.len());
                        if let Some(p) = &a.cert_out {
                            write(p, &cert)?;
                        }
                    }
                    None => println!("no EK certificate in NV"),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Opens a TPM, naming the TCTI in the error.
pub fn open(tcti: &str) -> anyhow::Result<Tpm> {
    Tpm::open(tcti).with_context(|| format!("cannot open the TPM at {tcti}"))
}

/// Maps the CLI's AK names to an [`AkAlg`].
pub fn ak_alg(name: &str) -> anyhow::Result<AkAlg> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "rsa2048" | "rsa" => AkAlg::Rsa2048Rsassa,
        "ecc256" | "ecc" | "ecdsa" => AkAlg::EccP256Ecdsa,
        "sm2" => AkAlg::Sm2P256,
        "ecc384" => AkAlg::EccP384Ecdsa,
        "rsa3072" => AkAlg::Rsa3072Rsassa,
        other => match AkAlg::from_name(other) {
            Some(a) => a,
            None => bail!("unknown AK algorithm {other:?} (rsa2048, ecc256, sm2, rsa2048-rsapss, rsa3072, ecc384)"),
        },
    })
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

impl QuoteArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let nonce = match (&self.nonce, &self.nonce_hex) {
            (Some(t), _) => Nonce::from_text(t)?,
            (None, Some(h)) => Nonce::from_hex(h)?,
            (None, None) => bail!("give --nonce or --nonce-hex"),
        };
        let hash = HashAlg::from_name(&self.ak_hash).with_context(|| format!("--ak-hash: unknown {:?}", self.ak_hash))?;
        let handle = match &self.ak_handle {
            Some(h) => Some(
                u32::from_str_radix(h.trim_start_matches("0x"), 16).with_context(|| format!("--ak-handle: {h:?} is not hex"))?,
            ),
            None => None,
        };
        let spec = AkSpec { alg: ak_alg(&self.ak_alg)?, hash, handle, ek: EkKind::Rsa2048 };
        let mut tpm = open(&self.tcti.tcti)?;
        let ak = tpm.load_or_create_ak(spec).with_context(|| format!("cannot load or create {spec}"))?;
        let quote = tpm.quote(&ak, nonce.as_bytes(), &self.pcrs)?;
        drop(tpm);
        let public = Public::parse_tpm2b(&ak.public)?;
        let pem = spki::pem_encode("PUBLIC KEY", &spki::to_spki_der(&public.key)?);
        let blob = encode_pcr_blob(&quote.pcrs);
        std::fs::create_dir_all(&self.out).with_context(|| format!("cannot create {}", self.out.display()))?;
        write(&self.out.join("quote.msg"), &quote.attest)?;
        write(&self.out.join("quote.sig"), &quote.signature)?;
        write(&self.out.join("quote.pcrs"), &blob)?;
        write(&self.out.join("ak.pub"), &ak.public)?;
        write(&self.out.join("ak.pem"), pem.as_bytes())?;
        write(&self.out.join("ak.name"), &ak.name)?;
        write(&self.out.join("quote.keylime.txt"), encode_quote_string(&quote.attest, &quote.signature, &blob).as_bytes())?;
        eprintln!(
            "quoted {} with {} at {:#010x}; wrote {}",
            self.pcrs,
            spec,
            ak.handle,
            self.out.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
