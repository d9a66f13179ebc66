//! One VM's evidence leaf: what a host agent saw of a VM from outside it, in one canonical binary form.
//!
//! The agent builds a [`VmLeaf`] and encodes it with [`VmLeaf::encode`]; the verifier decodes the
//! same bytes with [`VmLeaf::decode`] after proving them in the batch's tree. Each value has exactly
//! one encoding (fixed field order, no padding, no optional spellings), so decoding and encoding
//! again gives back the bytes hashed into the tree, and the decoder rejects everything else.
//!
//! # Layout (version 1)
//!
//! All integers are big-endian. A *digest* is a TPM_ALG_ID (u16) of a supported hash (sha1 0x0004,
//! sha256 0x000b, sha384 0x000c, sha512 0x000d, sm3_256 0x0012) followed by exactly that hash's
//! length of bytes (TPMT_HA's shape). An *optional digest* is either a digest or TPM_ALG_NULL
//! (0x0010) alone, meaning absent.
//!
//! | size | field |
//! |---|---|
//! | 4 | magic `CVML` (0x43 0x56 0x4d 0x4c) |
//! | 1 | version, 1 |
//! | 16 | VM id: the UUID's 16 bytes in text order |
//! | 1 | QEMU verdict: 0 not measured, 1 ok, 2 modified |
//! | digest | QEMU code: only when the verdict is 1 or 2 |
//! | digest | launch configuration |
//! | 1 | disk count, 0–[`MAX_DISKS`] |
//! | digest × count | disk images, in the VM's device order |
//! | optional digest | kernel |
//! | optional digest | initrd |
//! | optional digest | vTPM state |
//! | optional digest | vTPM EK public area |
//! | 2 | guest-memory range count, 0–[`MAX_RANGES`] |
//! | (8 + 8 + digest) × count | ranges: guest-physical start, length, digest of the bytes |
//!
//! Nothing may follow the last range. Ranges are non-empty, end (start + length) within 64 bits, and are
//! sorted by start without overlapping, so a set of ranges has one order.

use std::fmt;
use std::str::FromStr;

use crate::alg::{AlgId, Digest, HashAlg};
use crate::codec::{PutBe, Reader};
use crate::error::ParseError;

use super::VmBatchError;

/// The first four bytes of every leaf.
pub const MAGIC: [u8; 4] = *b"CVML";
/// The one layout version this module reads and writes.
pub const VERSION: u8 = 1;
/// Most disk images in one leaf.
pub const MAX_DISKS: usize = 64;
/// Most guest-memory ranges in one leaf.
pub const MAX_RANGES: usize = 1024;
/// Largest digest on the wire: alg id and the longest hash.
const MAX_DIGEST_WIRE: usize = 2 + crate::alg::MAX_DIGEST_LEN;
/// Longest encoded leaf: every field at its maximum.
pub const MAX_LEAF_LEN: usize =
    4 + 1 + 16 + 1 + MAX_DIGEST_WIRE * 2 + 1 + MAX_DISKS * MAX_DIGEST_WIRE + 4 * MAX_DIGEST_WIRE + 2
        + MAX_RANGES * (16 + MAX_DIGEST_WIRE);

/// A VM's identity: a UUID (libvirt's domain UUID, QEMU's `-uuid`), kept as its 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmId([u8; 16]);

impl VmId {
    /// From the 16 bytes in text order.
    pub fn from_bytes(b: [u8; 16]) -> VmId {
        VmId(b)
    }
    /// The 16 bytes in text order.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for VmId {
    type Err = ParseError;
    /// The hyphenated 8-4-4-4-12 form, either case.
    fn from_str(s: &str) -> Result<VmId, ParseError> {
        let bad = || ParseError::text("VM id", format!("{s:?} is not a UUID (8-4-4-4-12 hex digits)"));
        let groups: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] || !groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(bad());
        }
        let bytes = hex::decode(groups.concat()).map_err(|_| bad())?;
        let mut out = [0u8; 16];
        out.iter_mut().zip(&bytes).for_each(|(o, b)| *o = *b);
        Ok(VmId(out))
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default();
        write!(f, "{}-{}-{}-{}-{}", part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20, 32))
    }
}

impl fmt::Debug for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VmId({self})")
    }
}

/// What the hypervisor measurement says of the VM's QEMU process. The digest is the whole-file
/// digest of the process's executable (the hvm list's `whole-file` field for it); the verdict covers
/// every executable mapping of the process: ok when each one's code in memory equals its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QemuCode {
    /// The process was not (yet) measured: nothing vouches for its code.
    NotMeasured,
    /// Measured, and every mapping's code in memory is its file's.
    Unmodified(Digest),
    /// Measured, and some mapping's code in memory differs from its file.
    Modified(Digest),
}

impl QemuCode {
    /// The verdict byte.
    fn verdict(&self) -> u8 {
        match self {
            QemuCode::NotMeasured => 0,
            QemuCode::Unmodified(_) => 1,
            QemuCode::Modified(_) => 2,
        }
    }
    /// The executable's digest, when measured.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            QemuCode::NotMeasured => None,
            QemuCode::Unmodified(d) | QemuCode::Modified(d) => Some(d),
        }
    }
    /// `ok`, `modified` or `not measured`.
    pub fn verdict_name(&self) -> &'static str {
        match self {
            QemuCode::NotMeasured => "not measured",
            QemuCode::Unmodified(_) => "ok",
            QemuCode::Modified(_) => "modified",
        }
    }
}

/// A guest-physical memory range the agent read (introspection) and hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryRange {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes (not 0).
    pub length: u64,
    /// Digest of the range's bytes.
    pub digest: Digest,
}

impl MemoryRange {
    /// One past the last address, when it does not wrap.
    pub fn end(&self) -> Option<u64> {
        self.gpa.checked_add(self.length)
    }
}

/// One VM's evidence, as the host agent collected it from outside the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmLeaf {
    /// The VM.
    pub vm: VmId,
    /// Its QEMU process, from the hypervisor measurement.
    pub qemu: QemuCode,
    /// Digest of its launch configuration (the QEMU command line or the libvirt domain XML).
    pub launch_config: Digest,
    /// Digests of its disk images, in device order.
    pub disks: Vec<Digest>,
    /// Digest of the kernel booted directly (`-kernel`), if any.
    pub kernel: Option<Digest>,
    /// Digest of the initrd given with it, if any.
    pub initrd: Option<Digest>,
    /// Digest of its vTPM's state, if it has one.
    pub vtpm_state: Option<Digest>,
    /// Digest of its vTPM's EK public area, if it has one.
    pub vtpm_ek: Option<Digest>,
    /// Guest-memory ranges read from outside, sorted by start, not overlapping.
    pub memory: Vec<MemoryRange>,
}

/// Why a list of ranges is not in canonical order, or `None` when it is. `prev_end` is the end of
/// the range before (`None` for the first).
fn range_problem(prev_end: Option<u64>, r: &MemoryRange) -> Option<&'static str> {
    if r.length == 0 {
        return Some("an empty guest-memory range");
    }
    if r.end().is_none() {
        return Some("a guest-memory range past the end of the address space");
    }
    match prev_end {
        Some(end) if r.gpa < end => Some("guest-memory ranges out of order or overlapping"),
        _ => None,
    }
}

impl VmLeaf {
    /// Checks the limits and the range order the encoding requires.
    pub fn validate(&self) -> Result<(), VmBatchError> {
        let invalid = |detail: String| VmBatchError::InvalidLeaf { vm: self.vm, detail };
        if self.disks.len() > MAX_DISKS {
            return Err(invalid(format!("{} disk images, at most {MAX_DISKS}", self.disks.len())));
        }
        if self.memory.len() > MAX_RANGES {
            return Err(invalid(format!("{} guest-memory ranges, at most {MAX_RANGES}", self.memory.len())));
        }
        let mut prev_end = None;
        for (i, r) in self.memory.iter().enumerate() {
            if let Some(p) = range_problem(prev_end, r) {
                return Err(invalid(format!("range {i} ({:#x}+{:#x}): {p}", r.gpa, r.length)));
            }
            prev_end = r.end();
        }
        Ok(())
    }

    /// The canonical bytes (see the module docs), after [`VmLeaf::validate`].
    pub fn encode(&self) -> Result<Vec<u8>, VmBatchError> {
        self.validate()?;
        let mut out = Vec::with_capacity(128 + 80 * (self.disks.len() + self.memory.len()));
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.vm.0);
        out.push(self.qemu.verdict());
        if let Some(d) = self.qemu.digest() {
            put_digest(&mut out, d);
        }
        put_digest(&mut out, &self.launch_config);
        // validate() bounds both counts.
        out.push(u8::try_from(self.disks.len()).unwrap_or(u8::MAX));
        self.disks.iter().for_each(|d| put_digest(&mut out, d));
        for d in [&self.kernel, &self.initrd, &self.vtpm_state, &self.vtpm_ek] {
            put_opt_digest(&mut out, d.as_ref());
        }
        out.put_u16_be(u16::try_from(self.memory.len()).unwrap_or(u16::MAX));
        for r in &self.memory {
            out.put_u64_be(r.gpa);
            out.put_u64_be(r.length);
            put_digest(&mut out, &r.digest);
        }
        Ok(out)
    }

    /// Reads a leaf that fills `bytes` exactly. Never panics; errors name the field and offset.
    pub fn decode(bytes: &[u8]) -> Result<VmLeaf, ParseError> {
        if bytes.len() > MAX_LEAF_LEN {
            return Err(ParseError::TooLarge { field: "vm leaf", offset: 0, size: bytes.len(), max: MAX_LEAF_LEN });
        }
        let mut r = Reader::new(bytes);
        let offset = r.offset();
        let magic = r.array::<4>("leaf magic")?;
        if magic != MAGIC {
            return Err(bad("leaf magic", offset, u32::from_be_bytes(magic).into(), "the bytes CVML"));
        }
        let offset = r.offset();
        let version = r.u8("leaf version")?;
        if version != VERSION {
            return Err(bad("leaf version", offset, version.into(), "version 1"));
        }
        let vm = VmId(r.array("vm id")?);
        let offset = r.offset();
        let qemu = match r.u8("qemu verdict")? {
            0 => QemuCode::NotMeasured,
            1 => QemuCode::Unmodified(read_digest(&mut r, "qemu code")?),
            2 => QemuCode::Modified(read_digest(&mut r, "qemu code")?),
            v => return Err(bad("qemu verdict", offset, v.into(), "0 not measured, 1 ok, 2 modified")),
        };
        let launch_config = read_digest(&mut r, "launch config")?;
        let offset = r.offset();
        let n = usize::from(r.u8("disk count")?);
        if n > MAX_DISKS {
            return Err(ParseError::TooLarge { field: "disk count", offset, size: n, max: MAX_DISKS });
        }
        let disks = (0..n).map(|_| read_digest(&mut r, "disk")).collect::<Result<Vec<_>, _>>()?;
        let kernel = read_opt_digest(&mut r, "kernel")?;
        let initrd = read_opt_digest(&mut r, "initrd")?;
        let vtpm_state = read_opt_digest(&mut r, "vtpm state")?;
        let vtpm_ek = read_opt_digest(&mut r, "vtpm ek")?;
        let offset = r.offset();
        let m = usize::from(r.u16_be("range count")?);
        if m > MAX_RANGES {
            return Err(ParseError::TooLarge { field: "range count", offset, size: m, max: MAX_RANGES });
        }
        let mut memory = Vec::with_capacity(m.min(r.remaining() / 18));
        let mut prev_end = None;
        for _ in 0..m {
            let offset = r.offset();
            let gpa = r.u64_be("range gpa")?;
            let length = r.u64_be("range length")?;
            let range = MemoryRange { gpa, length, digest: read_digest(&mut r, "range digest")? };
            if let Some(p) = range_problem(prev_end, &range) {
                return Err(bad("memory range", offset, gpa, p));
            }
            prev_end = range.end();
            memory.push(range);
        }
        r.finish("vm leaf")?;
        Ok(VmLeaf { vm, qemu, launch_config, disks, kernel, initrd, vtpm_state, vtpm_ek, memory })
    }
}

fn bad(field: &'static str, offset: usize, value: u64, expected: &'static str) -> ParseError {
    ParseError::BadValue { field, offset, value, expected }
}

fn put_digest(out: &mut Vec<u8>, d: &Digest) {
    out.put_u16_be(d.alg().alg_id().0);
    out.extend_from_slice(d.as_bytes());
}

fn put_opt_digest(out: &mut Vec<u8>, d: Option<&Digest>) {
    match d {
        Some(d) => put_digest(out, d),
        None => out.put_u16_be(AlgId::NULL.0),
    }
}

fn read_digest(r: &mut Reader<'_>, field: &'static str) -> Result<Digest, ParseError> {
    let alg = HashAlg::read_be(r, field)?;
    Digest::from_bytes(alg, r.take(alg.len(), field)?)
}

fn read_opt_digest(r: &mut Reader<'_>, field: &'static str) -> Result<Option<Digest>, ParseError> {
    if r.rest().get(..2) == Some(&AlgId::NULL.0.to_be_bytes()[..]) {
        r.take(2, field)?;
        return Ok(None);
    }
    read_digest(r, field).map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A leaf with every field present.
    pub(crate) fn full() -> VmLeaf {
        let h = |s: &str| HashAlg::Sha256.hash(s.as_bytes());
        VmLeaf {
            vm: "6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b".parse().unwrap(),
            qemu: QemuCode::Unmodified(h("qemu")),
            launch_config: h("launch"),
            disks: vec![h("root.qcow2"), HashAlg::Sha384.hash(b"data.raw")],
            kernel: Some(h("vmlinuz")),
            initrd: Some(h("initrd")),
            vtpm_state: Some(h("vtpm state")),
            vtpm_ek: Some(h("ek")),
            memory: vec![
                MemoryRange { gpa: 0x10_0000, length: 0x20_0000, digest: h("kernel text") },
                MemoryRange { gpa: 0x30_0000, length: 0x1000, digest: h("idt") },
            ],
        }
    }

    /// The smallest leaf: nothing optional.
    pub(crate) fn minimal() -> VmLeaf {
        VmLeaf {
            vm: VmId::from_bytes([0x11; 16]),
            qemu: QemuCode::NotMeasured,
            launch_config: HashAlg::Sha256.zero(),
            disks: Vec::new(),
            kernel: None,
            initrd: None,
            vtpm_state: None,
            vtpm_ek: None,
            memory: Vec::new(),
        }
    }

    #[test]
    fn the_minimal_leaf_byte_by_byte() {
        let bytes = minimal().encode().unwrap();
        let expected = [
            "4356 4d4c",                          // magic CVML
            "01",                                 // version
            "1111111111111111 1111111111111111",  // vm id
            "00",                                 // qemu not measured, no digest
            "000b", &"00".repeat(32),             // launch config sha256
            "00",                                 // no disks
            "0010 0010 0010 0010",                // kernel, initrd, vtpm state, vtpm ek absent
            "0000",                               // no ranges
        ]
        .concat()
        .replace(' ', "");
        assert_eq!(hex::encode(&bytes), expected);
        assert_eq!(bytes.len(), 67);
        assert_eq!(VmLeaf::decode(&bytes).unwrap(), minimal());
    }

    /// Written independently from the layout table (Python `struct` and `hashlib`).
    #[test]
    fn the_full_leaf_matches_an_independent_encoding() {
        let bytes = full().encode().unwrap();
        assert_eq!(bytes.len(), 413);
        assert_eq!(
            HashAlg::Sha256.hash(&bytes).to_hex(),
            "19a77ed99a6b4036a203929121d3de283f522ea5f90d1b72e8726f5b4f352199"
        );
    }

    #[test]
    fn leaves_round_trip() {
        for leaf in [full(), minimal()] {
            let bytes = leaf.encode().unwrap();
            assert_eq!(VmLeaf::decode(&bytes).unwrap(), leaf);
        }
        let mut modified = full();
        modified.qemu = QemuCode::Modified(HashAlg::Sha256.hash(b"patched"));
        assert_eq!(VmLeaf::decode(&modified.encode().unwrap()).unwrap(), modified);
    }

    #[test]
    fn vm_ids_parse_and_print_one_way() {
        let id: VmId = "6F1C2A3E-0B4D-4E5F-8A9B-0C1D2E3F4A5B".parse().unwrap();
        assert_eq!(id.to_string(), "6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(id.as_bytes()[0], 0x6f);
        for bad in [
            "",
            "6f1c2a3e0b4d4e5f8a9b0c1d2e3f4a5b",
            "6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5",
            "6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5g",
            "+f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b",
        ] {
            assert!(bad.parse::<VmId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let bytes = full().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(matches!(VmLeaf::decode(&bytes[..cut]), Err(ParseError::Truncated { .. })), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(VmLeaf::decode(&longer), Err(ParseError::TrailingData { .. })));
    }

    #[test]
    fn non_canonical_values_are_refused_naming_the_field() {
        let good = minimal().encode().unwrap();
        let field = |b: &[u8]| match VmLeaf::decode(b).unwrap_err() {
            ParseError::BadValue { field, .. }
            | ParseError::TooLarge { field, .. }
            | ParseError::UnsupportedAlgorithm { field, .. }
            | ParseError::Truncated { field, .. } => field,
            e => panic!("{e}"),
        };
        let with = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            b
        };
        assert_eq!(field(&with(0, b'X')), "leaf magic");
        assert_eq!(field(&with(4, 2)), "leaf version");
        assert_eq!(field(&with(21, 3)), "qemu verdict");
        assert_eq!(field(&with(23, 0x10)), "launch config"); // NULL where a digest is required
        assert_eq!(field(&with(56, 65)), "disk count");
        assert_eq!(field(&with(58, 0x99)), "kernel");
        assert_eq!(field(&with(65, 0xff)), "range count");
        // A verdict of "ok" needs its digest: the launch config's alg id is read as the qemu digest.
        assert!(VmLeaf::decode(&with(21, 1)).is_err());
    }

    #[test]
    fn ranges_must_be_sorted_disjoint_and_non_empty() {
        let d = HashAlg::Sha256.zero();
        let r = |gpa, length| MemoryRange { gpa, length, digest: d };
        for ranges in [
            vec![r(0x2000, 0x1000), r(0x1000, 0x1000)],
            vec![r(0x1000, 0x2000), r(0x2000, 0x1000)],
            vec![r(0x1000, 0)],
            vec![r(u64::MAX, 2)],
        ] {
            let mut leaf = minimal();
            leaf.memory = ranges.clone();
            assert!(matches!(leaf.encode(), Err(VmBatchError::InvalidLeaf { .. })), "{ranges:?}");
            // The same bytes, written by hand, are refused by the decoder.
            leaf.memory = Vec::new();
            let mut bytes = leaf.encode().unwrap();
            bytes.truncate(bytes.len() - 2);
            bytes.put_u16_be(ranges.len() as u16);
            for x in &ranges {
                bytes.put_u64_be(x.gpa);
                bytes.put_u64_be(x.length);
                put_digest(&mut bytes, &x.digest);
            }
            assert!(
                matches!(VmLeaf::decode(&bytes), Err(ParseError::BadValue { field: "memory range", .. })),
                "{ranges:?}"
            );
        }
        let mut leaf = minimal();
        leaf.memory = vec![r(0x1000, 0x1000), r(0x2000, 0x1000), r(u64::MAX - 10, 10)];
        assert_eq!(VmLeaf::decode(&leaf.encode().unwrap()).unwrap(), leaf);
    }

    #[test]
    fn limits_are_enforced_both_ways() {
        let mut leaf = minimal();
        leaf.disks = vec![HashAlg::Sha256.zero(); MAX_DISKS + 1];
        assert!(leaf.encode().is_err());
        leaf.disks.truncate(MAX_DISKS);
        leaf.memory = (0..MAX_RANGES as u64)
            .map(|i| MemoryRange { gpa: i * 0x1000, length: 0x1000, digest: HashAlg::Sha512.zero() })
            .collect();
        leaf.kernel = Some(HashAlg::Sha512.zero());
        leaf.initrd = Some(HashAlg::Sha512.zero());
        leaf.vtpm_state = Some(HashAlg::Sha512.zero());
        leaf.vtpm_ek = Some(HashAlg::Sha512.zero());
        leaf.launch_config = HashAlg::Sha512.zero();
        leaf.qemu = QemuCode::Modified(HashAlg::Sha512.zero());
        leaf.disks = vec![HashAlg::Sha512.zero(); MAX_DISKS];
        let bytes = leaf.encode().unwrap();
        assert_eq!(bytes.len(), MAX_LEAF_LEN);
        assert_eq!(VmLeaf::decode(&bytes).unwrap(), leaf);
        leaf.memory.push(MemoryRange { gpa: u64::MAX - 1, length: 1, digest: HashAlg::Sha1.zero() });
        assert!(leaf.encode().is_err());
    }

    fn digest() -> impl Strategy<Value = Digest> {
        (0usize..5, proptest::collection::vec(any::<u8>(), 64))
            .prop_map(|(a, b)| Digest::from_bytes(HashAlg::ALL[a], &b[..HashAlg::ALL[a].len()]).unwrap())
    }

    fn leaf() -> impl Strategy<Value = VmLeaf> {
        let ranges = proptest::collection::vec((1u64..1 << 20, 1u64..1 << 20, digest()), 0..6).prop_map(|v| {
            let mut at = 0u64;
            v.into_iter()
                .map(|(gap, length, digest)| {
                    let r = MemoryRange { gpa: at + gap, length, digest };
                    at = r.gpa + length;
                    r
                })
                .collect::<Vec<_>>()
        });
        (
            any::<[u8; 16]>(),
            (0u8..3, digest()),
            digest(),
            proptest::collection::vec(digest(), 0..5),
            proptest::collection::vec(proptest::option::of(digest()), 4),
            ranges,
        )
            .prop_map(|(id, (v, q), launch_config, disks, opts, memory)| VmLeaf {
                vm: VmId::from_bytes(id),
                qemu: [QemuCode::NotMeasured, QemuCode::Unmodified(q), QemuCode::Modified(q)][usize::from(v)],
                launch_config,
                disks,
                kernel: opts[0],
                initrd: opts[1],
                vtpm_state: opts[2],
                vtpm_ek: opts[3],
                memory,
            })
    }

    proptest! {
        #[test]
        fn vmbatch_leaf_decode_of_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(leaf) = VmLeaf::decode(&data) {
                prop_assert_eq!(leaf.encode().unwrap(), data);
            }
        }

        #[test]
        fn vmbatch_leaf_mutations_never_panic_and_reencode_exactly(
            leaf in leaf(), at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>(),
        ) {
            let bytes = leaf.encode().unwrap();
            prop_assert_eq!(VmLeaf::decode(&bytes).unwrap(), leaf);
            let mut m = bytes.clone();
            let i = at % m.len();
            m[i] = byte;
            m.truncate(1 + cut % m.len());
            if let Ok(back) = VmLeaf::decode(&m) {
                prop_assert_eq!(back.encode().unwrap(), m);
            }
        }
    }
}
