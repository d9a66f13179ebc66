//! One function per fuzz target.
