//! Programs started while TPM commands are in flight do not inherit the TPM connection: libtss2's
//! swtpm TCTI connects a socket per command without close-on-exec, and swtpm serves one connection
//! at a time, so a child holding an inherited copy would block every later client for its lifetime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cairn_core::pcr::PcrSelection;
use cairn_tpm::spawn::without_inherited_fds;
use common::TestTpm;

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sockets_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|l| l.starts_with("socket:"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn children_started_during_tpm_commands_leave_the_tpm_to_the_next_client() {
    let t = TestTpm::plain();
    let tcti = t.swtpm.tcti();
    let sel: PcrSelection = "sha256:0,1,2,3,4,5,6,7".parse().unwrap();
    let busy = Arc::new(AtomicBool::new(true));
    let worker = {
        let (tcti, sel, busy) = (tcti.clone(), sel.clone(), busy.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while busy.load(Ordering::Relaxed) {
                let mut tpm = cairn_tpm::Tpm::open(&tcti).unwrap();
                tpm.pcr_read(&sel).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut children = Children(Vec::new());
    for _ in 0..60 {
        let (prog, args) = without_inherited_fds(OsStr::new("sleep"), ["60"]);
        children.0.push(Command::new(prog).args(args).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    busy.store(false, Ordering::Relaxed);
    let reads = worker.join().unwrap();
    assert!(reads > 10, "the TPM was busy while the children started ({reads} reads)");
    std::thread::sleep(Duration::from_millis(200));
    for c in &children.0 {
        let held = sockets_of(c.id());
        assert!(held.is_empty(), "child {} holds {held:?}", c.id());
    }
    // The next client is served while every child still runs.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cairn_tpm::Tpm::open(&tcti).and_then(|mut tpm| tpm.pcr_read(&sel)).map(|v| v.values().len()));
    });
    let served = rx.recv_timeout(Duration::from_secs(20)).expect("the TPM did not serve the next client");
    assert_eq!(served.unwrap(), 8);
}
