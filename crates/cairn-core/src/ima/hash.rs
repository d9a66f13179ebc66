//! One-shot hashing for the replay hot path.
//!
//! [`crate::alg::Hasher`] is general (incremental, any algorithm); replay hashes a few hundred
//! bytes at a time millions of times, where aws-lc's one-shot digest is about twice as fast.
//! A PCR extend concatenates into a stack buffer so it is a single one-shot call as well.

use aws_lc_rs::digest as awsd;

use crate::alg::{Digest, HashAlg, MAX_DIGEST_LEN};

fn aws_alg(alg: HashAlg) -> Option<&'static awsd::Algorithm> {
    Some(match alg {
        HashAlg::Sha1 => &awsd::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &awsd::SHA256,
        HashAlg::Sha384 => &awsd::SHA384,
        HashAlg::Sha512 => &awsd::SHA512,
        HashAlg::Sm3_256 => return None,
    })
}

/// H_alg(data).
#[inline]
pub(crate) fn hash(alg: HashAlg, data: &[u8]) -> Digest {
    match aws_alg(alg) {
        Some(a) => Digest::from_output(alg, awsd::digest(a, data).as_ref()),
        None => alg.hash(data),
    }
}

/// PCR extend H_alg(old ‖ data) for `data` no longer than a digest, hashed from one stack buffer.
#[inline]
pub(crate) fn extend(alg: HashAlg, old: &Digest, data: &[u8]) -> Digest {
    let mut buf = [0u8; 2 * MAX_DIGEST_LEN];
    let o = old.as_bytes();
    let n = o.len() + data.len();
    match buf.get_mut(..n) {
        Some(joined) => {
            let (a, b) = joined.split_at_mut(o.len());
            a.copy_from_slice(o);
            b.copy_from_slice(data);
            hash(alg, joined)
        }
        None => alg.extend(old, data),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn same_as_the_general_hasher() {
        for alg in HashAlg::ALL {
            assert_eq!(hash(alg, b"abc"), alg.hash(b"abc"));
            let z = alg.zero();
            assert_eq!(extend(alg, &z, alg.ones().as_bytes()), alg.extend(&z, alg.ones().as_bytes()));
        }
    }
}
