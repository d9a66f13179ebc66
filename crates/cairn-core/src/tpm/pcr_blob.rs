//! tpm2-tools' serialized PCR file: the third part of Keylime's quote string.
//!
//! tpm2-tools writes its in-memory structures as they are on a little-endian host:
//! a TPML_PCR_SELECTION (u32 count + 16 × TPMS_PCR_SELECTION of 8 bytes: u16 hash, u8
//! sizeofSelect, 4 bitmap bytes, 1 padding byte) = 132 bytes, a u32 number of TPML_DIGEST, then
//! that many TPML_DIGEST (u32 count + 8 × TPM2B_DIGEST of 66 bytes: u16 size + 64-byte buffer)
//! = 532 bytes each. The digests, flattened, are the selected PCRs in selection order, at most 8
//! per TPML_DIGEST because TPM2_PCR_Read returns at most 8 at a time.

use crate::alg::{Digest, HashAlg};
use crate::codec::Reader;
use crate::error::ParseError;
use crate::pcr::{mask_from_bytes, select_size, BankSelection, PcrSelection, PcrValues, MAX_BANKS};

const SELECTION_SLOTS: usize = 16;
const DIGESTS_PER_LIST: usize = 8;
/// Bound on TPML_DIGEST lists: 16 banks × 32 PCRs / 8 per list.
const MAX_LISTS: usize = 64;

/// Reads a tpm2-tools PCR blob into PCR values. Every selected PCR must have exactly one value of
/// its bank's size, and nothing may follow the last list.
pub fn decode_pcr_blob(bytes: &[u8]) -> Result<PcrValues, ParseError> {
    let mut r = Reader::new(bytes);
    let count_off = r.offset();
    let count = r.u32_le("TPML_PCR_SELECTION.count")? as usize;
    if count > MAX_BANKS {
        return Err(ParseError::TooLarge { field: "TPML_PCR_SELECTION.count", offset: count_off, size: count, max: MAX_BANKS });
    }
    let mut banks = Vec::with_capacity(count);
    for slot in 0..SELECTION_SLOTS {
        let hash_off = r.offset();
        let hash = r.u16_le("TPMS_PCR_SELECTION.hash")?;
        let size_off = r.offset();
        let size = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
        let bits = r.take(4, "TPMS_PCR_SELECTION.pcrSelect")?;
        r.take(1, "TPMS_PCR_SELECTION padding")?;
        if slot >= count {
            continue;
        }
        if size > 4 {
            return Err(ParseError::TooLarge { field: "TPMS_PCR_SELECTION.sizeofSelect", offset: size_off, size: usize::from(size), max: 4 });
        }
        let alg = crate::pcr::hash_alg_from_id(crate::alg::AlgId(hash), "TPMS_PCR_SELECTION.hash", hash_off)?;
        let mask = mask_from_bytes(bits.get(..usize::from(size)).unwrap_or(&[]));
        banks.push(BankSelection { alg, mask });
    }
    let selection = PcrSelection::new(banks)?;

    let lists_off = r.offset();
    let lists = r.u32_le("pcr value list count")? as usize;
    if lists > MAX_LISTS {
        return Err(ParseError::TooLarge { field: "pcr value list count", offset: lists_off, size: lists, max: MAX_LISTS });
    }
    let order: Vec<HashAlg> = selection.iter().map(|(alg, _)| alg).collect();
    let mut expected = order.into_iter();
    let mut values = Vec::with_capacity(selection.count());
    for _ in 0..lists {
        let n_off = r.offset();
        let n = r.u32_le("TPML_DIGEST.count")? as usize;
        if n > DIGESTS_PER_LIST {
            return Err(ParseError::TooLarge { field: "TPML_DIGEST.count", offset: n_off, size: n, max: DIGESTS_PER_LIST });
        }
        for i in 0..DIGESTS_PER_LIST {
            let size_off = r.offset();
            let size = usize::from(r.u16_le("TPM2B_DIGEST.size")?);
            let buf = r.take(64, "TPM2B_DIGEST.buffer")?;
            if i >= n {
                continue;
            }
            let Some(alg) = expected.next() else {
                return Err(ParseError::BadValue {
                    field: "TPML_DIGEST.count",
                    offset: n_off,
                    value: n as u64,
                    expected: "no more values than selected PCRs",
                });
            };
            if size != alg.len() {
                return Err(ParseError::BadValue {
                    field: "TPM2B_DIGEST.size",
                    offset: size_off,
                    value: size as u64,
                    expected: "the digest size of the PCR's bank",
                });
            }
            values.push(Digest::from_bytes(alg, buf.get(..size).unwrap_or(&[]))?);
        }
    }
    r.finish("tpm2-tools PCR blob")?;
    PcrValues::new(selection, values)
}

/// Writes PCR values in tpm2-tools' layout (what `tpm2_quote -o` writes and
/// `tpm2_checkquote -f` reads).
pub fn encode_pcr_blob(values: &PcrValues) -> Vec<u8> {
    let sel = values.selection();
    let mut out = Vec::with_capacity(136 + 532 * values.values().len().div_ceil(DIGESTS_PER_LIST));
    out.extend_from_slice(&(sel.banks().len() as u32).to_le_bytes());
    for slot in 0..SELECTION_SLOTS {
        match sel.banks().get(slot) {
            Some(b) => {
                out.extend_from_slice(&b.alg.alg_id().0.to_le_bytes());
                out.push(select_size(b.mask));
                out.extend_from_slice(&b.mask.to_le_bytes());
                out.push(0);
            }
            None => out.extend_from_slice(&[0; 8]),
        }
    }
    let chunks: Vec<&[Digest]> = values.values().chunks(DIGESTS_PER_LIST).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for i in 0..DIGESTS_PER_LIST {
            let mut buf = [0u8; 64];
            let size = match chunk.get(i) {
                Some(d) => {
                    buf.iter_mut().zip(d.as_bytes()).for_each(|(o, b)| *o = *b);
                    d.alg().len()
                }
                None => 0,
            };
            out.extend_from_slice(&(size as u16).to_le_bytes());
            out.extend_from_slice(&buf);
        }
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> PcrValues {
        let sel: PcrSelection = "sha1:10+sha256:0,1,2,3,4,5,6,7,8,9,10,14".parse().unwrap();
        let vals = sel.iter().map(|(alg, p)| alg.hash(&[p.get()])).collect();
        PcrValues::new(sel, vals).unwrap()
    }

    #[test]
    fn round_trip_matches_tpm2_tools_size() {
        let v = values();
        let b = encode_pcr_blob(&v);
        assert_eq!(b.len(), 1200, "132 + 4 + 2 × 532, as tpm2_quote writes for 13 PCRs");
        assert_eq!(decode_pcr_blob(&b).unwrap(), v);
        for cut in 0..b.len() {
            assert!(decode_pcr_blob(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn wrong_digest_size_is_named() {
        let mut b = encode_pcr_blob(&values());
        b[136 + 4] = 32; // first value is sha1: size 32 is wrong
        assert!(matches!(decode_pcr_blob(&b), Err(ParseError::BadValue { field: "TPM2B_DIGEST.size", .. })));
    }
}
