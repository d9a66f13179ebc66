//! Running real swtpm processes, for tests and for the demo.
//!
//! [`SwtpmCa`] is a local CA (via `swtpm_localca`); [`Swtpm`] is one running `swtpm socket`
//! process on a loopback TCP port pair, optionally manufactured first by `swtpm_setup` with EK
//! certificates signed by that CA. Every configuration file is passed explicitly; nothing global
//! is read or written.

mod ca;
mod process;

use std::path::PathBuf;
use std::process::Command;

pub use ca::SwtpmCa;
pub use process::{free_port_pair, Swtpm, SwtpmOptions};

use crate::error::TpmError;

/// Finds `name` on `PATH`, else the first existing `fallbacks` entry.
pub(crate) fn find_program(name: &'static str, fallbacks: &[&str]) -> Result<PathBuf, TpmError> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path.chain(fallbacks.iter().map(PathBuf::from)).find(|p| p.is_file()).ok_or_else(|| TpmError::Spawn {
        program: name,
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "not on PATH (install swtpm-tools)"),
    })
}

/// Runs a command to completion; a non-zero exit is an error carrying its output.
pub(crate) fn run(mut cmd: Command, program: &'static str) -> Result<String, TpmError> {
    let out = cmd.output().map_err(|source| TpmError::Spawn { program, source })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(TpmError::ProgramFailed { program, status: out.status.to_string(), output: text.trim().to_owned() })
    }
}
