//! Fuzz target `hvm`.

/// Hypervisor measurement lists: parse, replay into two banks, judge; whatever parses must
/// re-render to the same line.
pub fn hvm(data: &[u8]) {
    use cairn_core::hvm::{judge, parse, HvmRound, Measurement, ReplayState, Replayer};
    use cairn_core::pcr::PcrIndex;
    use cairn_core::HashAlg;
    let Some(pcr) = PcrIndex::new(13) else { return };
    if let Ok(entries) = parse(data) {
        let mut again = String::new();
        for e in &entries {
            let m = Measurement {
                pid: e.pid,
                exe: e.exe.to_bytes(),
                file: e.file.to_bytes(),
                range: e.range,
                offset: e.offset,
                mem: e.mem,
                disk: e.disk,
                file_digest: e.file_digest,
            };
            let line = m.render(e.pcr).line;
            let canonical = line.splitn(3, ' ').nth(2).unwrap_or_default().trim_end_matches('\n');
            assert_eq!(canonical.as_bytes(), e.canonical(), "a parsed entry re-renders to its bytes");
            again.push_str(&line);
        }
        assert!(parse(again.as_bytes()).is_ok());
    }
    for bank in [HashAlg::Sha1, HashAlg::Sha256] {
        let mut s = ReplayState::new(bank);
        let _ = Replayer::new(pcr).replay(&mut s, data);
    }
    let q = HashAlg::Sha256.zero();
    let _ = judge(&ReplayState::new(HashAlg::Sha256), &HvmRound { pcr, list: data, from: 0, quoted: &q });
}
