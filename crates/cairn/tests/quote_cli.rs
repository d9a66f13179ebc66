//! `cairn tpm quote` and `cairn quote verify` on real swtpm processes, cross-checked with
//! tpm2-tools in both directions, and every tampering refused with its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cairn_tpm::swtpm::{Swtpm, SwtpmCa, SwtpmOptions};

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

fn ca() -> &'static SwtpmCa {
    static CA: OnceLock<SwtpmCa> = OnceLock::new();
    CA.get_or_init(|| SwtpmCa::create(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-ek-ca")).expect("local CA"))
}

fn swtpm(dir: &Path) -> Swtpm {
    Swtpm::start(&dir.join("tpm"), SwtpmOptions { with_ek_certs: Some(ca()), port: None }).expect("swtpm starts")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    if !out.status.success() && std::env::var_os("CAIRN_TEST_VERBOSE").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn tpm_quote(tpm: &Swtpm, out: &Path, ak: &str, pcrs: &str, nonce: &str) {
    let o = run(cairn().args(["tpm", "quote", "--tcti", &tpm.tcti(), "--nonce", nonce, "--pcrs", pcrs, "--ak-alg", ak, "--out"]).arg(out));
    assert!(o.status.success(), "cairn tpm quote failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `cairn quote verify --json` and returns (exit code, JSON).
fn verify(dir: &Path, ak: &str, msg: &str, sig: &str, pcrs: &str, nonce: &str) -> (i32, serde_json::Value) {
    let o = run(cairn()
        .args(["quote", "verify", "--json", "--nonce", nonce])
        .arg("--ak").arg(dir.join(ak))
        .arg("--message").arg(dir.join(msg))
        .arg("--signature").arg(dir.join(sig))
        .arg("--pcrs").arg(dir.join(pcrs)));
    let code = o.status.code().expect("exit code");
    let j = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (code, j)
}

/// TPMS_ATTEST offset of the last byte of clockInfo.clock after a sha256-named signer, less the
/// nonce: magic 4 + type 2 + signer 2+34 + extraData 2+N + 7.
const CLOCK_LAST_BYTE: usize = 51;

fn flip(dir: &Path, from: &str, to: &str, at: impl Fn(usize) -> usize) {
    let mut b = std::fs::read(dir.join(from)).unwrap();
    let i = at(b.len());
    b[i] ^= 1;
    std::fs::write(dir.join(to), b).unwrap();
}

fn tpm2_checkquote(dir: &Path, ak: &str, nonce_hex: &str) -> bool {
    Command::new("tpm2_checkquote")
        .current_dir(dir)
        .args(["-u", ak, "-m", "quote.msg", "-s", "quote.sig", "-f", "quote.pcrs", "-g", "sha256", "-q", nonce_hex])
        .output()
        .expect("tpm2_checkquote runs")
        .status
        .success()
}

#[test]
fn our_quotes_pass_tpm2_checkquote_and_ours_and_every_tampering_fails_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let tpm = swtpm(tmp.path());
    for ak in ["rsa2048", "ecc256"] {
        let dir = tmp.path().join(ak);
        let nonce = "Zq3kLm9PxW2vBn7TcY4e";
        tpm_quote(&tpm, &dir, ak, "sha256:0,1,2,3,10,16", nonce);
        // tpm2-tools, the independent peer, accepts our files (PEM and TPM2B_PUBLIC alike).
        assert!(tpm2_checkquote(&dir, "ak.pem", &hex::encode(nonce)), "{ak}: tpm2_checkquote rejected our quote");
        let (code, j) = verify(&dir, "ak.pub", "quote.msg", "quote.sig", "quote.pcrs", nonce);
        assert_eq!(code, 0, "{ak}: {j}");
        assert_eq!(j["valid"], true);
        // Tampered variants: each refused (exit 1) with the check that caught it.
        flip(&dir, "quote.msg", "msg.flip", |_| CLOCK_LAST_BYTE + nonce.len());
        flip(&dir, "quote.sig", "sig.flip", |n| n - 5);
        flip(&dir, "quote.pcrs", "pcrs.flip", |_| 136 + 4 + 2); // first byte of the first value
        let cases = [
            ("ak.pub", "msg.flip", "quote.sig", "quote.pcrs", nonce, "bad_signature"),
            ("ak.pub", "quote.msg", "sig.flip", "quote.pcrs", nonce, "bad_signature"),
            ("ak.pub", "quote.msg", "quote.sig", "pcrs.flip", nonce, "pcr_digest_mismatch"),
            ("ak.pub", "quote.msg", "quote.sig", "quote.pcrs", "Zq3kLm9PxW2vBn7TcY4f", "nonce_mismatch"),
        ];
        for (k, m, s, p, n, check) in cases {
            let (code, j) = verify(&dir, k, m, s, p, n);
            assert_eq!(code, 1, "{ak} {m} {s} {p}: {j}");
            assert_eq!(j["check"], check, "{ak} {m} {s} {p}: {j}");
        }
    }
    // A wrong AK: the ECDSA AK for the RSA quote and vice versa.
    let rsa = tmp.path().join("rsa2048");
    std::fs::copy(tmp.path().join("ecc256/ak.pub"), rsa.join("other-ak.pub")).unwrap();
    let (code, j) = verify(&rsa, "other-ak.pub", "quote.msg", "quote.sig", "quote.pcrs", "Zq3kLm9PxW2vBn7TcY4e");
    assert_eq!((code, j["check"].as_str()), (1, Some("wrong_key")), "{j}");
    // A PCR blob for other PCRs (a real one, from another quote of the same TPM).
    tpm_quote(&tpm, &tmp.path().join("other"), "rsa2048", "sha256:0,1,2,3,10", "Zq3kLm9PxW2vBn7TcY4e");
    std::fs::copy(tmp.path().join("other/quote.pcrs"), rsa.join("other.pcrs")).unwrap();
    let (code, j) = verify(&rsa, "ak.pub", "quote.msg", "quote.sig", "other.pcrs", "Zq3kLm9PxW2vBn7TcY4e");
    assert_eq!((code, j["check"].as_str()), (1, Some("pcr_selection_mismatch")), "{j}");
}

fn tpm2(tpm: &Swtpm, dir: &Path, args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .output()
        .expect("tpm2-tools runs");
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn tpm2_quote_outputs_verify_with_ours_including_several_banks() {
    let tmp = tempfile::tempdir().unwrap();
    let tpm = swtpm(tmp.path());
    let dir = tmp.path();
    tpm2(&tpm, dir, &["tpm2_pcrextend", "10:sha1=ac3478d69a3c81fa62e60f5c3696165a4e5e6ac4,sha256=b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"]);
    for (g, s, nonce) in [("rsa", "rsassa", "0011223344556677889900112233445566778899"), ("ecc", "ecdsa", "aabbccddeeff")] {
        let sub = dir.join(g);
        std::fs::create_dir_all(&sub).unwrap();
        tpm2(&tpm, &sub, &["tpm2_createak", "-C", "0x81010001", "-c", "ak.ctx", "-G", g, "-g", "sha256", "-s", s, "-u", "ak.pub", "-n", "ak.name", "-f", "pem", "-p", ""]);
        tpm2(&tpm, &sub, &["tpm2_readpublic", "-c", "ak.ctx", "-o", "ak.tss"]);
        tpm2(&tpm, &sub, &["tpm2_quote", "-c", "ak.ctx", "-l", "sha1:10+sha256:0,1,10,16", "-q", nonce, "-m", "quote.msg", "-s", "quote.sig", "-o", "quote.pcrs", "-g", "sha256"]);
        // No resource manager: free the transient slots tpm2-tools left loaded.
        tpm2(&tpm, &sub, &["tpm2_flushcontext", "-t"]);
        for ak in ["ak.pub", "ak.tss"] {
            let o = run(cairn()
                .args(["quote", "verify", "--nonce-hex", nonce, "--hash", "sha256", "--ak"])
                .arg(sub.join(ak))
                .arg("--message").arg(sub.join("quote.msg"))
                .arg("--signature").arg(sub.join("quote.sig"))
                .arg("--pcrs").arg(sub.join("quote.pcrs")));
            assert!(o.status.success(), "{g} {ak}: {}", String::from_utf8_lossy(&o.stderr));
            assert!(String::from_utf8_lossy(&o.stdout).contains("sha1:10+sha256:0,1,10,16"));
        }
        // Requiring another hash than the quote used is its own failure.
        let o = run(cairn()
            .args(["quote", "verify", "--nonce-hex", nonce, "--hash", "sha384", "--json", "--ak"])
            .arg(sub.join("ak.tss"))
            .arg("--message").arg(sub.join("quote.msg"))
            .arg("--signature").arg(sub.join("quote.sig"))
            .arg("--pcrs").arg(sub.join("quote.pcrs")));
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stdout).contains("hash_not_allowed"));
    }
}

#[test]
fn sm2_and_rsapss_quotes_signed_by_swtpm_verify_and_their_tampered_variants_do_not() {
    // tpm2_checkquote 5.4 cannot load SM2 keys and checks RSA-PSS with PKCS#1 v1.5 padding, so
    // the oracle here is swtpm itself: it signed these, so they must verify, and any change must not.
    let tmp = tempfile::tempdir().unwrap();
    let tpm = swtpm(tmp.path());
    for ak in ["sm2", "rsa2048-rsapss"] {
        let dir = tmp.path().join(ak);
        let nonce = "pss-and-sm2-nonce-01";
        tpm_quote(&tpm, &dir, ak, "sha1:10+sha256:0,10,16", nonce);
        let (code, j) = verify(&dir, "ak.pub", "quote.msg", "quote.sig", "quote.pcrs", nonce);
        assert_eq!(code, 0, "{ak}: {j}");
        let (code, j) = verify(&dir, "ak.pem", "quote.msg", "quote.sig", "quote.pcrs", nonce);
        assert_eq!(code, 0, "{ak} via PEM: {j}");
        flip(&dir, "quote.msg", "msg.flip", |_| CLOCK_LAST_BYTE + nonce.len());
        flip(&dir, "quote.sig", "sig.flip", |n| n - 3);
        assert_eq!(verify(&dir, "ak.pub", "msg.flip", "quote.sig", "quote.pcrs", nonce).1["check"], "bad_signature", "{ak}");
        assert_eq!(verify(&dir, "ak.pub", "quote.msg", "sig.flip", "quote.pcrs", nonce).1["check"], "bad_signature", "{ak}");
    }
}

#[test]
fn keylime_quote_string_is_accepted_instead_of_three_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tpm = swtpm(tmp.path());
    let dir = tmp.path().join("q");
    tpm_quote(&tpm, &dir, "ecc256", "sha256:0,10,16", "keylimenonce12345678");
    let o = run(cairn()
        .args(["quote", "verify", "--nonce", "keylimenonce12345678", "--ak"])
        .arg(dir.join("ak.pem"))
        .arg("--quote-string")
        .arg(dir.join("quote.keylime.txt")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = run(cairn().args(["quote", "verify", "--ak", "/nonexistent/ak.pem", "--nonce", "x", "--quote-string", "/nonexistent/q"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/ak.pem"));
    let o = run(cairn().args(["quote", "verify", "--nonce", "x"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn demo_prints_a_verified_quote_from_a_fresh_swtpm() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn().args(["demo", "--quote-only", "--state-dir"]).arg(tmp.path()));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("verified: signature by the AK"), "{out}");
    assert!(out.contains("refused: pcr_digest_mismatch"), "{out}");
    assert!(out.contains("refused: nonce_mismatch"), "{out}");
}
