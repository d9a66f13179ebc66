//! Keylime runtime policies (placeholder).
