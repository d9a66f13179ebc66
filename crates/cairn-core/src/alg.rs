//! Algorithm identifiers (TPM_ALG_ID) and the hash algorithms of PCR banks and logs.
//!
//! [`AlgId`] is the raw wire value, so unknown algorithms survive a parse and can be named in an
//! error. [`HashAlg`] is the narrow set Cairn computes with; [`Digest`] ties a digest's length to
//! its algorithm and lives inline (no allocation), because replay loops create millions of them.

use std::fmt;

use crate::error::ParseError;

/// A TPM_ALG_ID as found on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlgId(pub u16);

#[allow(missing_docs)]
impl AlgId {
    pub const RSA: AlgId = AlgId(0x0001);
    pub const SHA1: AlgId = AlgId(0x0004);
    pub const HMAC: AlgId = AlgId(0x0005);
    pub const AES: AlgId = AlgId(0x0006);
    pub const KEYEDHASH: AlgId = AlgId(0x0008);
    pub const XOR: AlgId = AlgId(0x000A);
    pub const SHA256: AlgId = AlgId(0x000B);
    pub const SHA384: AlgId = AlgId(0x000C);
    pub const SHA512: AlgId = AlgId(0x000D);
    pub const NULL: AlgId = AlgId(0x0010);
    pub const SM3_256: AlgId = AlgId(0x0012);
    pub const SM4: AlgId = AlgId(0x0013);
    pub const RSASSA: AlgId = AlgId(0x0014);
    pub const RSAES: AlgId = AlgId(0x0015);
    pub const RSAPSS: AlgId = AlgId(0x0016);
    pub const OAEP: AlgId = AlgId(0x0017);
    pub const ECDSA: AlgId = AlgId(0x0018);
    pub const ECDH: AlgId = AlgId(0x0019);
    pub const ECDAA: AlgId = AlgId(0x001A);
    pub const SM2: AlgId = AlgId(0x001B);
    pub const ECSCHNORR: AlgId = AlgId(0x001C);
    pub const ECMQV: AlgId = AlgId(0x001D);
    pub const KDF1_SP800_56A: AlgId = AlgId(0x0020);
    pub const KDF2: AlgId = AlgId(0x0021);
    pub const KDF1_SP800_108: AlgId = AlgId(0x0022);
    pub const ECC: AlgId = AlgId(0x0023);
    pub const SYMCIPHER: AlgId = AlgId(0x0025);
    pub const CAMELLIA: AlgId = AlgId(0x0026);
    pub const CTR: AlgId = AlgId(0x0040);
    pub const OFB: AlgId = AlgId(0x0041);
    pub const CBC: AlgId = AlgId(0x0042);
    pub const CFB: AlgId = AlgId(0x0043);
    pub const ECB: AlgId = AlgId(0x0044);

    /// The TCG name of the algorithm, lower case, when known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            AlgId::RSA => "rsa",
            AlgId::SHA1 => "sha1",
            AlgId::HMAC => "hmac",
            AlgId::AES => "aes",
            AlgId::KEYEDHASH => "keyedhash",
            AlgId::XOR => "xor",
            AlgId::SHA256 => "sha256",
            AlgId::SHA384 => "sha384",
            AlgId::SHA512 => "sha512",
            AlgId::NULL => "null",
            AlgId::SM3_256 => "sm3_256",
            AlgId::SM4 => "sm4",
            AlgId::RSASSA => "rsassa",
            AlgId::RSAES => "rsaes",
            AlgId::RSAPSS => "rsapss",
            AlgId::OAEP => "oaep",
            AlgId::ECDSA => "ecdsa",
            AlgId::ECDH => "ecdh",
            AlgId::ECDAA => "ecdaa",
            AlgId::SM2 => "sm2",
            AlgId::ECSCHNORR => "ecschnorr",
            AlgId::ECMQV => "ecmqv",
            AlgId::ECC => "ecc",
            AlgId::SYMCIPHER => "symcipher",
            AlgId::CFB => "cfb",
            _ => return None,
        })
    }
}

impl fmt::Debug for AlgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "alg({:#06x})", self.0),
        }
    }
}

impl fmt::Display for AlgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A hash algorithm Cairn can compute: the PCR banks and log digests it judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA-1 (legacy banks and logs).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SM3-256 (GB/T 32905).
    Sm3_256,
}

/// Largest digest any [`HashAlg`] produces.
pub const MAX_DIGEST_LEN: usize = 64;

impl HashAlg {
    /// Every supported algorithm, in TPM_ALG_ID order.
    pub const ALL: [HashAlg; 5] =
        [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512, HashAlg::Sm3_256];

    /// The TPM_ALG_ID.
    pub fn alg_id(self) -> AlgId {
        match self {
            HashAlg::Sha1 => AlgId::SHA1,
            HashAlg::Sha256 => AlgId::SHA256,
            HashAlg::Sha384 => AlgId::SHA384,
            HashAlg::Sha512 => AlgId::SHA512,
            HashAlg::Sm3_256 => AlgId::SM3_256,
        }
    }

    /// Digest length in bytes.
    #[allow(clippy::len_without_is_empty)] // an algorithm, not a container: never empty
    pub fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 | HashAlg::Sm3_256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Name as tpm2-tools and Keylime write it (`sha1`, `sha256`, …, `sm3_256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sm3_256 => "sm3_256",
        }
    }

    /// Parses a name; accepts `sm3`, `sm3-256` and `sm3_256` for SM3, case-insensitively.
    pub fn from_name(s: &str) -> Option<HashAlg> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sha1" | "sha-1" => HashAlg::Sha1,
            "sha256" | "sha-256" => HashAlg::Sha256,
            "sha384" | "sha-384" => HashAlg::Sha384,
            "sha512" | "sha-512" => HashAlg::Sha512,
            "sm3" | "sm3_256" | "sm3-256" => HashAlg::Sm3_256,
            _ => return None,
        })
    }

    /// The algorithm for a TPM_ALG_ID, if it is a supported hash.
    pub fn from_alg_id(id: AlgId) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.alg_id() == id)
    }

    /// Reads a big-endian TPM_ALG_ID that must be a supported hash.
    pub(crate) fn read_be(r: &mut crate::codec::Reader<'_>, field: &'static str) -> Result<HashAlg, ParseError> {
        let offset = r.offset();
        let id = AlgId(r.u16_be(field)?);
        HashAlg::from_alg_id(id).ok_or(ParseError::UnsupportedAlgorithm { field, offset, alg: id.0 })
    }

    /// Hashes `data` in one call.
    pub fn hash(self, data: &[u8]) -> Digest {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }

    /// Hashes the concatenation of `parts` without copying them together.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Digest {
        let mut h = Hasher::new(self);
        for p in parts {
            h.update(p);
        }
        h.finish()
    }

    /// The all-zero digest (a reset PCR).
    pub fn zero(self) -> Digest {
        Digest { alg: self, bytes: [0; MAX_DIGEST_LEN] }
    }

    /// The all-0xFF digest.
    pub fn ones(self) -> Digest {
        let mut bytes = [0; MAX_DIGEST_LEN];
        bytes.iter_mut().take(self.len()).for_each(|b| *b = 0xFF);
        Digest { alg: self, bytes }
    }

    /// PCR extend: H(old ‖ data).
    pub fn extend(self, old: &Digest, data: &[u8]) -> Digest {
        self.hash_parts(&[old.as_bytes(), data])
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Incremental hashing over any [`HashAlg`].
pub struct Hasher(HasherInner);

enum HasherInner {
    Aws(aws_lc_rs::digest::Context),
    Sm3(sm3::Sm3),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(alg: HashAlg) -> Self {
        use aws_lc_rs::digest;
        let ctx = |a: &'static digest::Algorithm| HasherInner::Aws(digest::Context::new(a));
        Hasher(match alg {
            HashAlg::Sha1 => ctx(&digest::SHA1_FOR_LEGACY_USE_ONLY),
            HashAlg::Sha256 => ctx(&digest::SHA256),
            HashAlg::Sha384 => ctx(&digest::SHA384),
            HashAlg::Sha512 => ctx(&digest::SHA512),
            HashAlg::Sm3_256 => HasherInner::Sm3(<sm3::Sm3 as sm3::Digest>::new()),
        })
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            HasherInner::Aws(c) => c.update(data),
            HasherInner::Sm3(c) => sm3::Digest::update(c, data),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let alg = match self.0 {
            HasherInner::Aws(c) => {
                let d = c.finish();
                let out = d.as_ref();
                bytes.iter_mut().zip(out).for_each(|(b, v)| *b = *v);
                match out.len() {
                    20 => HashAlg::Sha1,
                    32 => HashAlg::Sha256,
                    48 => HashAlg::Sha384,
                    _ => HashAlg::Sha512,
                }
            }
            HasherInner::Sm3(c) => {
                let out = sm3::Digest::finalize(c);
                bytes.iter_mut().zip(out.iter()).for_each(|(b, v)| *b = *v);
                HashAlg::Sm3_256
            }
        };
        Digest { alg, bytes }
    }
}

/// A digest whose length is that of its algorithm, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: HashAlg,
    bytes: [u8; MAX_DIGEST_LEN],
}

impl Digest {
    /// A digest from bytes whose length must match `alg`.
    pub fn from_bytes(alg: HashAlg, b: &[u8]) -> Result<Digest, ParseError> {
        if b.len() != alg.len() {
            return Err(ParseError::DigestLength { field: "digest", alg: alg.name(), len: b.len(), expected: alg.len() });
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        bytes.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
        Ok(Digest { alg, bytes })
    }

    /// The digest a hash function wrote at the start of `out` (its length is `alg`'s): copied with
    /// a fixed length per algorithm, because replay makes millions of these.
    #[inline]
    pub(crate) fn from_output(alg: HashAlg, out: &[u8]) -> Digest {
        fn copy<const N: usize>(bytes: &mut [u8; MAX_DIGEST_LEN], out: &[u8]) {
            if let (Some(dst), Some(src)) = (bytes.first_chunk_mut::<N>(), out.first_chunk::<N>()) {
                *dst = *src;
            }
        }
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        match alg {
            HashAlg::Sha1 => copy::<20>(&mut bytes, out),
            HashAlg::Sha256 | HashAlg::Sm3_256 => copy::<32>(&mut bytes, out),
            HashAlg::Sha384 => copy::<48>(&mut bytes, out),
            HashAlg::Sha512 => copy::<64>(&mut bytes, out),
        }
        Digest { alg, bytes }
    }

    /// A digest from hex text.
    pub fn from_hex(alg: HashAlg, s: &str) -> Result<Digest, ParseError> {
        let v = hex::decode(s.trim()).map_err(|e| ParseError::text("hex digest", e.to_string()))?;
        Digest::from_bytes(alg, &v)
    }

    /// Its algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Its bytes (exactly `alg().len()` of them).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.alg.len()).unwrap_or(&self.bytes)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg, self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(HashAlg::Sha1.hash(b"abc").to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            HashAlg::Sha256.hash(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // GB/T 32905-2016 example 1.
        assert_eq!(
            HashAlg::Sm3_256.hash(b"abc").to_hex(),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(HashAlg::Sha512.hash(b"").as_bytes().len(), 64);
    }

    #[test]
    fn extend_from_zero() {
        let z = HashAlg::Sha256.zero();
        let d = HashAlg::Sha256.extend(&z, &[0u8; 32]);
        assert_eq!(d, HashAlg::Sha256.hash(&[0u8; 64]));
        assert_eq!(HashAlg::Sha1.ones().to_hex(), "ff".repeat(20));
    }

    #[test]
    fn names_round_trip() {
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_name(h.name()), Some(h));
            assert_eq!(HashAlg::from_alg_id(h.alg_id()), Some(h));
        }
        assert_eq!(HashAlg::from_name("sm3-256"), Some(HashAlg::Sm3_256));
        assert!(Digest::from_bytes(HashAlg::Sha1, &[0; 32]).is_err());
    }
}
