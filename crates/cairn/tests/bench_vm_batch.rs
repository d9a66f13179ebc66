//! `cairn bench vm-batch` on real swtpm, for correctness only (the figures are the bench's
//! business): with 3 VMs the batched side's one quote verifies and proves and judges every VM's
//! leaf, and the separate side verifies one quote per VM — so the two sides compare like for like.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

#[test]
fn three_vms_are_proved_by_one_batched_quote_and_by_three_separate_quotes() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["bench", "vm-batch", "--vms", "3", "--rounds", "2", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stderr}");
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stderr}"));
    assert_eq!(r["bench"], "vm-batch", "{r}");
    assert_eq!(r["vms"], 3, "{r}");
    assert_eq!(r["rounds"], 2, "{r}");

    let b = &r["batched"];
    assert_eq!(b["tpms"], 1, "{r}");
    assert_eq!(b["quotes_per_round"], 1, "{r}");
    assert_eq!(b["verified"]["quotes"], 1, "{r}");
    assert_eq!(b["verified"]["proved"], 3, "{r}");
    assert_eq!(b["verified"]["judged_ok"], 3, "{r}");
    assert_eq!(b["verified"]["unclaimed"], 0, "{r}");
    assert!(b["leaf_bytes"].as_u64().unwrap() > 0 && b["proof_bytes"].as_u64().unwrap() > 0, "{r}");

    let s = &r["separate"];
    assert_eq!(s["tpms"], 3, "{r}");
    assert_eq!(s["quotes_per_round"], 3, "{r}");
    assert_eq!(s["verified"]["quotes"], 3, "{r}");

    for side in [b, s] {
        for key in [
            "agent_wall_ms",
            "agent_cpu_ms",
            "tpm_cpu_ms",
            "verifier_wall_ms",
            "verifier_cpu_ms",
            "round_wall_ms",
            "round_cpu_ms",
        ] {
            for stat in ["median", "best"] {
                assert!(side[key][stat].as_f64().is_some_and(|v| v >= 0.0), "{key}.{stat}: {r}");
            }
        }
    }
    for key in ["wall", "cpu"] {
        assert!(r["ratio"][key].as_f64().is_some(), "ratio.{key}: {r}");
    }
    assert!(stderr.contains("round 1/2"), "progress goes to stderr:\n{stderr}");
}
