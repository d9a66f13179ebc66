//! `ascii_runtime_measurements`: one entry per line, `PCR template-hash template-name fields…`.
//!
//! Fields are separated by single spaces; the last field may be empty, so a line may end with a
//! space (an `ima-sig` entry without signature) and only the newline is stripped. `ima-ng` paths are
//! the rest of the line (they may contain spaces); in other templates the kernel has replaced spaces.
//! Template hashes, `sig`, `buf` and `modsig` are hex; `d-ng` is `<algo>:<hex>`.

use crate::error::ParseError;
use crate::ima::entry::{ImaEntry, Template, TemplateHash};
use crate::ima::field::{Blob, FileDigest};

/// Longest line accepted (an `ima-buf` with a large certificate is a few KiB of hex).
pub const MAX_LINE_LEN: usize = 1 << 20;

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<ImaEntry<'_>, ParseError> {
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

fn parse_template_hash(hex_text: &[u8]) -> Result<TemplateHash, ParseError> {
    let mut buf = [0u8; crate::alg::MAX_DIGEST_LEN];
    let n = hex_text.len() / 2;
    let out = buf.get_mut(..n).ok_or_else(|| ParseError::text("template hash", "longer than 64 bytes"))?;
    if !crate::ima::field::decode_hex(hex_text, out) {
        return Err(ParseError::text("template hash", "not an even number of hex digits"));
    }
    if n == 0 {
        return Err(ParseError::text("template hash", "empty"));
    }
    TemplateHash::new(out).ok_or_else(|| ParseError::text("template hash", "longer than 64 bytes"))
}

fn parse_template<'a>(name: &'a [u8], fields: &'a [u8]) -> Result<Template<'a>, ParseError> {
    Ok(match name {
        b"ima" => {
            let (d, path) = split_field(fields, "d")?;
            Template::Ima { digest: FileDigest::from_hex(b"", d, "d")?, path }
        }
        b"ima-ng" => {
            let (d, path) = split_field(fields, "d-ng")?;
            Template::ImaNg { digest: d_ng(d)?, path }
        }
        b"ima-sig" => {
            let (d, rest) = split_field(fields, "d-ng")?;
            let (path, sig) = split_last(rest);
            Template::ImaSig { digest: d_ng(d)?, path, sig: Blob::hex(sig, "sig")? }
        }
        b"ima-buf" => {
            let (d, rest) = split_field(fields, "d-ng")?;
            let (name, buf) = split_last(rest);
            Template::ImaBuf { digest: d_ng(d)?, name, buf: Blob::hex(buf, "buf")? }
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

    #[test]
    fn rebuilt_ima_ng_data_matches_logged_template_hash() {
        let line = b"10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate";
        let e = parse_line(line).unwrap();
        let mut scratch = Vec::new();
        let data = e.template_data(&mut scratch).unwrap();
        assert_eq!(crate::HashAlg::Sha1.hash(data).as_bytes(), e.template_hash.as_bytes());
    }
}
