//! `cairn agent` as a command: its help explains every option and the configuration file, and
//! a wrong configuration (a revocation key that is not one included) is refused before touching
//! a TPM, naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).env_remove("CAIRN_AGENT_CONFIG").output().unwrap()
}

#[test]
fn help_explains_every_option_and_the_config_file() {
    let out = cairn(&["agent", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config", "--tcti", "--state-dir", "--uuid", "--listen", "--contact-ip", "--contact-port", "--registrar",
        "--no-register", "--ek", "--ak-alg", "--hash", "--ak-handle", "--ima-log", "--uefi-log", "--client-ca", "--log",
        "--revocation-cert", "--revocation-actions-dir",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for key in [
        "tcti =", "state_dir =", "registrar =", "client_ca =", "trust-all-with-logging", "pcr-extend", "hash_ek",
        "revocation_cert =", "revocation_actions_dir =", "CAIRN_REVOKED_AGENT_ID", "CAIRN_REVOCATION_SEVERITY", "30 s",
    ] {
        assert!(help.contains(key), "--help lacks {key:?}");
    }
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nhash = \"md5\"\n").unwrap();
    let out = cairn(&["agent", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hash") && err.contains("md5"), "{err}");
    // An unknown key in the file is refused.
    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let out = cairn(&["agent", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
}

#[test]
fn a_revocation_cert_that_is_no_key_is_refused_from_flag_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-key.pem");
    std::fs::write(&bad, "hello").unwrap();
    let state = dir.path().join("state");
    // No TPM at this TCTI: the refusal must come before any TPM work.
    let base = ["agent", "--tcti", "device:/nonexistent/tpm", "--no-register", "--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()];
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, format!("revocation_cert = \"{}\"\n", bad.display())).unwrap();
    let runs: [(Vec<&str>, Option<&str>); 3] = [
        (vec!["--revocation-cert", bad.to_str().unwrap()], None),
        (vec![], Some(bad.to_str().unwrap())),
        (vec!["--config", file.to_str().unwrap()], None),
    ];
    for (extra, env) in runs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(base).args(&extra).env_remove("CAIRN_AGENT_CONFIG").env_remove("CAIRN_AGENT_REVOCATION_CERT");
        if let Some(v) = env {
            cmd.env("CAIRN_AGENT_REVOCATION_CERT", v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("revocation_cert") && err.contains("not-a-key.pem") && err.contains("no PUBLIC KEY or CERTIFICATE"), "{extra:?}: {err}");
    }
}
