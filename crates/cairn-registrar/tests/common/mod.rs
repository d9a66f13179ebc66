//! Locating `shared/testdata` beside the project root.
//!
//! Set `CAIRN_TESTDATA` to point elsewhere. Under CI (`CI=true`) a missing file fails the test;
//! elsewhere the test prints that it skipped.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::path::PathBuf;

pub fn testdata_root() -> PathBuf {
    match std::env::var_os("CAIRN_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"),
    }
}

/// The path of `rel` under the testdata root, or `None` (after saying so) when it is absent
/// outside CI. Under CI a missing file panics.
pub fn testdata(rel: &str) -> Option<PathBuf> {
    let p = testdata_root().join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("testdata file {rel} is missing under CI (looked in {})", p.display());
    }
    eprintln!("skipped: testdata {rel} not found");
    None
}
