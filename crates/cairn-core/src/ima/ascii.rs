//! `ascii_runtime_measurements`: one entry per line, `PCR template-hash template-name fields…`.
//!
//! Fields are separated by single spaces; the last field may be empty, so a line may end with a
//! space (an `ima-sig` entry without signature) and only the newline is stripped. `ima-ng` paths are
//! the rest of the line (they may contain spaces); in other templates the kernel has replaced spaces.
//! Template hashes, `sig`, `buf` and `modsig` are hex; `d-ng` is `<algo>:<hex>`.

use crate::error::ParseError;
use crate::ima::entry::{ImaEntry, Template, TemplateHash};
use crate::ima::field::{Blob, FileDigest, FileHashAlg};

/// Longest line accepted (an `ima-buf` with a large certificate is a few KiB of hex).
pub const MAX_LINE_LEN: usize = 1 << 20;

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<ImaEntry<'_>, ParseError> {
    parse_line_or(line, |e| e)
}

/// [`parse_line`], with its error turned into the caller's by `err`: the entry is then built
/// where the caller's result lives rather than moved there (an entry is a few hundred bytes).
#[inline]
pub(crate) fn parse_line_or<E>(line: &[u8], err: impl FnOnce(ParseError) -> E) -> Result<ImaEntry<'_>, E> {
    if let Some((pcr, template_hash, name, fields)) = common_head(line) {
        return match parse_template(name, fields) {
            Ok(template) => Ok(ImaEntry { pcr, template_hash, template_name: name, template, raw_data: None }),
            Err(e) => Err(err(e)),
        };
    }
    parse_general(line).map_err(err)
}

/// Every line `common_head` does not take, and every error.
#[cold]
fn parse_general(line: &[u8]) -> Result<ImaEntry<'_>, ParseError> {
    if line.len() > MAX_LINE_LEN {
        return Err(ParseError::TooLarge { field: "line", offset: 0, size: line.len(), max: MAX_LINE_LEN });
    }
    let (pcr, rest) = split_field(line, "pcr")?;
    let (thash, rest) = split_field(rest, "template hash")?;
    let (name, fields) = split_field(rest, "template name")?;
    let pcr = std::str::from_utf8(pcr)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| ParseError::text("pcr", "not a decimal number"))?;
    let template_hash = parse_template_hash(thash)?;
    let template = parse_template(name, fields)?;
    Ok(ImaEntry { pcr, template_hash, template_name: name, template, raw_data: None })
}

/// The head of a line as every kernel writes it — a decimal PCR, a 40-digit SHA-1 template hash,
/// a template name — read without searching for the separators: the hash's length is known, and a
/// successful decode proves there is no space inside it. Anything else (`None`) goes through the
/// general path, which also gives the error.
fn common_head(line: &[u8]) -> Option<(u32, TemplateHash, &[u8], &[u8])> {
    const PCR_DIGITS: usize = 10;
    const SHA1_HEX: usize = 40;
    if line.len() > MAX_LINE_LEN {
        return None;
    }
    let end = line.iter().take(PCR_DIGITS + 1).position(|b| *b == b' ')?;
    let (digits, rest) = line.split_at_checked(end)?;
    if digits.is_empty() {
        return None;
    }
    let mut pcr = 0u32;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        pcr = pcr.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    let (hash_text, rest) = rest.get(1..)?.split_at_checked(SHA1_HEX)?;
    let rest = rest.strip_prefix(b" ")?;
    let template_hash = TemplateHash::sha1_from_hex(hash_text)?;
    if let Some(fields) = rest.strip_prefix(b"ima-ng ") {
        return Some((pcr, template_hash, rest.get(..6)?, fields));
    }
    let end = rest.iter().position(|b| *b == b' ')?;
    let (name, fields) = rest.split_at_checked(end)?;
    Some((pcr, template_hash, name, fields.get(1..)?))
}

fn parse_template_hash(hex_text: &[u8]) -> Result<TemplateHash, ParseError> {
    if hex_text.is_empty() {
        return Err(ParseError::text("template hash", "empty"));
    }
    TemplateHash::from_hex(hex_text, "template hash")
}

fn parse_template<'a>(name: &'a [u8], fields: &'a [u8]) -> Result<Template<'a>, ParseError> {
    if name == b"ima-ng" {
        let (digest, path) = d_ng_field(fields)?;
        return Ok(Template::ImaNg { digest, path });
    }
    Ok(match name {
        b"ima" => {
            let (d, path) = split_field(fields, "d")?;
            Template::Ima { digest: FileDigest::from_hex(b"", d, "d")?, path }
        }
        b"ima-ng" => {
            let (digest, path) = d_ng_field(fields)?;
            Template::ImaNg { digest, path }
        }
        b"ima-sig" => {
            let (digest, rest) = d_ng_field(fields)?;
            let (path, sig) = split_last(rest);
            Template::ImaSig { digest, path, sig: Blob::hex(sig, "sig")? }
        }
        b"ima-buf" => {
            let (digest, rest) = d_ng_field(fields)?;
            let (name, buf) = split_last(rest);
            Template::ImaBuf { digest, name, buf: Blob::hex(buf, "buf")? }
        }
        b"ima-modsig" => {
            let (d, rest) = split_field(fields, "d-ng")?;
            let (path, rest) = split_field(rest, "n-ng")?;
            let (sig, rest) = split_field(rest, "sig")?;
            let (dm, modsig) = split_last(rest);
            let modsig_digest = if dm.is_empty() { None } else { Some(d_ng(dm)?) };
            Template::ImaModsig {
                digest: d_ng(d)?,
                path,
                sig: Blob::hex(sig, "sig")?,
                modsig_digest,
                modsig: Blob::hex(modsig, "modsig")?,
            }
        }
        _ => Template::Unknown,
    })
}

/// The leading `d-ng` field and the fields after it. A named algorithm gives the digest's length,
/// so its end is not searched for; anything unusual takes the general path.
fn d_ng_field(fields: &[u8]) -> Result<(FileDigest<'_>, &[u8]), ParseError> {
    if let Some(found) = d_ng_known_length(fields) {
        return Ok(found);
    }
    let (d, rest) = split_field(fields, "d-ng")?;
    Ok((d_ng(d)?, rest))
}

fn d_ng_known_length(fields: &[u8]) -> Option<(FileDigest<'_>, &[u8])> {
    let (algo, alg, rest) = KNOWN_ALGORITHMS.iter().find_map(|(name, alg)| {
        let rest = fields.strip_prefix(*name)?.strip_prefix(b":")?;
        Some((fields.get(..name.len())?, *alg, rest))
    })?;
    let (hex_text, rest) = rest.split_at_checked(2 * alg.digest_len())?;
    let rest = rest.strip_prefix(b" ")?;
    Some((FileDigest::from_hex_known(algo, alg, hex_text)?, rest))
}

/// `d-ng` algorithm names, the most common first.
const KNOWN_ALGORITHMS: [(&[u8], FileHashAlg); 8] = [
    (b"sha256", FileHashAlg::Sha256),
    (b"sha1", FileHashAlg::Sha1),
    (b"sha512", FileHashAlg::Sha512),
    (b"sha384", FileHashAlg::Sha384),
    (b"sm3", FileHashAlg::Sm3),
    (b"sm3-256", FileHashAlg::Sm3),
    (b"sm3_256", FileHashAlg::Sm3),
    (b"md5", FileHashAlg::Md5),
];

/// `<algo>:<hex>`, or bare hex (then SHA-1 or MD5 by length, as Keylime reads it).
fn d_ng(text: &[u8]) -> Result<FileDigest<'_>, ParseError> {
    match text.iter().position(|b| *b == b':') {
        Some(i) => {
            let algo = text.get(..i).unwrap_or_default();
            let hex_text = text.get(i + 1..).unwrap_or_default();
            if algo.is_empty() {
                return Err(ParseError::text("d-ng", "empty algorithm name"));
            }
            FileDigest::from_hex(algo, hex_text, "d-ng")
        }
        None => {
            let d = FileDigest::from_hex(b"", text, "d-ng")?;
            if d.alg().is_none() {
                return Err(ParseError::text("d-ng", "no algorithm and not a SHA-1 or MD5 digest"));
            }
            Ok(d)
        }
    }
}

/// Splits at the first space; the field before it must exist (the rest may be empty).
fn split_field<'a>(s: &'a [u8], field: &'static str) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let i = memchr::memchr(b' ', s).ok_or_else(|| ParseError::text(field, "missing field"))?;
    Ok((s.get(..i).unwrap_or_default(), s.get(i + 1..).unwrap_or_default()))
}

/// Splits the last field off (it may be empty, or absent when the trailing space was trimmed).
fn split_last(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memrchr(b' ', s) {
        Some(i) => (s.get(..i).unwrap_or_default(), s.get(i + 1..).unwrap_or_default()),
        None => (s, &[]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ima_sig_line_with_empty_signature() {
        let line = b"10 0c8a706a75a5689c1e168f0a573a3cbec33061b5 ima-sig sha256:e4cb9f5709c88376b5fc3743cd88e76b9aae8f3d992d845678de5215edb31216 boot_aggregate ";
        let e = parse_line(line).unwrap();
        match e.template {
            Template::ImaSig { path, sig, .. } => {
                assert_eq!(path, b"boot_aggregate");
                assert!(sig.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ima_ng_path_may_contain_spaces_and_bad_digests_fail() {
        let e = parse_line(b"10 00 ima-ng sha1:0000000000000000000000000000000000000000 /a b").unwrap();
        assert_eq!(e.template.path(), Some(&b"/a b"[..]));
        assert!(e.template_hash.is_violation());
        assert!(parse_line(b"10 00 ima-ng sha256:00 /a").is_err());
        assert!(parse_line(b"x 00 ima-ng sha1:00 /a").is_err());
        assert!(parse_line(b"10 00").is_err());
    }

    fn pick(v: &[&'static str]) -> impl Strategy<Value = &'static str> + Clone {
        proptest::sample::select(v.to_vec())
    }

    /// A `d-ng` field and what follows it, from pieces the fast path looks at, good and bad.
    fn d_ng_pieces() -> impl Strategy<Value = String> {
        let algo =
            pick(&["sha256", "sha1", "sha512", "sha384", "sm3", "sm3-256", "sm3_256", "md5", "SHA256", "", "sha25"]);
        let colon = pick(&[":", ":", ":", "", " "]);
        let digest = prop_oneof![
            "[0-9a-f]{64}",
            "[0-9a-f]{40}",
            "[0-9a-f]{32}",
            "[0-9a-f]{96}",
            "[0-9a-f]{128}",
            "[0-9a-f]{63}",
            "[0-9A-F]{64}",
            "[0-9a-fz: ]{64}",
        ];
        let after = pick(&[" ", " ", " ", "", "  ", ":"]);
        let tail = pick(&["/usr/bin/a b", "", " ", "/p 0a0b", "/p  ", "boot_aggregate"]);
        (algo, colon, digest, after, tail).prop_map(|(a, c, d, s, t)| format!("{a}{c}{d}{s}{t}"))
    }

    /// Whole lines: a head (PCR, template hash, name) from good and bad pieces, then a `d-ng` tail.
    fn line_pieces() -> impl Strategy<Value = Vec<u8>> {
        let pcr = pick(&["10", "10", "0", "4294967295", "4294967296", "+10", "1x", "", "12345678901"]);
        let hash = prop_oneof![
            4 => "[0-9a-f]{40}",
            1 => "[0-9A-F]{40}",
            1 => "[0-9a-f]{39}",
            1 => "[0-9a-f]{64}",
            1 => "[0-9a-fg ]{40}",
            1 => Just("0".repeat(40)),
        ];
        let name = pick(&["ima-ng", "ima-ng", "ima-sig", "ima-buf", "ima", "ima-modsig", "ima-ngx", "other"]);
        let sep = || pick(&[" ", " ", " ", " ", "  ", ":", ""]);
        (pcr, sep(), hash, sep(), name, sep(), d_ng_pieces()).prop_map(|(pcr, s1, hash, s2, name, s3, fields)| {
            format!("{pcr}{s1}{hash}{s2}{name}{s3}{fields}").into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_agrees_with_the_general_parser(line in line_pieces()) {
            prop_assert_eq!(parse_line(&line), parse_general(&line));
        }

        #[test]
        fn d_ng_fast_path_agrees_with_splitting_at_the_space(fields in d_ng_pieces()) {
            let fields = fields.as_bytes();
            let general = split_field(fields, "d-ng").and_then(|(d, rest)| Ok((d_ng(d)?, rest)));
            prop_assert_eq!(d_ng_field(fields), general);
        }

        #[test]
        fn fast_path_agrees_on_any_bytes(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(parse_line(&line), parse_general(&line));
        }
    }

    #[test]
    fn rebuilt_ima_ng_data_matches_logged_template_hash() {
        let line = b"10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate";
        let e = parse_line(line).unwrap();
        let mut scratch = Vec::new();
        let data = e.template_data(&mut scratch).unwrap();
        assert_eq!(crate::HashAlg::Sha1.hash(data).as_bytes(), e.template_hash.as_bytes());
    }
}
