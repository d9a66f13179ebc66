//! Judging a proved VM leaf against that VM's policy.
//!
//! A VM fails when its QEMU process was not measured or its code was modified in memory — always,
//! whatever the policy — and when a digest the policy pins differs from the leaf's. Every policy
//! field is optional; an absent field is not checked. The checks, in the order
//! [`leaf_failures`] reports them ([`judge_leaf`] returns the first):
//! 1. `vm`: the leaf is this VM's;
//! 2. the QEMU verdict: not measured fails, modified fails;
//! 3. `qemu_code`: the QEMU executable's digest is one of these;
//! 4. `launch_config`: equals;
//! 5. `disks`: every disk image's digest is one of these (in device order, each failing disk named);
//! 6. `kernel`, `initrd`, `vtpm_ek`: the leaf has one and it equals;
//! 7. `memory`: for each required range, the leaf read a range with that start and length, and its
//!    digest equals.
//!
//! The vTPM *state* digest is evidence only: a running vTPM's state changes with every command.
//!
//! # Policy JSON
//!
//! ```json
//! {
//!   "vm": "6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b",
//!   "qemu_code": ["sha256:<hex>"],
//!   "launch_config": "sha256:<hex>",
//!   "disks": ["sha256:<hex>", "sha256:<hex>"],
//!   "kernel": "sha256:<hex>",
//!   "initrd": "sha256:<hex>",
//!   "vtpm_ek": "sha256:<hex>",
//!   "memory": [{ "gpa": "0x100000", "length": "0x200000", "digest": "sha256:<hex>" }]
//! }
//! ```
//!
//! A digest is `<alg>:<hex>` (`sha1`, `sha256`, `sha384`, `sha512`, `sm3_256`) or bare hex, read as
//! SHA-256. `gpa` and `length` are JSON integers or `0x` hex strings; a length is not 0. Unknown keys
//! are refused, so a misspelt field cannot silently leave something unchecked.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::alg::{Digest, HashAlg};

use super::leaf::{MemoryRange, QemuCode, VmId, VmLeaf};
use super::VmBatchError;

/// What one VM must look like. `None` (or an empty `memory`) leaves a field unchecked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmPolicy {
    /// The VM the policy is for.
    pub vm: Option<VmId>,
    /// Allowed digests of the QEMU executable.
    pub qemu_code: Option<Vec<Digest>>,
    /// The launch configuration's digest.
    pub launch_config: Option<Digest>,
    /// Allowed disk image digests.
    pub disks: Option<Vec<Digest>>,
    /// The kernel's digest.
    pub kernel: Option<Digest>,
    /// The initrd's digest.
    pub initrd: Option<Digest>,
    /// The vTPM EK public area's digest.
    pub vtpm_ek: Option<Digest>,
    /// Guest-memory ranges that must have been read, with their digests.
    pub memory: Vec<MemoryRange>,
}

/// The field of a leaf a [`VmFailure::Mismatch`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmField {
    /// The QEMU executable's digest.
    QemuCode,
    /// The launch configuration.
    LaunchConfig,
    /// A disk image, by its position in the leaf.
    Disk(usize),
    /// The kernel.
    Kernel,
    /// The initrd.
    Initrd,
    /// The vTPM EK.
    VtpmEk,
    /// A required guest-memory range.
    Memory {
        /// Its start.
        gpa: u64,
        /// Its length.
        length: u64,
    },
}

impl VmField {
    /// The stable check name of a mismatch in this field.
    pub fn check(&self) -> &'static str {
        match self {
            VmField::QemuCode => "vm_qemu_code_not_allowed",
            VmField::LaunchConfig => "vm_launch_config_mismatch",
            VmField::Disk(_) => "vm_disk_not_allowed",
            VmField::Kernel => "vm_kernel_mismatch",
            VmField::Initrd => "vm_initrd_mismatch",
            VmField::VtpmEk => "vm_vtpm_ek_mismatch",
            VmField::Memory { .. } => "vm_memory_mismatch",
        }
    }
}

impl fmt::Display for VmField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmField::QemuCode => f.write_str("qemu code"),
            VmField::LaunchConfig => f.write_str("launch config"),
            VmField::Disk(i) => write!(f, "disk {i}"),
            VmField::Kernel => f.write_str("kernel"),
            VmField::Initrd => f.write_str("initrd"),
            VmField::VtpmEk => f.write_str("vtpm ek"),
            VmField::Memory { gpa, length } => write!(f, "guest memory {gpa:#x}+{length:#x}"),
        }
    }
}

/// Why a VM's leaf does not satisfy its policy.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VmFailure {
    /// The leaf is another VM's than the policy's.
    #[error("vm {leaf}: the policy is for vm {policy}")]
    WrongVm {
        /// The policy's VM.
        policy: VmId,
        /// The leaf's VM.
        leaf: VmId,
    },
    /// The hypervisor measurement has not covered the VM's QEMU process.
    #[error("vm {vm}: its QEMU process was not measured")]
    QemuNotMeasured {
        /// The VM.
        vm: VmId,
    },
    /// The VM's QEMU process runs code that differs from its files.
    #[error("vm {vm}: its QEMU process ({code:?}) runs code modified in memory")]
    QemuModified {
        /// The VM.
        vm: VmId,
        /// The QEMU executable's digest.
        code: Digest,
    },
    /// A digest differs from what the policy allows.
    #[error("vm {vm}: {field} is {actual}, expected {expected}")]
    Mismatch {
        /// The VM.
        vm: VmId,
        /// The field.
        field: VmField,
        /// What the policy allows (`alg:hex`, or `one of …`).
        expected: String,
        /// What the leaf holds (`alg:hex`, or `absent`).
        actual: String,
    },
}

impl VmFailure {
    /// A stable, short name for the check (for JSON, metrics and logs).
    pub fn check(&self) -> &'static str {
        match self {
            VmFailure::WrongVm { .. } => "vm_id_mismatch",
            VmFailure::QemuNotMeasured { .. } => "vm_qemu_not_measured",
            VmFailure::QemuModified { .. } => "vm_qemu_code_modified",
            VmFailure::Mismatch { field, .. } => field.check(),
        }
    }
}

/// Judges `leaf` against `policy`: the first failure, in the module's order.
pub fn judge_leaf(policy: &VmPolicy, leaf: &VmLeaf) -> Result<(), VmFailure> {
    match leaf_failures(policy, leaf).into_iter().next() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Every failure of `leaf` against `policy`, in the module's order (empty: it passes).
pub fn leaf_failures(policy: &VmPolicy, leaf: &VmLeaf) -> Vec<VmFailure> {
    let vm = leaf.vm;
    let mut out = Vec::new();
    let mismatch = |field, expected: String, actual: String| VmFailure::Mismatch { vm, field, expected, actual };
    if let Some(p) = policy.vm.filter(|p| *p != vm) {
        out.push(VmFailure::WrongVm { policy: p, leaf: vm });
    }
    match leaf.qemu {
        QemuCode::NotMeasured => out.push(VmFailure::QemuNotMeasured { vm }),
        QemuCode::Modified(code) => out.push(VmFailure::QemuModified { vm, code }),
        QemuCode::Unmodified(_) => {}
    }
    if let (Some(allowed), Some(code)) = (&policy.qemu_code, leaf.qemu.digest()) {
        if !allowed.contains(code) {
            out.push(mismatch(VmField::QemuCode, one_of(allowed), text(code)));
        }
    }
    if let Some(want) = &policy.launch_config {
        if *want != leaf.launch_config {
            out.push(mismatch(VmField::LaunchConfig, text(want), text(&leaf.launch_config)));
        }
    }
    if let Some(allowed) = &policy.disks {
        for (i, d) in leaf.disks.iter().enumerate().filter(|(_, d)| !allowed.contains(d)) {
            out.push(mismatch(VmField::Disk(i), one_of(allowed), text(d)));
        }
    }
    for (field, want, have) in [
        (VmField::Kernel, &policy.kernel, &leaf.kernel),
        (VmField::Initrd, &policy.initrd, &leaf.initrd),
        (VmField::VtpmEk, &policy.vtpm_ek, &leaf.vtpm_ek),
    ] {
        if let Some(want) = want {
            if have.as_ref() != Some(want) {
                out.push(mismatch(field, text(want), have.as_ref().map_or_else(|| "absent".to_owned(), text)));
            }
        }
    }
    for req in &policy.memory {
        let read = leaf.memory.iter().find(|r| r.gpa == req.gpa && r.length == req.length);
        if read.map(|r| r.digest) != Some(req.digest) {
            let field = VmField::Memory { gpa: req.gpa, length: req.length };
            let actual = read.map_or_else(|| "not read".to_owned(), |r| text(&r.digest));
            out.push(mismatch(field, text(&req.digest), actual));
        }
    }
    out
}

fn text(d: &Digest) -> String {
    format!("{}:{}", d.alg(), d.to_hex())
}

fn one_of(ds: &[Digest]) -> String {
    match ds {
        [one] => text(one),
        _ => format!("one of [{}]", ds.iter().map(text).collect::<Vec<_>>().join(", ")),
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qemu_code: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    launch_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initrd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vtpm_ek: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    memory: Vec<RangeDocument>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDocument {
    gpa: Address,
    length: Address,
    digest: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Address {
    Number(u64),
    Text(String),
}

impl Address {
    fn value(&self, what: &str) -> Result<u64, VmBatchError> {
        match self {
            Address::Number(n) => Ok(*n),
            Address::Text(s) => s
                .strip_prefix("0x")
                .filter(|h| !h.is_empty())
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| VmBatchError::Policy(format!("memory {what} {s:?} is not an integer or 0x hex"))),
        }
    }
}

/// `<alg>:<hex>`, or bare hex as SHA-256.
fn digest(field: &str, s: &str) -> Result<Digest, VmBatchError> {
    let (alg, hex) = match s.split_once(':') {
        Some((name, hex)) => {
            let alg = HashAlg::from_name(name)
                .ok_or_else(|| VmBatchError::Policy(format!("{field}: unknown hash algorithm {name:?}")))?;
            (alg, hex)
        }
        None => (HashAlg::Sha256, s),
    };
    Digest::from_hex(alg, hex).map_err(|e| VmBatchError::Policy(format!("{field}: {e}")))
}

fn digests(field: &str, v: Option<Vec<String>>) -> Result<Option<Vec<Digest>>, VmBatchError> {
    v.map(|v| v.iter().map(|s| digest(field, s)).collect()).transpose()
}

fn opt_digest(field: &str, v: Option<String>) -> Result<Option<Digest>, VmBatchError> {
    v.map(|s| digest(field, &s)).transpose()
}

impl VmPolicy {
    /// Parses the policy JSON (see the module docs).
    pub fn from_json(text: &str) -> Result<VmPolicy, VmBatchError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| VmBatchError::Policy(e.to_string()))?;
        // serde reads a struct from an array too; a policy and each of its ranges are objects only.
        if !value.is_object() {
            return Err(VmBatchError::Policy("a VM policy is a JSON object".into()));
        }
        if let Some(ranges) = value.get("memory").and_then(serde_json::Value::as_array) {
            if !ranges.iter().all(serde_json::Value::is_object) {
                return Err(VmBatchError::Policy("each memory range is a JSON object".into()));
            }
        }
        let doc: Document = serde_json::from_value(value).map_err(|e| VmBatchError::Policy(e.to_string()))?;
        let vm = doc
            .vm
            .map(|s| s.parse::<VmId>().map_err(|e| VmBatchError::Policy(e.to_string())))
            .transpose()?;
        let memory = doc
            .memory
            .iter()
            .map(|r| {
                let range = MemoryRange {
                    gpa: r.gpa.value("gpa")?,
                    length: r.length.value("length")?,
                    digest: digest("memory digest", &r.digest)?,
                };
                if range.length == 0 || range.end().is_none() {
                    return Err(VmBatchError::Policy(format!(
                        "memory range {:#x}+{:#x} is empty or runs past 2^64",
                        range.gpa, range.length
                    )));
                }
                Ok(range)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VmPolicy {
            vm,
            qemu_code: digests("qemu_code", doc.qemu_code)?,
            launch_config: opt_digest("launch_config", doc.launch_config)?,
            disks: digests("disks", doc.disks)?,
            kernel: opt_digest("kernel", doc.kernel)?,
            initrd: opt_digest("initrd", doc.initrd)?,
            vtpm_ek: opt_digest("vtpm_ek", doc.vtpm_ek)?,
            memory,
        })
    }

    /// The policy as JSON (digests as `<alg>:<hex>`, addresses as `0x` hex).
    pub fn to_json(&self) -> String {
        let list = |v: &Option<Vec<Digest>>| v.as_ref().map(|v| v.iter().map(text).collect());
        let doc = Document {
            vm: self.vm.map(|v| v.to_string()),
            qemu_code: list(&self.qemu_code),
            launch_config: self.launch_config.as_ref().map(text),
            disks: list(&self.disks),
            kernel: self.kernel.as_ref().map(text),
            initrd: self.initrd.as_ref().map(text),
            vtpm_ek: self.vtpm_ek.as_ref().map(text),
            memory: self
                .memory
                .iter()
                .map(|r| RangeDocument {
                    gpa: Address::Text(format!("{:#x}", r.gpa)),
                    length: Address::Text(format!("{:#x}", r.length)),
                    digest: text(&r.digest),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// The policy that pins everything `leaf` shows (except the vTPM state, which changes): a
    /// reference taken from a known-good run.
    pub fn from_leaf(leaf: &VmLeaf) -> VmPolicy {
        VmPolicy {
            vm: Some(leaf.vm),
            qemu_code: leaf.qemu.digest().map(|d| vec![*d]),
            launch_config: Some(leaf.launch_config),
            disks: Some(leaf.disks.clone()),
            kernel: leaf.kernel,
            initrd: leaf.initrd,
            vtpm_ek: leaf.vtpm_ek,
            memory: leaf.memory.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vmbatch::leaf::tests::{full, minimal};

    fn checks(p: &VmPolicy, l: &VmLeaf) -> Vec<&'static str> {
        leaf_failures(p, l).iter().map(VmFailure::check).collect()
    }

    #[test]
    fn vmbatch_a_leaf_passes_the_policy_taken_from_it_and_the_empty_policy() {
        let leaf = full();
        judge_leaf(&VmPolicy::from_leaf(&leaf), &leaf).unwrap();
        judge_leaf(&VmPolicy::default(), &leaf).unwrap();
        judge_leaf(&VmPolicy::from_json("{}").unwrap(), &leaf).unwrap();
    }

    #[test]
    fn vmbatch_qemu_not_measured_or_modified_always_fails() {
        let mut leaf = full();
        leaf.qemu = QemuCode::NotMeasured;
        assert_eq!(checks(&VmPolicy::default(), &leaf), ["vm_qemu_not_measured"]);
        let patched = HashAlg::Sha256.hash(b"qemu");
        leaf.qemu = QemuCode::Modified(patched);
        let e = judge_leaf(&VmPolicy::default(), &leaf).unwrap_err();
        assert_eq!(e.check(), "vm_qemu_code_modified");
        assert!(e.to_string().contains("6f1c2a3e-0b4d-4e5f-8a9b-0c1d2e3f4a5b"), "{e}");
        assert!(e.to_string().contains(&patched.to_hex()), "{e}");
    }

    #[test]
    fn vmbatch_each_field_fails_naming_expected_and_actual() {
        let leaf = full();
        let other = HashAlg::Sha256.hash(b"other");
        let good = VmPolicy::from_leaf(&leaf);
        let cases: Vec<(VmPolicy, &str)> = vec![
            (VmPolicy { vm: Some(minimal().vm), ..good.clone() }, "vm_id_mismatch"),
            (VmPolicy { qemu_code: Some(vec![other]), ..good.clone() }, "vm_qemu_code_not_allowed"),
            (VmPolicy { launch_config: Some(other), ..good.clone() }, "vm_launch_config_mismatch"),
            (VmPolicy { kernel: Some(other), ..good.clone() }, "vm_kernel_mismatch"),
            (VmPolicy { initrd: Some(other), ..good.clone() }, "vm_initrd_mismatch"),
            (VmPolicy { vtpm_ek: Some(other), ..good.clone() }, "vm_vtpm_ek_mismatch"),
        ];
        for (p, check) in cases {
            let e = judge_leaf(&p, &leaf).unwrap_err();
            assert_eq!(e.check(), check);
            if let VmFailure::Mismatch { expected, actual, .. } = &e {
                assert_eq!(*expected, format!("sha256:{}", other.to_hex()));
                assert!(actual.starts_with("sha256:") && actual.len() == 7 + 64, "{actual}");
            }
        }
        // A disk not in the allowed list is named by its position.
        let p = VmPolicy { disks: Some(vec![leaf.disks[0], other]), ..good.clone() };
        let e = judge_leaf(&p, &leaf).unwrap_err();
        assert_eq!(e.check(), "vm_disk_not_allowed");
        let text = e.to_string();
        assert!(text.contains("disk 1 is sha384:") && text.contains("expected one of [sha256:"), "{text}");
        // A pinned kernel the leaf does not have.
        let f = leaf_failures(&VmPolicy { kernel: leaf.kernel, ..VmPolicy::default() }, &minimal());
        let kernel = matches!(&f[1], VmFailure::Mismatch { field: VmField::Kernel, actual, .. } if actual == "absent");
        assert!(kernel, "{f:?}");
        // A required range: read with another digest, or not read.
        let mut p = good.clone();
        p.memory[1].digest = other;
        p.memory.push(MemoryRange { gpa: 0x30_0000, length: 0x2000, digest: other });
        let f = leaf_failures(&p, &leaf);
        assert_eq!(f.iter().map(VmFailure::check).collect::<Vec<_>>(), ["vm_memory_mismatch"; 2]);
        assert!(f[0].to_string().contains("guest memory 0x300000+0x1000 is sha256:"), "{}", f[0]);
        assert!(f[1].to_string().contains("guest memory 0x300000+0x2000 is not read, expected sha256:"), "{}", f[1]);
    }

    #[test]
    fn vmbatch_every_failure_is_reported_in_order() {
        let mut leaf = full();
        leaf.qemu = QemuCode::Modified(HashAlg::Sha256.hash(b"x"));
        let other = HashAlg::Sha256.hash(b"other");
        let p = VmPolicy {
            vm: Some(minimal().vm),
            qemu_code: Some(vec![other]),
            launch_config: Some(other),
            disks: Some(vec![other]),
            kernel: Some(other),
            initrd: None,
            vtpm_ek: Some(other),
            memory: vec![MemoryRange { gpa: 0, length: 1, digest: other }],
        };
        assert_eq!(
            checks(&p, &leaf),
            [
                "vm_id_mismatch",
                "vm_qemu_code_modified",
                "vm_qemu_code_not_allowed",
                "vm_launch_config_mismatch",
                "vm_disk_not_allowed",
                "vm_disk_not_allowed",
                "vm_kernel_mismatch",
                "vm_vtpm_ek_mismatch",
                "vm_memory_mismatch",
            ]
        );
        assert_eq!(judge_leaf(&p, &leaf).unwrap_err().check(), "vm_id_mismatch");
    }

    #[test]
    fn vmbatch_policy_json_round_trips_and_accepts_both_spellings() {
        let p = VmPolicy::from_leaf(&full());
        let json = p.to_json();
        assert_eq!(VmPolicy::from_json(&json).unwrap(), p);
        assert!(json.contains("\"gpa\": \"0x100000\""), "{json}");
        let h = HashAlg::Sha256.hash(b"k").to_hex();
        let text = format!(
            r#"{{"kernel": "{h}", "memory": [{{"gpa": 1048576, "length": "0x1000", "digest": "sha256:{h}"}}],
                "disks": ["sm3_256:{h}"]}}"#
        );
        let q = VmPolicy::from_json(&text).unwrap();
        assert_eq!(q.kernel.unwrap().to_hex(), h);
        assert_eq!(q.memory[0].gpa, 0x10_0000);
        assert_eq!(q.disks.unwrap()[0].alg(), HashAlg::Sm3_256);
    }

    #[test]
    fn vmbatch_bad_policies_are_refused_with_the_field() {
        let h = HashAlg::Sha256.hash(b"k").to_hex();
        for (text, needle) in [
            (r#"{"kernal": "00"}"#.to_owned(), "unknown field"),
            (r#"{"kernel": "md5:00"}"#.to_owned(), "kernel: unknown hash algorithm"),
            (r#"{"kernel": "sha256:00"}"#.to_owned(), "kernel"),
            (r#"{"vm": "nope"}"#.to_owned(), "not a UUID"),
            (format!(r#"{{"memory": [{{"gpa": "0x", "length": 1, "digest": "{h}"}}]}}"#), "memory gpa"),
            (format!(r#"{{"memory": [{{"gpa": 1, "length": 0, "digest": "{h}"}}]}}"#), "empty"),
            (format!(r#"{{"memory": [{{"gpa": "0xffffffffffffffff", "length": 2, "digest": "{h}"}}]}}"#), "past 2^64"),
            (format!(r#"{{"memory": [{{"gpa": 1, "length": 1, "digest": "{h}", "x": 1}}]}}"#), "unknown field"),
            ("[]".to_owned(), "a VM policy is a JSON object"),
            (format!(r#"{{"memory": [["0x1", 1, "{h}"]]}}"#), "each memory range is a JSON object"),
        ] {
            let e = VmPolicy::from_json(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
