//! The hypervisor measurement list: the parser, replay and judge never panic whatever the bytes, and
//! every rendered measurement parses back to itself with its hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::hvm::{self, judge, HvmRound, MapRange, Measurement, Pid, ReplayState, Replayer};
use cairn_core::pcr::PcrIndex;
use cairn_core::HashAlg;
use proptest::prelude::*;

fn pcr() -> PcrIndex {
    PcrIndex::new(13).unwrap()
}

/// A good line to mutate.
fn seed() -> String {
    let d = HashAlg::Sha256.hash(b"x");
    Measurement {
        pid: Pid::new(7).unwrap(),
        exe: b"/usr/sbin/libvirtd".to_vec(),
        file: b"/usr/lib/libvirt.so.0".to_vec(),
        range: MapRange::new(0x1000, 0x9000).unwrap(),
        offset: 0,
        mem: d,
        disk: d,
        file_digest: d,
    }
    .render(pcr())
    .line
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..768)) {
        let _ = hvm::parse(&data);
        let mut s = ReplayState::new(HashAlg::Sha1);
        let _ = Replayer::new(pcr()).replay(&mut s, &data);
        let q = HashAlg::Sha256.zero();
        let _ = judge(&ReplayState::new(HashAlg::Sha256), &HvmRound { pcr: pcr(), list: &data, from: 0, quoted: &q });
    }

    #[test]
    fn mutated_good_lines_never_panic(at in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let mut line = seed().into_bytes();
        if let Some(b) = line.get_mut(at) {
            *b = byte;
        }
        line.truncate(cut.max(1));
        let _ = hvm::parse(&line);
        let q = HashAlg::Sha256.zero();
        let _ = judge(&ReplayState::new(HashAlg::Sha256), &HvmRound { pcr: pcr(), list: &line, from: 0, quoted: &q });
    }

    #[test]
    fn rendered_measurements_parse_back(
        pid in 1u32..=4_194_304,
        exe in proptest::collection::vec(any::<u8>(), 0..64),
        file in proptest::collection::vec(any::<u8>(), 0..64),
        start in 0u64..(1 << 40),
        pages in 1u64..4096,
        offset in 0u64..(1 << 30),
        tampered in any::<bool>(),
        p in 0u8..=23,
    ) {
        let disk = HashAlg::Sha256.hash(&file);
        let m = Measurement {
            pid: Pid::new(pid).unwrap(),
            exe: [b"/".as_slice(), &exe].concat(),
            file: [b"/".as_slice(), &file].concat(),
            range: MapRange::new(start * 4096, (start + pages) * 4096).unwrap(),
            offset: offset * 4096,
            mem: if tampered { HashAlg::Sha256.hash(b"other") } else { disk },
            disk,
            file_digest: HashAlg::Sha384.hash(&exe),
        };
        let pcr = PcrIndex::new(p).unwrap();
        let r = m.render(pcr);
        let e = hvm::parse(r.line.as_bytes()).unwrap();
        prop_assert_eq!(e.len(), 1);
        let e = e[0];
        prop_assert_eq!(e.exe.to_bytes(), m.exe.clone());
        prop_assert_eq!(e.file.to_bytes(), m.file.clone());
        prop_assert_eq!((e.pid, e.range, e.offset, e.mem, e.disk, e.file_digest), (m.pid, m.range, m.offset, m.mem, m.disk, m.file_digest));
        prop_assert_eq!(e.entry_hash, HashAlg::Sha256.hash(e.canonical()));
        prop_assert_eq!(e.pcr, pcr);
    }
}
