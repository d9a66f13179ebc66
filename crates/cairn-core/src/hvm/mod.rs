//! Hypervisor dynamic measurement: the *hypervisor measurement list* a host-mode agent keeps, its
//! replay into a PCR, and the verifier's judgement of it.
//!
//! A host-mode agent reads, for each process it is told to watch (qemu, swtpm, libvirtd, itself),
//! the code of every file-backed executable mapping from the process's memory, hashes it, and
//! hashes the same range of the mapped file on disk. Each new or changed result is one line of the
//! list, and its hash is extended into a PCR, so the TPM vouches for the list the way it vouches
//! for IMA's. This module decides what a line *says*, what PCR value a list *implies*, and whether
//! the host passes: code in memory that differs from its file fails it.
//!
//! # The list format
//!
//! ASCII, one entry per line, each line ended by `\n`, twelve fields separated by one space:
//!
//! ```text
//! <pcr> <entry-hash> cairn-hvm <pid> <exe> <file> <start>-<end> <offset> <mem> <disk> <whole-file> <verdict>
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `pcr` | PCR extended (decimal, 0–23) |
//! | `entry-hash` | SHA-256 of the canonical bytes, 64 lower-case hex digits |
//! | `cairn-hvm` | format tag |
//! | `pid` | process id (decimal, 1–4194304) |
//! | `exe` | the process's executable (`/proc/PID/exe`), escaped |
//! | `file` | the mapped file, escaped |
//! | `start-end` | the mapping's addresses, lower-case hex, page aligned |
//! | `offset` | file offset mapped at `start`, lower-case hex, page aligned |
//! | `mem` | `<alg>:<hex>` of the mapping's bytes read from the process's memory |
//! | `disk` | `<alg>:<hex>` of the same range of the file (zero-filled past its end, as mapped) |
//! | `whole-file` | `<alg>:<hex>` of the whole file |
//! | `verdict` | `ok` (mem = disk) or `modified` (mem ≠ disk) |
//!
//! Numbers have no leading zeros; paths start with `/` and write every byte outside `!`..`~`, and
//! `%`, as `%xx` (lower-case hex), every other byte as itself. So each value has one spelling and
//! the parser ([`list`]) rejects any other, naming line, entry and field.
//!
//! The *canonical bytes* of an entry are the line from `cairn-hvm` to its end, without the newline.
//! The entry hash is SHA-256 of them. The agent extends the PCR's SHA-256 bank with the entry hash,
//! and any other bank it extends (its quote bank, when not SHA-256) with that bank's hash of the
//! canonical bytes; [`replay`] replays any one bank the same way.
//!
//! ```
//! use cairn_core::hvm::{entry::{MapRange, Measurement, Pid}, judge, HvmRound, ReplayState, Replayer};
//! use cairn_core::pcr::PcrIndex;
//! use cairn_core::HashAlg;
//! let code = HashAlg::Sha256.hash(b"code");
//! let m = Measurement {
//!     pid: Pid::new(4242).unwrap(), exe: b"/usr/bin/swtpm".to_vec(), file: b"/usr/bin/swtpm".to_vec(),
//!     range: MapRange::new(0x1000, 0x5000).unwrap(), offset: 0x1000,
//!     mem: code, disk: code, file_digest: HashAlg::Sha256.hash(b"file"),
//! };
//! let pcr = PcrIndex::new(13).unwrap();
//! let line = m.render(pcr).line;
//! let mut s = ReplayState::new(HashAlg::Sha256);
//! Replayer::new(pcr).replay(&mut s, line.as_bytes()).unwrap();
//! let quoted = s.value();
//! let j = judge(&ReplayState::new(HashAlg::Sha256), &HvmRound { pcr, list: line.as_bytes(), from: 0, quoted: &quoted });
//! assert!(j.failures.is_empty());
//! ```

pub mod entry;
pub mod judge;
pub mod list;
pub mod replay;

pub use entry::{EscapedPath, HvmEntry, MapRange, Measurement, Pid, Rendered, Verdict};
pub use judge::{judge, DigestKey, HvmFailure, HvmJudgement, HvmRound, ModifiedCode, SeenFile};
pub use list::{parse, Entries, FieldProblem, HvmError};
pub use replay::{PrefixMatch, ReplayState, Replayer};
