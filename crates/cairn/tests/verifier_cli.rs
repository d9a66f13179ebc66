//! `cairn verifier` and `cairn node` as an operator meets them: `--help` explains every option,
//! the file format and the states; a typo in the file is an error naming the key; the tenant CLI
//! without TLS files says which file is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env_remove("CAIRN_VERIFIER_CONFIG").env_remove("CAIRN_TLS_DIR");
    c
}

#[test]
fn verifier_help_explains_options_file_and_states() {
    let out = cairn().args(["verifier", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--config", "--ip", "--port", "--state-dir", "--database", "--quote-interval-ms", "--tls-dir", "--webhook",
        "quote_interval_ms = 2000", "retry_max_ms", "webhooks", "notify_agents", "revocation_key", "unreachable",
        "cairn node add", "SIGTERM",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
    let out = cairn().args(["node", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["add", "update", "delete", "status", "list", "reactivate", "--verifier", "--registrar", "--tls-dir", "--json"] {
        assert!(help.contains(sub), "node --help lacks {sub}:\n{help}");
    }
    let out = cairn().args(["node", "add", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in ["--runtime-policy", "--mb-refstate", "--tpm-policy", "--accept-hash"] {
        assert!(help.contains(opt), "node add --help lacks {opt}:\n{help}");
    }
}

#[test]
fn a_typo_in_the_file_is_named_and_missing_tls_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verifier.toml");
    std::fs::write(&config, "quote_intervall_ms = 100\n").unwrap();
    let out = cairn().args(["verifier", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quote_intervall_ms"), "{err}");

    std::fs::write(&config, "webhooks = [\"ftp://x\"]\n").unwrap();
    let out = cairn().args(["verifier", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ftp://x"));

    let out = cairn().args(["node", "list", "--tls-dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca-cert.pem"), "{err}");
}
