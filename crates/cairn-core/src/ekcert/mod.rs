//! EK certificates: parsing them as TPMs store them, validating their chains, and binding them
//! to the TPM's endorsement key.
//!
//! A registrar decides here whether a TPM is genuine: its EK certificate must chain to a vendor
//! certificate the operator trusts ([`verify_chain`]) and must certify the very EK the TPM
//! presents ([`ek_matches`]). EK certificates are unusual X.509 — empty subjects, a critical
//! subjectAltName holding the TPM's manufacturer/model/version, the TCG EK purpose
//! 2.23.133.8.1, NV padding after the DER, occasional BER — which Web-PKI validators reject, so
//! this module carries its own small parser over the crate's bounded reader and verifies
//! signatures with aws-lc-rs. Time is the caller's `now` (unix seconds): core reads no clock.
//!
//! ```no_run
//! use cairn_core::ekcert::{verify_chain, Certificate, TrustStore};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (nv_bytes, vendor_pem, now): (Vec<u8>, Vec<u8>, i64) = (vec![], vec![], 0);
//! let cert = Certificate::from_der(&nv_bytes)?;
//! let mut store = TrustStore::new();
//! store.add_anchors_from_bytes(&vendor_pem)?;
//! let chain = verify_chain(&cert, &store, now)?;
//! println!("TPM {:?}, trusted until {}", chain.tpm, chain.valid_until);
//! # Ok(()) }
//! ```

mod cert;
mod chain;
mod der;
mod error;
mod ext;
pub mod issue;
mod keymatch;
mod name;
mod sigalg;

pub use cert::{Certificate, MAX_CERTIFICATE};
pub use chain::{certificates_from_bytes, verify_chain, verify_chain_with, ChainInfo, ChainLink, TrustStore, VerifyOptions};
pub use error::{CertRef, EkCertError};
pub use ext::{BasicConstraints, Extensions, TpmIdentity, EKU_EK_CERTIFICATE};
pub use keymatch::ek_matches;
pub use name::Name;
pub use sigalg::SignatureAlgorithm;
