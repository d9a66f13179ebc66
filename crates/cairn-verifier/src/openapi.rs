//! The OpenAPI 3 document of the verifier's API, served at `/cairn/v1/openapi.json`.
//! A test checks that every route of the router is in it.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        // The router's paths (api.rs), with `{v}` for the version segment.
        let source = include_str!("api.rs");
        let routes: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert!(routes.len() > 15, "{routes:?}");
        for r in routes {
            let canonical = if r.ends_with('/') || r.starts_with("/cairn") || r == "/version" || r == "/metrics" {
                r.to_owned()
            } else if r.matches('/').count() == 2 && r.starts_with("/{v}/") {
                format!("{r}/") // `/{v}/agents` is served like `/{v}/agents/`
            } else {
                r.to_owned()
            };
            assert!(paths.contains_key(&canonical), "route {r} is not in openapi.json");
        }
    }
}
