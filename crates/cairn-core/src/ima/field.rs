//! Field values of IMA templates: file digests (`d`, `d-ng`), and opaque byte fields (`sig`, `buf`,
//! `modsig`) that the ASCII log shows as hex.
//!
//! Both are borrowed from the input so a replay allocates nothing per entry: a digest is decoded
//! into an inline buffer (no digest IMA knows is longer than 64 bytes), an opaque field stays as the
//! raw slice (binary log) or as validated hex text (ASCII log) and is decoded only when needed.

use std::fmt;

use crate::alg::MAX_DIGEST_LEN;
use crate::error::ParseError;
use crate::ima::hex;

/// A file-digest algorithm as IMA names it in a `d-ng` field (the kernel's `hash_algo_name[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileHashAlg {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SM3-256 (`sm3` or `sm3-256`).
    Sm3,
}

impl FileHashAlg {
    /// The algorithm for a `d-ng` prefix, if known.
    pub fn from_name(name: &[u8]) -> Option<FileHashAlg> {
        Some(match name {
            b"md5" => FileHashAlg::Md5,
            b"sha1" => FileHashAlg::Sha1,
            b"sha256" => FileHashAlg::Sha256,
            b"sha384" => FileHashAlg::Sha384,
            b"sha512" => FileHashAlg::Sha512,
            b"sm3" | b"sm3-256" | b"sm3_256" => FileHashAlg::Sm3,
            _ => return None,
        })
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            FileHashAlg::Md5 => 16,
            FileHashAlg::Sha1 => 20,
            FileHashAlg::Sha256 | FileHashAlg::Sm3 => 32,
            FileHashAlg::Sha384 => 48,
            FileHashAlg::Sha512 => 64,
        }
    }

    /// IMA's `hash_algo` enum value (include/uapi/linux/hash_info.h), used in signature headers.
    pub fn ima_hash_algo(self) -> u8 {
        match self {
            FileHashAlg::Md5 => 1,
            FileHashAlg::Sha1 => 2,
            FileHashAlg::Sha256 => 4,
            FileHashAlg::Sha384 => 5,
            FileHashAlg::Sha512 => 6,
            FileHashAlg::Sm3 => 17,
        }
    }
}

/// A file digest (`d` / `d-ng` / `d-modsig` field): the algorithm name as logged and the digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileDigest<'a> {
    algo: &'a [u8],
    len: u8,
    bytes: [u8; MAX_DIGEST_LEN],
}

impl<'a> FileDigest<'a> {
    /// A digest from its algorithm name (may be empty: legacy `ima` template) and raw bytes.
    pub fn new(algo: &'a [u8], digest: &[u8], field: &'static str) -> Result<Self, ParseError> {
        let mut d = FileDigest { algo, len: digest.len() as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        match d.bytes.get_mut(..digest.len()) {
            Some(out) => out.copy_from_slice(digest),
            None => return Err(ParseError::TooLarge { field, offset: 0, size: digest.len(), max: MAX_DIGEST_LEN }),
        }
        d.check_length(field)?;
        Ok(d)
    }

    /// A known algorithm's digest must have that algorithm's length.
    fn check_length(&self, field: &'static str) -> Result<(), ParseError> {
        match FileHashAlg::from_name(self.algo) {
            Some(alg) if alg.digest_len() != usize::from(self.len) => Err(ParseError::DigestLength {
                field,
                alg: alg_name(alg),
                len: usize::from(self.len),
                expected: alg.digest_len(),
            }),
            _ => Ok(()),
        }
    }

    /// A digest from hex text, decoded straight into place.
    pub fn from_hex(algo: &'a [u8], hex_text: &[u8], field: &'static str) -> Result<Self, ParseError> {
        let n = hex_text.len() / 2;
        if n > MAX_DIGEST_LEN {
            return Err(ParseError::TooLarge { field, offset: 0, size: n, max: MAX_DIGEST_LEN });
        }
        let mut d = FileDigest { algo, len: n as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        let out = d.bytes.get_mut(..n).unwrap_or_default();
        hex::decode(hex_text, out).map_err(|e| e.in_field(field))?;
        d.check_length(field)?;
        Ok(d)
    }

    /// A digest of a named algorithm from exactly its number of hex digits; `None` for anything
    /// else (the general [`FileDigest::from_hex`] then says what is wrong).
    #[inline]
    pub(crate) fn from_hex_known(algo: &'a [u8], alg: FileHashAlg, hex_text: &[u8]) -> Option<Self> {
        fn fill<const N: usize>(bytes: &mut [u8; MAX_DIGEST_LEN], hex_text: &[u8]) -> Option<()> {
            hex::decode_fixed::<N>(hex_text, bytes.first_chunk_mut::<N>()?).ok()
        }
        let mut d = FileDigest { algo, len: alg.digest_len() as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        match alg {
            FileHashAlg::Md5 => fill::<16>(&mut d.bytes, hex_text)?,
            FileHashAlg::Sha1 => fill::<20>(&mut d.bytes, hex_text)?,
            FileHashAlg::Sha256 | FileHashAlg::Sm3 => fill::<32>(&mut d.bytes, hex_text)?,
            FileHashAlg::Sha384 => fill::<48>(&mut d.bytes, hex_text)?,
            FileHashAlg::Sha512 => fill::<64>(&mut d.bytes, hex_text)?,
        }
        Some(d)
    }

    /// The algorithm name as logged (`sha256`, `sm3`, …); empty for the legacy `ima` template.
    pub fn algo_name(&self) -> &'a [u8] {
        self.algo
    }

    /// The algorithm, when IMA's name for it is known here.
    pub fn alg(&self) -> Option<FileHashAlg> {
        if self.algo.is_empty() {
            return match self.len {
                20 => Some(FileHashAlg::Sha1),
                16 => Some(FileHashAlg::Md5),
                _ => None,
            };
        }
        FileHashAlg::from_name(self.algo)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&self.bytes)
    }

    /// Lower-case hex of the digest.
    pub fn to_hex(&self) -> String {
        ::hex::encode(self.as_bytes())
    }
}

fn alg_name(alg: FileHashAlg) -> &'static str {
    match alg {
        FileHashAlg::Md5 => "md5",
        FileHashAlg::Sha1 => "sha1",
        FileHashAlg::Sha256 => "sha256",
        FileHashAlg::Sha384 => "sha384",
        FileHashAlg::Sha512 => "sha512",
        FileHashAlg::Sm3 => "sm3",
    }
}

impl fmt::Debug for FileDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", String::from_utf8_lossy(self.algo), self.to_hex())
    }
}

/// An opaque template field (`sig`, `buf`, `modsig`): raw bytes, or hex text from the ASCII log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blob<'a> {
    /// Bytes as found in a binary log.
    Raw(&'a [u8]),
    /// Even-length hex text, already checked to contain only hex digits.
    Hex(&'a [u8]),
}

impl<'a> Blob<'a> {
    /// Checks `text` is hex and wraps it.
    pub fn hex(text: &'a [u8], field: &'static str) -> Result<Self, ParseError> {
        hex::check(text).map_err(|e| e.in_field(field))?;
        Ok(Blob::Hex(text))
    }

    /// Length of the decoded bytes.
    pub fn len(&self) -> usize {
        match self {
            Blob::Raw(b) => b.len(),
            Blob::Hex(h) => h.len() / 2,
        }
    }

    /// True when the field is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the decoded bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Blob::Raw(b) => out.extend_from_slice(b),
            Blob::Hex(h) => {
                let start = out.len();
                out.resize(start + h.len() / 2, 0);
                if let Some(dst) = out.get_mut(start..) {
                    // Checked at construction: even length, hex digits only.
                    let _ = hex::decode(h, dst);
                }
            }
        }
    }

    /// The decoded bytes in a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.write_to(&mut v);
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn digest_length_is_checked_for_known_algorithms() {
        assert!(FileDigest::from_hex(b"sha256", b"00", "d-ng").is_err());
        let d = FileDigest::from_hex(b"sm3-256", &[b'a'; 64], "d-ng").unwrap();
        assert_eq!(d.alg(), Some(FileHashAlg::Sm3));
        let legacy = FileDigest::new(b"", &[0; 20], "d").unwrap();
        assert_eq!(legacy.alg(), Some(FileHashAlg::Sha1));
        assert!(FileDigest::new(b"wp512x", &[0; 65], "d-ng").is_err());
    }

    #[test]
    fn hex_blob_decodes_lazily() {
        assert!(Blob::hex(b"abc", "buf").is_err());
        assert!(Blob::hex(b"zz", "buf").is_err());
        let b = Blob::hex(b"00ff", "buf").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.to_vec(), vec![0, 0xff]);
    }
}
