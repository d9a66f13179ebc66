//! Registrar API bodies (Keylime registrar REST 2.x): registration, activation, admin.
