//! Parsers and replay never panic, whatever the bytes or text lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_core::ima::{self, BankSet, ReplayConfig, ReplayState, Replayer};
use cairn_core::policy::runtime::{allowlist, RuntimePolicy};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ima::parse(&data);
        let mut state = ReplayState::new(BankSet::ALL);
        let _ = Replayer::new(ReplayConfig::default()).replay(&mut state, &data);
    }

    #[test]
    fn binary_looking_input_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut data = 10u32.to_le_bytes().to_vec();
        data.extend_from_slice(&body);
        let _ = ima::parse(&data);
    }

    #[test]
    fn arbitrary_lines_never_panic(
        tmpl in prop::sample::select(vec!["ima", "ima-ng", "ima-sig", "ima-buf", "ima-modsig", "x"]),
        fields in "[ -~]{0,120}",
        hash in "[0-9a-f]{0,60}",
    ) {
        let line = format!("10 {hash} {tmpl} {fields}\n");
        let _ = ima::replay::replay(line.as_bytes(), BankSet::ALL);
        let _ = RuntimePolicy::from_json(&fields);
        let _ = allowlist::from_flat(&fields, Some(&fields));
    }
}
