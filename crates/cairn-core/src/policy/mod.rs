//! Policies: what evidence must look like for a node to be trusted, and for each failure,
//! what and where.

pub mod measured_boot;
pub mod pcr;
pub mod runtime;
