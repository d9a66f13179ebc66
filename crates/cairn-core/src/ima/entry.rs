//! One IMA measurement (`struct ima_template_entry` as the kernel exports it) and its template
//! fields, plus the canonical template-data encoding that the kernel hashes into PCR 10.
//!
//! The ASCII log shows fields, not template data, so for non-SHA-1 banks (and to check the logged
//! template hash) the data is rebuilt: every field of `ima-ng`-style templates is a u32-LE length
//! followed by the field (`d-ng` = `"<algo>:" NUL digest`, `n-ng` = path NUL); the legacy `ima`
//! template is the 20-byte digest followed by the name NUL-padded to 256 bytes, without lengths.

use crate::alg::MAX_DIGEST_LEN;
use crate::error::ParseError;
use crate::ima::field::{Blob, FileDigest};

/// Name length the legacy `ima` template pads to: IMA_EVENT_NAME_LEN_MAX + 1.
pub const IMA_LEGACY_NAME_LEN: usize = 256;

/// A template hash as logged (SHA-1 in every kernel so far; kept up to 64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TemplateHash {
    len: u8,
    bytes: [u8; MAX_DIGEST_LEN],
}

impl TemplateHash {
    /// A template hash from bytes (at most 64).
    pub fn new(b: &[u8]) -> Option<TemplateHash> {
        if b.len() > MAX_DIGEST_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
        Some(TemplateHash { len: b.len() as u8, bytes })
    }

    /// A template hash from hex text (at most 128 digits), decoded straight into place.
    pub fn from_hex(text: &[u8], field: &'static str) -> Result<TemplateHash, ParseError> {
        let n = text.len() / 2;
        let mut t = TemplateHash { len: n as u8, bytes: [0u8; MAX_DIGEST_LEN] };
        let out = t.bytes.get_mut(..n).ok_or_else(|| ParseError::text(field, "longer than 64 bytes"))?;
        crate::ima::hex::decode(text, out).map_err(|e| e.in_field(field))?;
        Ok(t)
    }

    /// A SHA-1 template hash from exactly 40 hex digits; `None` for anything else.
    #[inline]
    pub(crate) fn sha1_from_hex(text: &[u8]) -> Option<TemplateHash> {
        let mut t = TemplateHash { len: 20, bytes: [0u8; MAX_DIGEST_LEN] };
        crate::ima::hex::decode_fixed::<20>(text, t.bytes.first_chunk_mut::<20>()?).ok()?;
        Some(t)
    }

    /// A 20-byte (SHA-1) template hash.
    pub fn sha1(b: [u8; 20]) -> TemplateHash {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes.iter_mut().zip(b).for_each(|(d, s)| *d = s);
        TemplateHash { len: 20, bytes }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&self.bytes)
    }

    /// True for a violation (ToMToU / open-writers) record: the kernel logs an all-zero hash
    /// and extends all-ones.
    pub fn is_violation(&self) -> bool {
        self.as_bytes().iter().all(|b| *b == 0)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl std::fmt::Debug for TemplateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The fields of the templates Cairn understands (the kernel's built-in template descriptors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template<'a> {
    /// `ima` (`d|n`): SHA-1 or MD5 digest and a name.
    Ima {
        /// File digest.
        digest: FileDigest<'a>,
        /// Path.
        path: &'a [u8],
    },
    /// `ima-ng` (`d-ng|n-ng`).
    ImaNg {
        /// File digest.
        digest: FileDigest<'a>,
        /// Path.
        path: &'a [u8],
    },
    /// `ima-sig` (`d-ng|n-ng|sig`); the signature may be empty.
    ImaSig {
        /// File digest.
        digest: FileDigest<'a>,
        /// Path.
        path: &'a [u8],
        /// `security.ima` signature (signature_v2_hdr + signature), or empty.
        sig: Blob<'a>,
    },
    /// `ima-buf` (`d-ng|n-ng|buf`): a measured buffer (keys, kexec command line, dm tables …).
    ImaBuf {
        /// Digest of the buffer.
        digest: FileDigest<'a>,
        /// Buffer name (for keys: the keyring).
        name: &'a [u8],
        /// The buffer.
        buf: Blob<'a>,
    },
    /// `ima-modsig` (`d-ng|n-ng|sig|d-modsig|modsig`).
    ImaModsig {
        /// File digest.
        digest: FileDigest<'a>,
        /// Path.
        path: &'a [u8],
        /// `security.ima` signature, or empty.
        sig: Blob<'a>,
        /// Digest of the file without its appended signature, if any.
        modsig_digest: Option<FileDigest<'a>>,
        /// The appended (PKCS#7) signature, or empty.
        modsig: Blob<'a>,
    },
    /// A template Cairn does not decode; only its template hash (and, in a binary log, its raw
    /// template data) is usable.
    Unknown,
}

impl<'a> Template<'a> {
    /// The file digest, for templates that carry one.
    pub fn digest(&self) -> Option<&FileDigest<'a>> {
        match self {
            Template::Ima { digest, .. }
            | Template::ImaNg { digest, .. }
            | Template::ImaSig { digest, .. }
            | Template::ImaBuf { digest, .. }
            | Template::ImaModsig { digest, .. } => Some(digest),
            Template::Unknown => None,
        }
    }

    /// The path (or, for `ima-buf`, the buffer name).
    pub fn path(&self) -> Option<&'a [u8]> {
        match self {
            Template::Ima { path, .. }
            | Template::ImaNg { path, .. }
            | Template::ImaSig { path, .. }
            | Template::ImaModsig { path, .. } => Some(path),
            Template::ImaBuf { name, .. } => Some(name),
            Template::Unknown => None,
        }
    }

    /// Appends the template data the kernel hashes for this entry. Returns false for
    /// [`Template::Unknown`], whose data cannot be rebuilt.
    pub fn encode(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Template::Ima { digest, path } => {
                out.extend_from_slice(digest.as_bytes());
                let name = path.get(..IMA_LEGACY_NAME_LEN - 1).unwrap_or(path);
                out.extend_from_slice(name);
                out.resize(out.len() + IMA_LEGACY_NAME_LEN - name.len(), 0);
            }
            Template::ImaNg { digest, path } => {
                put_d_ng(out, digest);
                put_n_ng(out, path);
            }
            Template::ImaSig { digest, path, sig } => {
                put_d_ng(out, digest);
                put_n_ng(out, path);
                put_blob(out, sig);
            }
            Template::ImaBuf { digest, name, buf } => {
                put_d_ng(out, digest);
                put_n_ng(out, name);
                put_blob(out, buf);
            }
            Template::ImaModsig { digest, path, sig, modsig_digest, modsig } => {
                put_d_ng(out, digest);
                put_n_ng(out, path);
                put_blob(out, sig);
                match modsig_digest {
                    Some(d) => put_d_ng(out, d),
                    None => put_len(out, 0),
                }
                put_blob(out, modsig);
            }
            Template::Unknown => return false,
        }
        true
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_d_ng(out: &mut Vec<u8>, d: &FileDigest<'_>) {
    let algo = d.algo_name();
    let algo: &[u8] = if algo.is_empty() {
        // Keylime and the kernel name the algorithm even when the ASCII log omits it.
        if d.as_bytes().len() == 16 {
            b"md5"
        } else {
            b"sha1"
        }
    } else {
        algo
    };
    put_len(out, algo.len() + 2 + d.as_bytes().len());
    out.extend_from_slice(algo);
    out.extend_from_slice(b":\0");
    out.extend_from_slice(d.as_bytes());
}

fn put_n_ng(out: &mut Vec<u8>, path: &[u8]) {
    put_len(out, path.len() + 1);
    out.extend_from_slice(path);
    out.push(0);
}

fn put_blob(out: &mut Vec<u8>, b: &Blob<'_>) {
    put_len(out, b.len());
    b.write_to(out);
}

/// One measurement: `struct ima_template_entry` as exported through securityfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImaEntry<'a> {
    /// PCR the entry was extended into (10 unless the IMA policy says otherwise).
    pub pcr: u32,
    /// Template hash as logged.
    pub template_hash: TemplateHash,
    /// Template name (`ima-ng`, `ima-sig`, …).
    pub template_name: &'a [u8],
    /// Decoded fields.
    pub template: Template<'a>,
    /// Template data exactly as the kernel hashed it (binary logs only).
    pub raw_data: Option<&'a [u8]>,
}

impl<'a> ImaEntry<'a> {
    /// The template data the kernel hashed: the raw bytes of a binary log, else the encoding
    /// rebuilt into `scratch`. `None` when neither is available (unknown ASCII template).
    pub fn template_data<'s>(&'s self, scratch: &'s mut Vec<u8>) -> Option<&'s [u8]> {
        if let Some(raw) = self.raw_data {
            return Some(raw);
        }
        scratch.clear();
        if self.template.encode(scratch) {
            Some(scratch.as_slice())
        } else {
            None
        }
    }

    /// Path or buffer name, lossily as text (for reports).
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(self.template.path().unwrap_or_default()).into_owned()
    }
}
