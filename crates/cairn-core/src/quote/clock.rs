//! The TPM clock rule across quotes of the same AK.

use crate::tpm::ClockInfo;

use super::QuoteFailure;

/// Accepts `current` only if (resetCount, restartCount, clock) did not go back from `previous`.
///
/// Lexicographic, not per field: a reboot bumps resetCount and returns restartCount to 0, and a
/// TPM Reset after an unorderly shutdown may roll `clock` back — both are fine when resetCount grew.
pub fn check_clock(previous: &ClockInfo, current: &ClockInfo) -> Result<(), QuoteFailure> {
    let key = |c: &ClockInfo| (c.reset_count, c.restart_count, c.clock);
    if key(current) >= key(previous) {
        Ok(())
    } else {
        Err(QuoteFailure::ClockWentBack { previous: *previous, current: *current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(reset: u32, restart: u32, clock: u64) -> ClockInfo {
        ClockInfo { clock, reset_count: reset, restart_count: restart, safe: true }
    }

    #[test]
    fn reboot_resets_restart_count_and_is_accepted() {
        assert!(check_clock(&c(3, 5, 9000), &c(4, 0, 100)).is_ok());
    }

    #[test]
    fn going_back_in_any_position_fails() {
        assert!(check_clock(&c(3, 0, 9000), &c(3, 0, 8999)).is_err());
        assert!(check_clock(&c(3, 2, 9000), &c(3, 1, 9999)).is_err());
        assert!(check_clock(&c(3, 0, 9000), &c(2, 9, 99999)).is_err());
    }

    #[test]
    fn resume_and_time_passing_are_accepted() {
        assert!(check_clock(&c(3, 0, 9000), &c(3, 1, 9500)).is_ok());
        assert!(check_clock(&c(3, 0, 9000), &c(3, 0, 9000)).is_ok());
    }
}
