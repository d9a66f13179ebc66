//! Fuzz target `ima`.

/// IMA measurement lists: parse (ASCII or binary, detected) and replay every bank; an appraisal
/// with an empty policy must not panic either.
pub fn ima(data: &[u8]) {
    use cairn_core::ima::{BankSet, ReplayConfig, ReplayState, Replayer};
    use cairn_core::policy::runtime::{appraise, AppraisalConfig, AppraisalState, RuntimePolicy};
    let _ = cairn_core::ima::parse(data);
    let mut state = ReplayState::new(BankSet::ALL);
    let _ = Replayer::new(ReplayConfig::default()).replay(&mut state, data);
    let policy = RuntimePolicy::empty();
    let start = AppraisalState::new(BankSet::ALL);
    let _ = appraise(Some(&policy), &start, data, None, &AppraisalConfig::default());
}
