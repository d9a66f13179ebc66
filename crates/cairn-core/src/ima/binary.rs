//! `binary_runtime_measurements`: per entry a u32 PCR, the 20-byte SHA-1 template hash, a u32
//! template-name length and name, then (except for the legacy `ima` template) a u32 template-data
//! length and the template data exactly as the kernel hashed it.
//!
//! Integers are in the measuring kernel's byte order (little-endian on x86, and on every kernel
//! booted with `ima_canonical_fmt`); big-endian logs are accepted when told so. Inside template
//! data each field is a u32 length and its bytes. The legacy `ima` template has no data length:
//! a 20-byte digest, then a u32 name length and the name.

use crate::codec::Reader;
use crate::error::ParseError;
use crate::ima::entry::{ImaEntry, Template, TemplateHash};
use crate::ima::field::{Blob, FileDigest};

/// Longest template name (TCG_EVENT_NAME_LEN_MAX).
pub const MAX_TEMPLATE_NAME_LEN: usize = 255;
/// Largest template data accepted for one entry.
pub const MAX_TEMPLATE_DATA_LEN: usize = 64 << 20;
/// Template hash length in the binary format (TPM_DIGEST_SIZE).
pub const TEMPLATE_HASH_LEN: usize = 20;

/// Byte order of a binary log's integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian (x86, arm64, canonical format).
    Little,
    /// Big-endian (s390x, ppc64 without `ima_canonical_fmt`).
    Big,
}

fn u32_of(r: &mut Reader<'_>, e: Endian, field: &'static str) -> Result<u32, ParseError> {
    match e {
        Endian::Little => r.u32_le(field),
        Endian::Big => r.u32_be(field),
    }
}

fn len_of(r: &mut Reader<'_>, e: Endian, max: usize, field: &'static str) -> Result<usize, ParseError> {
    let offset = r.offset();
    let n = u32_of(r, e, field)? as usize;
    if n > max {
        return Err(ParseError::TooLarge { field, offset, size: n, max });
    }
    Ok(n)
}

/// Reads one entry from `r`.
pub fn read_entry<'a>(r: &mut Reader<'a>, e: Endian) -> Result<ImaEntry<'a>, ParseError> {
    let pcr = u32_of(r, e, "pcr")?;
    let template_hash = TemplateHash::sha1(r.array::<TEMPLATE_HASH_LEN>("template hash")?);
    let name_len = len_of(r, e, MAX_TEMPLATE_NAME_LEN, "template name length")?;
    let name = r.take(name_len, "template name")?;
    if name == b"ima" {
        let d = r.take(20, "d")?;
        let n_len = len_of(r, e, MAX_TEMPLATE_NAME_LEN, "n length")?;
        let path = r.take(n_len, "n")?;
        let digest = FileDigest::new(b"", d, "d")?;
        return Ok(ImaEntry { pcr, template_hash, template_name: name, template: Template::Ima { digest, path }, raw_data: None });
    }
    let data_len = len_of(r, e, MAX_TEMPLATE_DATA_LEN, "template data length")?;
    let mut data = r.sub(data_len, "template data")?;
    let raw = data.rest();
    let template = read_template(name, &mut data, e)?;
    Ok(ImaEntry { pcr, template_hash, template_name: name, template, raw_data: Some(raw) })
}

fn read_template<'a>(name: &[u8], r: &mut Reader<'a>, e: Endian) -> Result<Template<'a>, ParseError> {
    let template = match name {
        b"ima-ng" => Template::ImaNg { digest: d_ng(r, e, "d-ng")?, path: n_ng(r, e)? },
        b"ima-sig" => Template::ImaSig { digest: d_ng(r, e, "d-ng")?, path: n_ng(r, e)?, sig: blob(r, e, "sig")? },
        b"ima-buf" => Template::ImaBuf { digest: d_ng(r, e, "d-ng")?, name: n_ng(r, e)?, buf: blob(r, e, "buf")? },
        b"ima-modsig" => {
            let digest = d_ng(r, e, "d-ng")?;
            let path = n_ng(r, e)?;
            let sig = blob(r, e, "sig")?;
            let dm = field(r, e, "d-modsig")?;
            let modsig_digest = if dm.is_empty() { None } else { Some(split_d_ng(dm, "d-modsig")?) };
            Template::ImaModsig { digest, path, sig, modsig_digest, modsig: blob(r, e, "modsig")? }
        }
        _ => return Ok(Template::Unknown),
    };
    r.finish("template data")?;
    Ok(template)
}

fn field<'a>(r: &mut Reader<'a>, e: Endian, name: &'static str) -> Result<&'a [u8], ParseError> {
    let n = len_of(r, e, MAX_TEMPLATE_DATA_LEN, name)?;
    r.take(n, name)
}

fn blob<'a>(r: &mut Reader<'a>, e: Endian, name: &'static str) -> Result<Blob<'a>, ParseError> {
    Ok(Blob::Raw(field(r, e, name)?))
}

fn d_ng<'a>(r: &mut Reader<'a>, e: Endian, name: &'static str) -> Result<FileDigest<'a>, ParseError> {
    let f = field(r, e, name)?;
    split_d_ng(f, name)
}

/// `"<algo>:" NUL digest`, or a bare digest.
fn split_d_ng<'a>(f: &'a [u8], name: &'static str) -> Result<FileDigest<'a>, ParseError> {
    match f.iter().position(|b| *b == b':') {
        Some(i) if f.get(i + 1) == Some(&0) => {
            FileDigest::new(f.get(..i).unwrap_or_default(), f.get(i + 2..).unwrap_or_default(), name)
        }
        _ => FileDigest::new(b"", f, name),
    }
}

/// Path NUL: the NUL is dropped.
fn n_ng<'a>(r: &mut Reader<'a>, e: Endian) -> Result<&'a [u8], ParseError> {
    let f = field(r, e, "n-ng")?;
    Ok(f.strip_suffix(&[0]).unwrap_or(f))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ima_ng_entry() -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&26u32.to_le_bytes());
        data.extend_from_slice(b"sha1:\0");
        data.extend_from_slice(&[0xAB; 20]);
        data.extend_from_slice(&6u32.to_le_bytes());
        data.extend_from_slice(b"/init\0");
        let mut v = Vec::new();
        v.extend_from_slice(&10u32.to_le_bytes());
        v.extend_from_slice(&crate::HashAlg::Sha1.hash(&data).as_bytes()[..20]);
        v.extend_from_slice(&6u32.to_le_bytes());
        v.extend_from_slice(b"ima-ng");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&data);
        v
    }

    #[test]
    fn reads_an_ima_ng_entry() {
        let bytes = ima_ng_entry();
        let mut r = Reader::new(&bytes);
        let e = read_entry(&mut r, Endian::Little).unwrap();
        assert!(r.is_empty());
        assert_eq!(e.template.path(), Some(&b"/init"[..]));
        assert_eq!(e.template.digest().unwrap().as_bytes(), &[0xAB; 20]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = ima_ng_entry();
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            assert!(read_entry(&mut r, Endian::Little).is_err(), "cut at {cut}");
        }
    }
}
