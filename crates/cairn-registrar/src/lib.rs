//! # cairn-registrar
//!
//! Cairn's registrar, speaking Keylime's registrar REST API 2.x so Keylime agents, tenants and
//! verifiers can use it. An agent registers its EK (with the EK certificate), its AK and contact
//! data on the plain registration port; the registrar checks the EK certificate's chain against
//! the operator's trust directory and that it certifies this EK, checks that the AK is a
//! restricted signing key, then protects a fresh secret to the EK bound to the AK's name
//! (TPM2_MakeCredential in cairn-core) and returns it as a tpm2-tools credential blob. Only the
//! TPM holding both keys can recover the secret; the agent proves it did with `auth_tag`, and
//! the registration becomes active. Tenants and verifiers read registrations over mutual TLS.
//!
//! The crate is a thin shell: judging keys and certificates is cairn-core's, persistence
//! cairn-store's. [`app`] builds a router (tested in-process), [`Registrar`] runs both ports.
//!
//! ```no_run
//! use cairn_registrar::{Registrar, RegistrarConfig};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RegistrarConfig::from_toml("state_dir = \"/tmp/registrar\"\naccept_without_ek_cert = true")?;
//! let registrar = Registrar::bind(&config).await?;
//! println!("registration on {}, TLS on {}", registrar.http_addr, registrar.tls_addr);
//! registrar.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod agent_id;
pub mod app;
pub mod checks;
pub mod config;
pub mod error;
mod handlers;
pub mod serve;
pub mod tls;
pub mod trust;

pub use app::{app, AppState, Port};
pub use config::RegistrarConfig;
pub use error::RegistrarError;
pub use serve::{Registrar, StartError};
