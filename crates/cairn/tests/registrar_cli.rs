//! `cairn registrar` as an operator meets it: `--help` explains every option and the file
//! format, a TOML file starts it (flags override the file), a typo in the file is an error
//! naming the key, and `init-ca` creates TLS files once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn help_explains_every_option_and_the_file() {
    let out = cairn().args(["registrar", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--config", "--ip", "--port", "--tls-port", "--state-dir", "--database", "--trust-dir", "--accept-without-ek-cert",
        "--server-cert", "--server-key", "--client-ca", "--max-body-bytes", "init-ca", "SIGTERM", "tls_port = 8891",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
}

#[test]
fn starts_from_a_config_file_with_flags_overriding_it_and_refuses_typos() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("registrar.toml");
    let toml = format!("ip = \"127.0.0.1\"\nport = 1\ntls_port = 0\nstate_dir = {:?}\naccept_without_ek_cert = true\n", state.to_str().unwrap());
    std::fs::write(&config, toml).unwrap();
    let mut child = cairn()
        .args(["registrar", "--port", "0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let http = loop {
        let line = lines.next().expect("registrar exited early").unwrap();
        seen.push(line.clone());
        if let Some(rest) = line.strip_prefix("cairn registrar: registration port http://") {
            break rest.to_owned();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(!http.ends_with(":1"), "--port did not override the file: {http}");
    assert!(seen.iter().any(|l| l.contains("CA certificate")), "local CA not announced: {seen:?}");
    assert!(state.join("tls/client-key.pem").exists() && state.join("registrar.sqlite").exists());

    std::fs::write(&config, "prot = 8890\n").unwrap();
    let out = cairn().args(["registrar", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prot") && err.contains("registrar.toml"), "{err}");
}

#[test]
fn init_ca_creates_tls_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn().args(["registrar", "init-ca", "--host", "registrar.example"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"));
    let cert = std::fs::read(dir.path().join("server-cert.pem")).unwrap();
    let out = cairn().args(["registrar", "init-ca"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("already present"));
    assert_eq!(std::fs::read(dir.path().join("server-cert.pem")).unwrap(), cert);
}
