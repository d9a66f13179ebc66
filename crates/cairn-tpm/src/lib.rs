//! # cairn-tpm
//!
//! Talking to a TPM 2.0 — a hardware one through `device:/dev/tpmrm0`, or swtpm over TCP — with
//! tss-esapi 7.x: endorsement keys and their certificates, attestation keys, quotes, PCRs, NV
//! reads and credential activation. Byte formats are cairn-core's business: this crate returns
//! marshalled TPM structures (TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE) and cairn-core types
//! (`PcrValues`, `Digest`), and judges nothing.
//!
//! A [`Tpm`] is short-lived by design: without a resource manager a TPM serves one client and
//! has three transient object slots, so open it, do the work, drop it. Every operation flushes
//! what it loads. AKs are persisted at a handle (see [`ak`] for the defaults).
//!
//! [`swtpm`] starts and stops real swtpm processes (with EK certificates from a local CA) for
//! tests and the demo.
//!
//! ```no_run
//! use cairn_tpm::{AkAlg, AkSpec, EkKind, Tpm};
//! # fn main() -> Result<(), cairn_tpm::TpmError> {
//! let mut tpm = Tpm::open("swtpm:host=127.0.0.1,port=2321")?;
//! let ek = tpm.ek(EkKind::Rsa2048)?;
//! let ak = tpm.load_or_create_ak(AkSpec::new(AkAlg::EccP256Ecdsa))?;
//! let sel = "sha256:0,1,16".parse().expect("valid selection");
//! let quote = tpm.quote(&ak, b"nonce", &sel)?;
//! # let _ = (ek, quote);
//! # Ok(()) }
//! ```

pub mod ak;
mod convert;
mod credential;
pub mod ek;
mod error;
mod pcr;
pub mod quote;
pub mod spawn;
pub mod swtpm;
mod tpm;
pub mod vtpm;
pub mod vtpm_ca;

pub use ak::{Ak, AkAlg, AkSpec};
pub use ek::{Ek, EkKind};
pub use error::{Target, TpmError};
pub use quote::Quote;
pub use tpm::Tpm;
