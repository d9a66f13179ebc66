//! One function per fuzz target, one file each.

mod tpm_structures;
mod quote;
mod eventlog;
mod ima;
mod ekcert;
mod revocation;
mod bootstrap;
mod levels;
mod hvm;
mod vmbatch;

pub use tpm_structures::tpm_structures;
pub use quote::quote;
pub use eventlog::eventlog;
pub use ima::ima;
pub use ekcert::ekcert;
pub use revocation::revocation;
pub use bootstrap::bootstrap;
pub use levels::levels;
pub use hvm::hvm;
pub use vmbatch::vmbatch;
