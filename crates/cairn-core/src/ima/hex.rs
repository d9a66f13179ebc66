//! Hex decoding for the ASCII measurement list and runtime policies: every template hash and file
//! digest of an ASCII log is hex, so this runs twice per entry, over about a hundred digits.
//!
//! Sixteen digits are checked and decoded at once as two 64-bit words (SWAR): a byte is a digit
//! when it lies in `0-9`, or in `a-f` once lower-cased, which per-byte additions that cannot carry
//! between bytes (every byte is first checked to be below 0x80) decide for eight bytes together.
//! Fewer than sixteen digits left go eight at a time, then in pairs through a table. A bad input is
//! found again byte by byte only to say which byte is wrong, so the common path has one branch per
//! call. Upper- and lower-case digits are both accepted, as before.

use std::fmt;

/// What is wrong with a hex field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HexError {
    /// The field does not have the number of digits the destination needs.
    Length {
        /// Digits found.
        found: usize,
        /// Digits needed.
        expected: usize,
    },
    /// An odd number of digits.
    Odd {
        /// Digits found.
        found: usize,
    },
    /// A byte that is not a hex digit.
    NotHex {
        /// Its index in the field.
        index: usize,
        /// The byte.
        byte: u8,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length { found, expected } => write!(f, "{found} hex digits where {expected} are needed"),
            HexError::Odd { found } => write!(f, "odd number of hex digits ({found})"),
            HexError::NotHex { index, byte } => write!(f, "byte {index} ({byte:#04x}) is not a hex digit"),
        }
    }
}

impl HexError {
    /// The error as a [`crate::ParseError`] naming `field`.
    pub(crate) fn in_field(self, field: &'static str) -> crate::ParseError {
        crate::ParseError::text(field, self.to_string())
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;

/// Per byte of `x` (each below 0x80): top bit set when the byte is at least `lo`.
#[inline(always)]
fn at_least(x: u64, lo: u8) -> u64 {
    x.wrapping_add(ONES * u64::from(0x80 - lo))
}

/// Eight ASCII hex digits (first digit in the low byte) to their eight nibble values, one per
/// byte, and a mask that is zero exactly when all eight were hex digits.
#[inline(always)]
fn nibbles(x: u64) -> (u64, u64) {
    let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
    let lower = x | (ONES * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'f' + 1);
    let bad = (x & HIGH) | (!(digit | letter) & HIGH);
    let values = (x & (ONES * 0x0F)) + ((letter & HIGH) >> 7) * 9;
    (values, bad)
}

/// Eight nibbles (as [`nibbles`] returns them) to four bytes, in the low half of the result.
#[inline(always)]
fn pack(v: u64) -> u64 {
    let w = ((v << 4) | (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let w = (w | (w >> 8)) & 0x0000_FFFF_0000_FFFF;
    (w | (w >> 16)) & 0x0000_0000_FFFF_FFFF
}

#[inline(always)]
fn word(b: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*b)
}

/// Value of each byte as a hex digit, 0xFF when it is not one.
const VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// True when `b` is a hex digit.
pub(crate) fn is_digit(b: u8) -> bool {
    VALUE[usize::from(b)] != 0xFF
}

/// The first problem of `src` as hex text of any even length.
fn first_problem(src: &[u8]) -> Option<HexError> {
    if let Some((index, byte)) = src.iter().enumerate().find(|(_, b)| !is_digit(**b)) {
        return Some(HexError::NotHex { index, byte: *byte });
    }
    (src.len() % 2 != 0).then_some(HexError::Odd { found: src.len() })
}

/// Decodes `src` into a digest of a length known at compile time, which lets the word loop unroll
/// (template hashes and file digests of a named algorithm).
#[inline]
pub(crate) fn decode_fixed<const N: usize>(src: &[u8], dst: &mut [u8; N]) -> Result<(), HexError> {
    decode_into(src, dst)
}

/// Decodes `src` into `dst`, which it must fill exactly (`src` is twice as long).
pub(crate) fn decode(src: &[u8], dst: &mut [u8]) -> Result<(), HexError> {
    decode_into(src, dst)
}

#[inline(always)]
fn decode_into(src: &[u8], dst: &mut [u8]) -> Result<(), HexError> {
    if src.len() != 2 * dst.len() {
        return Err(wrong_length(src, dst.len()));
    }
    let dst_len = dst.len();
    let mut bad = 0u64;
    let mut s16 = src.chunks_exact(16);
    let mut d8 = dst.chunks_exact_mut(8);
    for (s, d) in (&mut s16).zip(&mut d8) {
        if let (Some(a), Some(b)) = (s.first_chunk::<8>(), s.last_chunk::<8>()) {
            let (va, ba) = nibbles(word(a));
            let (vb, bb) = nibbles(word(b));
            bad |= ba | bb;
            d.copy_from_slice(&(pack(va) | (pack(vb) << 32)).to_le_bytes());
        }
    }
    // Fewer than 16 digits left: 8 at once if there are, then pairs.
    let (s, d) = (s16.remainder(), d8.into_remainder());
    let k = d.len() & 4;
    let (Some((s8, s)), Some((d4, d))) = (s.split_at_checked(2 * k), d.split_at_mut_checked(k)) else {
        return Err(HexError::Length { found: src.len(), expected: 2 * dst_len });
    };
    if let (Some(a), Some(out)) = (s8.first_chunk::<8>(), d4.first_chunk_mut::<4>()) {
        let (v, b) = nibbles(word(a));
        bad |= b;
        *out = (pack(v) as u32).to_le_bytes();
    }
    let mut bad_pair = 0u8;
    for (pair, out) in s.chunks_exact(2).zip(d.iter_mut()) {
        if let [hi, lo] = *pair {
            let (hi, lo) = (VALUE[usize::from(hi)], VALUE[usize::from(lo)]);
            bad_pair |= (hi | lo) & 0xF0;
            *out = (hi << 4) | (lo & 0x0F);
        }
    }
    if bad != 0 || bad_pair != 0 {
        return Err(bad_input(src));
    }
    Ok(())
}

#[cold]
fn wrong_length(src: &[u8], bytes: usize) -> HexError {
    first_problem(src).unwrap_or(HexError::Length { found: src.len(), expected: 2 * bytes })
}

#[cold]
fn bad_input(src: &[u8]) -> HexError {
    first_problem(src).unwrap_or(HexError::Odd { found: src.len() })
}

/// Checks that `src` is an even number of hex digits, without decoding it.
pub(crate) fn check(src: &[u8]) -> Result<(), HexError> {
    let mut bad = 0u64;
    let mut s8 = src.chunks_exact(8);
    for s in &mut s8 {
        if let Some(a) = s.first_chunk::<8>() {
            bad |= nibbles(word(a)).1;
        }
    }
    let tail_ok = s8.remainder().iter().all(|b| is_digit(*b));
    if bad != 0 || !tail_ok || src.len() % 2 != 0 {
        return Err(first_problem(src).unwrap_or(HexError::Odd { found: src.len() }));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(src: &[u8]) -> Option<Vec<u8>> {
        if src.len() % 2 != 0 {
            return None;
        }
        ::hex::decode(src).ok()
    }

    #[test]
    fn decodes_every_length_and_both_cases() {
        for n in 0..=80 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            for text in [::hex::encode(&bytes), ::hex::encode_upper(&bytes)] {
                let mut out = vec![0u8; n];
                decode(text.as_bytes(), &mut out).unwrap();
                assert_eq!(out, bytes, "{text}");
                check(text.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn every_bad_byte_at_every_position_is_named() {
        let good = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdefABCDEF0123";
        for pos in 0..good.len() {
            for byte in 0..=255u8 {
                if is_digit(byte) {
                    continue;
                }
                let mut text = good.as_bytes().to_vec();
                text[pos] = byte;
                let mut out = [0u8; 32];
                assert_eq!(decode(&text, &mut out), Err(HexError::NotHex { index: pos, byte }));
                assert_eq!(check(&text), Err(HexError::NotHex { index: pos, byte }));
            }
        }
    }

    #[test]
    fn fixed_lengths_decode_like_the_general_decoder() {
        let text = ::hex::encode((0..64u8).collect::<Vec<_>>());
        let mut a20 = [0u8; 20];
        decode_fixed(&text.as_bytes()[..40], &mut a20).unwrap();
        assert_eq!(a20.to_vec(), (0..20u8).collect::<Vec<_>>());
        let mut a32 = [0u8; 32];
        decode_fixed(&text.as_bytes()[..64], &mut a32).unwrap();
        assert_eq!(a32.to_vec(), (0..32u8).collect::<Vec<_>>());
        let mut a64 = [0u8; 64];
        decode_fixed(text.as_bytes(), &mut a64).unwrap();
        assert_eq!(a64.to_vec(), (0..64u8).collect::<Vec<_>>());
        assert_eq!(decode_fixed(&text.as_bytes()[..38], &mut a20), Err(HexError::Length { found: 38, expected: 40 }));
        let mut bad = text.as_bytes()[..40].to_vec();
        bad[37] = b'x';
        assert_eq!(decode_fixed(&bad, &mut a20), Err(HexError::NotHex { index: 37, byte: b'x' }));
    }

    #[test]
    fn lengths_are_checked() {
        let mut out = [0u8; 20];
        assert_eq!(decode(&[b'a'; 39], &mut out), Err(HexError::Odd { found: 39 }));
        assert_eq!(decode(&[b'a'; 38], &mut out), Err(HexError::Length { found: 38, expected: 40 }));
        assert_eq!(decode(&[b'a'; 42], &mut out), Err(HexError::Length { found: 42, expected: 40 }));
        assert_eq!(decode(b"zz", &mut out), Err(HexError::NotHex { index: 0, byte: b'z' }));
        assert_eq!(check(b"abc"), Err(HexError::Odd { found: 3 }));
        assert_eq!(check(b""), Ok(()));
        let e = HexError::NotHex { index: 3, byte: b'g' }.in_field("d-ng");
        assert_eq!(e.to_string(), "d-ng: byte 3 (0x67) is not a hex digit");
    }

    #[test]
    fn neighbours_of_the_digit_ranges_are_rejected() {
        for byte in [b'/', b':', b'@', b'G', b'`', b'g', 0x80, 0xB0, 0xC1, 0xE6, 0xFF, 0x00, b' '] {
            let text = [b'0', b'0', b'0', b'0', b'0', b'0', b'0', byte];
            assert!(check(&text).is_err(), "{byte:#x}");
            let mut out = [0u8; 4];
            assert!(decode(&text, &mut out).is_err(), "{byte:#x}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_plain_decoder(src in proptest::collection::vec(any::<u8>(), 0..150)) {
            let mut out = vec![0u8; src.len() / 2];
            let ours = decode(&src, &mut out).ok().map(|()| out);
            prop_assert_eq!(ours, reference(&src));
            prop_assert_eq!(check(&src).is_ok(), reference(&src).is_some());
        }

        #[test]
        fn agrees_on_hex_like_input(src in "[0-9a-fA-Fg/:@`G]{0,140}") {
            let src = src.as_bytes();
            let mut out = vec![0u8; src.len() / 2];
            let ours = decode(src, &mut out).ok().map(|()| out);
            prop_assert_eq!(ours, reference(src));
        }
    }
}
