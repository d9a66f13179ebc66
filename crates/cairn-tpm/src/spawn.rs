//! Starting other programs from a process that talks to a TPM.
//!
//! libtss2's TCTIs open their descriptors without close-on-exec: the swtpm and mssim TCTIs connect a
//! socket for each command, the device TCTI holds `/dev/tpmrm0` open. A program started while one
//! of them is open inherits it. For swtpm that is fatal: it serves one connection at a time, so once
//! the TSS has closed its copy swtpm keeps waiting on the child's copy and never serves the next
//! client (the agent's next quote hangs for as long as the child lives). For a device it hands the
//! child the agent's TPM context. Rust cannot close inherited descriptors in the child without
//! unsafe code, so [`without_inherited_fds`] starts the program through bash, which closes every
//! descriptor above stderr and then execs it: same process, arguments, environment and directory.

use std::ffi::{OsStr, OsString};

/// The bash script: close descriptors 3 and up (bash, because dash cannot name those above 9), then
/// exec `$0 "$@"`.
pub const CLOSE_INHERITED: &str =
    r#"for f in /proc/$$/fd/*; do n=${f##*/}; case $n in 0|1|2) ;; *) eval "exec $n>&-" 2>/dev/null ;; esac; done; exec "$0" "$@""#;

/// The program and arguments that run `program args…` with no descriptor inherited above stderr:
/// `bash -c CLOSE_INHERITED program args…`. Exit status 127 means `program` was not found, 126 that
/// it could not be executed.
pub fn without_inherited_fds<I, S>(program: &OsStr, args: I) -> (OsString, Vec<OsString>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv = vec![OsString::from("-c"), OsString::from(CLOSE_INHERITED), program.to_owned()];
    argv.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    (OsString::from("bash"), argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_runs_with_its_arguments_and_no_descriptor_above_stderr() {
        // A descriptor this process leaves inheritable: a pipe's write end passed as stdout is dup'd to
        // 1 in the child; an extra one is what the script must close. std opens everything with
        // close-on-exec, so list what the child sees instead: only 0, 1, 2 (and bash's own reads).
        let (prog, args) = without_inherited_fds(OsStr::new("sh"), ["-c", "ls /proc/self/fd; echo \"$0 $1\"", "a b", "c"]);
        let out = std::process::Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("bash: {e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let fds: Vec<&str> = text.lines().filter(|l| l.chars().all(|c| c.is_ascii_digit())).collect();
        // `ls` itself opens one directory descriptor (3) to list.
        assert!(fds.iter().all(|f| ["0", "1", "2", "3"].contains(f)), "{fds:?}");
        assert!(text.contains("a b c"), "{text}");
    }
}
