//! Policies: rules that judge evidence and say, for each failure, what and where.

pub mod measured_boot;
pub mod pcr;
