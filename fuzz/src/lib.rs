//! The functions each fuzz target drives, and the stable-toolchain corpus runner.
//!
//! A target must never panic, whatever the bytes; where the parser also encodes, it checks that
//! what parses re-encodes to the same bytes.

use std::path::Path;

/// Runs `f` over every file under `paths` and over cheap mutations of each (truncations and
/// single-bit flips), so a smoke run exercises the error paths, not just the happy ones.
pub fn run_corpus(paths: &[String], f: fn(&[u8])) -> usize {
    let mut runs = 0;
    let mut files = Vec::new();
    for p in paths {
        collect(Path::new(p), &mut files);
    }
    for file in files {
        let Ok(data) = std::fs::read(&file) else { continue };
        f(&data);
        runs += 1;
        let step = (data.len() / 64).max(1);
        for cut in (0..data.len()).step_by(step) {
            f(data.get(..cut).unwrap_or(&[]));
            let mut flipped = data.clone();
            if let Some(b) = flipped.get_mut(cut) {
                *b ^= 1 << (cut % 8);
            }
            f(&flipped);
            runs += 2;
        }
    }
    runs
}

fn collect(p: &Path, out: &mut Vec<std::path::PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                collect(&e, out);
            }
        }
    } else if p.is_file() {
        out.push(p.to_path_buf());
    }
}

/// Declares a fuzz target: a libFuzzer entry under `cfg(fuzzing)`, a corpus runner otherwise.
#[macro_export]
macro_rules! target {
    ($f:path) => {
        #[cfg(fuzzing)]
        libfuzzer_sys::fuzz_target!(|data: &[u8]| $f(data));

        #[cfg(not(fuzzing))]
        fn main() {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let n = cairn_fuzz::run_corpus(&args, $f);
            println!("{}: {n} inputs, no panic", env!("CARGO_BIN_NAME"));
        }
    };
}

pub mod targets;
