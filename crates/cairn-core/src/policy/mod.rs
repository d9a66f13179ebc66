//! Policies: what evidence must look like for a node to be trusted.

pub mod runtime;
