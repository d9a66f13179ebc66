//! Fuzz target `levels`.

use cairn_core::levels::{feed_to_json, parse_deb822, parse_json_feed, parse_packages_index, DebVersion, Suite};

/// Debian versions (every whitespace-separated word; the order must be a total order that agrees
/// in both directions and with equality), deb822 stanzas, `Packages` indexes and the JSON feed (what
/// parses must survive writing and reading back unchanged).
pub fn levels(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let versions: Vec<DebVersion> = text.split_whitespace().filter_map(|w| DebVersion::parse(w).ok()).take(64).collect();
    for a in &versions {
        assert_eq!(DebVersion::parse(a.as_str()).ok().as_ref(), Some(a), "reparse of {a}");
        for b in &versions {
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} vs {b}");
            assert_eq!(a == b, a.cmp(b).is_eq());
        }
    }
    let _ = parse_deb822(&text);
    for suite in [Suite::Security, Suite::Updates] {
        let _ = parse_packages_index(&text, suite);
    }
    if let Ok(feed) = parse_json_feed(data) {
        let again = parse_json_feed(feed_to_json(&feed).to_string().as_bytes())
            .unwrap_or_else(|e| panic!("a written feed does not read back: {e}"));
        assert_eq!(again, feed, "feed changed through JSON");
    }
}
