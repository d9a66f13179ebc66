//! The OpenAPI 3 document of the verifier's API, served at `/cairn/v1/openapi.json`.
//! A test checks that every route of the router is in it.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");
