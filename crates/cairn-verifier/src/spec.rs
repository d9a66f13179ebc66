//! A node as the tenant added it: the Keylime add request checked and normalised into the
//! [`NodeSpec`] the verifier stores (as JSON) and attests by.
//!
//! Everything that can be wrong with a request is found here, before anything is stored: the AK
//! must parse and sign with an accepted hash, the PCR policy must parse, inline policies must
//! parse (they are then stored as named policies, under the given name or the node's id, as
//! Keylime does), and a named policy must exist.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_core::policy::pcr::PcrPolicy;
use cairn_core::tpm::Public;
use cairn_core::vmbatch::{VmId, VmPolicy};
use cairn_core::HashAlg;
use cairn_proto::verifier::AddAgentRequest;
use cairn_store::PolicyKind;
use serde::{Deserialize, Serialize};

use crate::error::VerifierError;

/// PCR 10 (IMA) is always quoted: the IMA list is replayed even without a runtime policy.
const IMA_MASK: u32 = 1 << 10;
/// PCRs 0–7 are quoted when a measured-boot policy applies.
const BOOT_MASK: u32 = 0xff;

/// What the verifier stores for a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Contact address.
    pub ip: String,
    /// Contact port.
    pub port: u16,
    /// AK, base64 TPM2B_PUBLIC.
    pub ak_tpm: String,
    /// The agent's HTTPS certificate (PEM), pinned.
    pub mtls_cert: String,
    /// PCR policy JSON text (`{}` = none).
    pub tpm_policy: String,
    /// Runtime policy name.
    pub runtime_policy_name: Option<String>,
    /// Measured-boot policy name.
    pub mb_policy_name: Option<String>,
    /// Metadata JSON text.
    pub metadata: String,
    /// Accepted hash algorithms (as sent).
    pub accept_tpm_hash_algs: Vec<String>,
    /// Accepted encryption algorithms (as sent).
    pub accept_tpm_encryption_algs: Vec<String>,
    /// Accepted signing algorithms (as sent).
    pub accept_tpm_signing_algs: Vec<String>,
    /// API version to speak to the agent (`2.5`).
    pub api_version: String,
    /// The agent's NK (PEM), learned from its first reply.
    #[serde(default)]
    pub nk_pem: Option<String>,
    /// The tenant's bootstrap-key half V (base64), released to the agent after its first passing
    /// round. A secret: never logged, never in a view.
    #[serde(default)]
    pub v: Option<String>,
    /// Host mode: the PCR the agent extends with its hypervisor measurement list ([`crate::hvm`]).
    #[serde(default)]
    pub hvm_pcr: Option<u8>,
    /// The host's name for schedulers (placement queries report it).
    #[serde(default)]
    pub host_name: Option<String>,
    /// For a VM: the host node it runs on; the VM is trusted only while that node is attested.
    #[serde(default)]
    pub host_agent_id: Option<String>,
    /// For a VM: its policy for host-side evidence (`cairn_core::vmbatch::VmPolicy` JSON), judged
    /// against its leaf in each of its host's VM batches ([`crate::vmbatch`]).
    #[serde(default)]
    pub vm_policy: Option<String>,
    /// For a VM with a `vm_policy`: its id in the host's batch (QEMU's `-uuid`), lower-case.
    #[serde(default)]
    pub vm_uuid: Option<String>,
}

/// A policy given inline in an add request, to store under `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlinePolicy {
    /// Kind.
    pub kind: PolicyKind,
    /// Name to store it under.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// A checked add request: the spec and the inline policies to store first.
#[derive(Clone, Debug)]
pub struct CheckedAdd {
    /// The spec.
    pub spec: NodeSpec,
    /// Policies given inline.
    pub inline: Vec<InlinePolicy>,
}

fn bad(msg: impl Into<String>) -> VerifierError {
    VerifierError::BadRequest(msg.into())
}

/// Text that means "no policy" in Keylime requests.
fn absent(s: &Option<String>) -> bool {
    s.as_deref().map(str::trim).is_none_or(|t| t.is_empty() || t == "null" || t == "{}")
}

/// A host name as DNS and schedulers write it: 1–253 characters of letters, digits, `.`, `-`, `_`.
fn check_host_name(name: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if name.len() > 253 || !name.chars().all(ok_char) {
        return Err(format!("host_name {name:?} is not a host name (letters, digits, '.', '-', '_'; at most 253)"));
    }
    Ok(name.to_owned())
}

/// Checks a VM policy and its VM id: a VM policy needs a host, parses as `VmPolicy`, and names the
/// VM the id names (when it names one). Returns the policy text and the VM id, lower-case.
fn check_vm_policy(agent_id: &str, host: Option<&str>, text: &str, uuid: Option<&str>) -> Result<(String, String), VerifierError> {
    if host.is_none() {
        return Err(bad("vm_policy needs host_agent_id: it judges the VM's leaf in its host's VM batch"));
    }
    let policy = VmPolicy::from_json(text).map_err(|e| bad(format!("vm_policy: {e}")))?;
    let id: VmId = match uuid.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => u.parse().map_err(|e| bad(format!("vm_uuid: {e}")))?,
        None => agent_id.parse().map_err(|_| {
            bad(format!("vm_uuid is required: agent id {agent_id:?} is not a UUID, so it cannot name the VM's QEMU -uuid"))
        })?,
    };
    if let Some(named) = policy.vm.filter(|v| *v != id) {
        return Err(bad(format!("vm_policy is for vm {named}, but the VM's id (vm_uuid) is {id}")));
    }
    Ok((text.to_owned(), id.to_string()))
}

impl NodeSpec {
    /// The VM policy and VM id, when the node has a VM policy.
    pub fn vm_policy(&self) -> Result<Option<(VmId, VmPolicy)>, VerifierError> {
        let (Some(text), Some(uuid)) = (&self.vm_policy, &self.vm_uuid) else { return Ok(None) };
        let policy = VmPolicy::from_json(text).map_err(|e| bad(format!("vm_policy: {e}")))?;
        let id = uuid.parse().map_err(|e| bad(format!("vm_uuid: {e}")))?;
        Ok(Some((id, policy)))
    }

    /// Checks an add request for `agent_id`; `default_version` is used when the request names none.
    pub fn from_request(agent_id: &str, r: &AddAgentRequest, default_version: &str) -> Result<CheckedAdd, VerifierError> {
        if r.cloudagent_ip.trim().is_empty() {
            return Err(bad("cloudagent_ip is empty"));
        }
        if r.cloudagent_port == 0 {
            return Err(bad("cloudagent_port is 0"));
        }
        let ak_tpm = r.ak_tpm.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            bad("ak_tpm is required (the AK's TPM2B_PUBLIC, base64, as the registrar's aik_tpm)")
        })?;
        let mtls_cert = r.mtls_cert.clone().filter(|s| s.contains("BEGIN CERTIFICATE")).ok_or_else(|| {
            bad("mtls_cert is required (the agent's HTTPS certificate, PEM, as the registrar's mtls_cert)")
        })?;
        if !absent(&r.ima_sign_verification_keys) && r.ima_sign_verification_keys.as_deref().map(str::trim) != Some("[]") {
            return Err(bad(
                "ima_sign_verification_keys: give IMA signature keys in the runtime policy's verification-keys instead",
            ));
        }
        if r.runtime_policy_sig.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(bad("runtime_policy_sig: detached policy signatures are not supported"));
        }
        let mut spec = NodeSpec {
            ip: r.cloudagent_ip.trim().to_owned(),
            port: r.cloudagent_port,
            ak_tpm,
            mtls_cert,
            tpm_policy: r.tpm_policy.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "{}".into()),
            runtime_policy_name: None,
            mb_policy_name: None,
            metadata: r.metadata.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "{}".into()),
            accept_tpm_hash_algs: r.accept_tpm_hash_algs.clone().unwrap_or_default(),
            accept_tpm_encryption_algs: r.accept_tpm_encryption_algs.clone().unwrap_or_default(),
            accept_tpm_signing_algs: r.accept_tpm_signing_algs.clone().unwrap_or_default(),
            api_version: r.supported_version.clone().unwrap_or_else(|| default_version.to_owned()),
            nk_pem: None,
            v: None,
            hvm_pcr: None,
            host_name: None,
            host_agent_id: None,
            vm_policy: None,
            vm_uuid: None,
        };
        if let Some(host) = r.host_agent_id.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            if host == agent_id {
                return Err(bad("host_agent_id: a node cannot be its own host"));
            }
            if host.len() > 255 || !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(bad(format!("host_agent_id {host:?} is not an agent id")));
            }
            spec.host_agent_id = Some(host.to_owned());
        }
        if let Some(text) = r.vm_policy.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let (policy, uuid) = check_vm_policy(agent_id, spec.host_agent_id.as_deref(), text, r.vm_uuid.as_deref())?;
            spec.vm_policy = Some(policy);
            spec.vm_uuid = Some(uuid);
        } else if r.vm_uuid.as_deref().is_some_and(|u| !u.trim().is_empty()) {
            return Err(bad("vm_uuid is only used with vm_policy"));
        }
        if let Some(name) = r.host_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            spec.host_name = Some(check_host_name(name).map_err(bad)?);
        }
        if let Some(n) = r.hvm_pcr {
            spec.hvm_pcr = Some(crate::hvm::check_pcr(n).map_err(bad)?.get());
        }
        if let Some(v) = r.v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            cairn_core::bootstrap::KeyHalf::from_base64("v", v).map_err(|e| bad(e.to_string()))?;
            spec.v = Some(v.to_owned());
        }
        spec.ak()?;
        spec.quote_hash()?;
        spec.pcr_policy()?;
        if cairn_proto::ApiVersion::from_path_segment(&format!("v{}", spec.api_version)).is_none() {
            return Err(bad(format!("supported_version {:?} is not an API version like 2.5", spec.api_version)));
        }

        let mut inline = Vec::new();
        if !absent(&r.runtime_policy) {
            let b64 = r.runtime_policy.as_deref().unwrap_or_default().trim();
            let bytes = B64.decode(b64).map_err(|e| bad(format!("runtime_policy is not base64: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|_| bad("runtime_policy is not UTF-8 text"))?;
            let name = r.runtime_policy_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| agent_id.to_owned());
            inline.push(InlinePolicy { kind: PolicyKind::Runtime, name: name.clone(), text });
            spec.runtime_policy_name = Some(name);
        } else {
            spec.runtime_policy_name = r.runtime_policy_name.clone().filter(|n| !n.is_empty());
        }
        let mb_text = if absent(&r.mb_policy) { &r.mb_refstate } else { &r.mb_policy };
        if !absent(mb_text) {
            let name = r.mb_policy_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| agent_id.to_owned());
            let text = mb_text.clone().unwrap_or_default();
            inline.push(InlinePolicy { kind: PolicyKind::MeasuredBoot, name: name.clone(), text });
            spec.mb_policy_name = Some(name);
        } else {
            spec.mb_policy_name = r.mb_policy_name.clone().filter(|n| !n.is_empty());
        }
        Ok(CheckedAdd { spec, inline })
    }

    /// The AK.
    pub fn ak(&self) -> Result<Public, VerifierError> {
        let bytes = B64.decode(self.ak_tpm.trim()).map_err(|e| bad(format!("ak_tpm is not base64: {e}")))?;
        Public::parse_tpm2b(&bytes).map_err(|e| bad(format!("ak_tpm is not a TPM2B_PUBLIC: {e}")))
    }

    /// The hash the AK signs with, which is also the PCR bank quoted; it must be accepted.
    pub fn quote_hash(&self) -> Result<HashAlg, VerifierError> {
        let ak = self.ak()?;
        let (_, hash) = ak.signing_scheme().ok_or_else(|| bad("ak_tpm has no signing scheme: not an attestation key"))?;
        if !self.accept_tpm_hash_algs.is_empty() && !self.accept_tpm_hash_algs.iter().any(|a| a.eq_ignore_ascii_case(hash.name())) {
            return Err(bad(format!(
                "the AK signs with {}, which accept_tpm_hash_algs {:?} does not accept",
                hash.name(),
                self.accept_tpm_hash_algs
            )));
        }
        Ok(hash)
    }

    /// The PCR policy, if it says anything.
    pub fn pcr_policy(&self) -> Result<Option<PcrPolicy>, VerifierError> {
        if self.tpm_policy.trim() == "{}" {
            return Ok(None);
        }
        PcrPolicy::from_json(&self.tpm_policy).map(Some).map_err(|e| bad(format!("tpm_policy: {e}")))
    }

    /// The PCRs to ask for: the PCR policy's mask, PCR 10, PCRs 0–7 under a measured-boot policy,
    /// and the hvm PCR in host mode.
    pub fn mask(&self) -> Result<u32, VerifierError> {
        let policy = self.pcr_policy()?.map(|p| p.mask()).unwrap_or(0);
        let boot = if self.mb_policy_name.is_some() { BOOT_MASK } else { 0 };
        let hvm = self.hvm_pcr.map_or(0, |n| 1u32 << (n & 31));
        Ok(policy | IMA_MASK | boot | hvm)
    }

    /// The AK's key type in Keylime's 2.5 spelling (`rsa2048`, `ecc256`).
    pub fn enc_alg(&self) -> String {
        self.ak().map(|a| a.key_name()).unwrap_or_default()
    }

    /// The AK's signing scheme (`rsassa`, `ecdsa`, …).
    pub fn sign_alg(&self) -> String {
        self.ak().ok().and_then(|a| a.signing_scheme()).map(|(s, _)| format!("{s:?}").to_ascii_lowercase()).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cairn_core::tpm::{EccCurve, PublicKey, SigScheme};

    fn ak(hash: HashAlg) -> String {
        let key = PublicKey::Ecc { curve: EccCurve::NistP256, x: vec![1; 32], y: vec![2; 32] };
        B64.encode(Public::for_signing_key(&key, SigScheme::Ecdsa, hash).unwrap().to_tpm2b())
    }

    fn request() -> AddAgentRequest {
        AddAgentRequest {
            cloudagent_ip: "127.0.0.1".into(),
            cloudagent_port: 9002,
            ak_tpm: Some(ak(HashAlg::Sha256)),
            mtls_cert: Some("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into()),
            ..AddAgentRequest::default()
        }
    }

    fn refused(r: &AddAgentRequest) -> String {
        NodeSpec::from_request("n1", r, "2.5").unwrap_err().to_string()
    }

    #[test]
    fn a_plain_request_asks_for_pcr_10_and_names_no_policy() {
        let c = NodeSpec::from_request("n1", &request(), "2.5").unwrap();
        assert_eq!(c.spec.mask().unwrap(), 1 << 10);
        assert_eq!(c.spec.quote_hash().unwrap(), HashAlg::Sha256);
        assert!(c.inline.is_empty() && c.spec.runtime_policy_name.is_none());
        assert_eq!((c.spec.enc_alg().as_str(), c.spec.sign_alg().as_str()), ("ecc256", "ecdsa"));
    }

    #[test]
    fn inline_policies_are_stored_under_the_node_or_the_given_name_and_widen_the_mask() {
        let mut r = request();
        r.runtime_policy = Some(B64.encode("{\"digests\": {}}"));
        r.mb_refstate = Some("{\"scrtm_and_bios\": []}".into());
        r.mb_policy_name = Some("fleet-mb".into());
        r.tpm_policy = Some("{\"15\": [\"00\"], \"mask\": \"0x8000\"}".into());
        let c = NodeSpec::from_request("n1", &r, "2.5").unwrap();
        assert_eq!(c.spec.runtime_policy_name.as_deref(), Some("n1"));
        assert_eq!(c.spec.mb_policy_name.as_deref(), Some("fleet-mb"));
        assert_eq!(c.inline.len(), 2);
        assert_eq!(c.spec.mask().unwrap(), 0x8000 | 1 << 10 | 0xff);
    }

    #[test]
    fn host_mode_adds_the_hvm_pcr_to_the_mask() {
        let named = NodeSpec::from_request("n1", &AddAgentRequest { host_name: Some(" compute-1.example ".into()), ..request() }, "2.5");
        assert_eq!(named.unwrap().spec.host_name.as_deref(), Some("compute-1.example"));
        assert!(refused(&AddAgentRequest { host_name: Some("a b".into()), ..request() }).contains("host_name"));
        let r = AddAgentRequest { hvm_pcr: Some(13), ..request() };
        let c = NodeSpec::from_request("n1", &r, "2.5").unwrap();
        assert_eq!(c.spec.hvm_pcr, Some(13));
        assert_eq!(c.spec.mask().unwrap(), 1 << 10 | 1 << 13);
    }

    const VM: &str = "6F1C2A3E-0B4D-4E5F-8A9B-0C1D2E3F4A5B";

    #[test]
    fn a_vm_policy_names_the_vm_by_its_uuid_or_agent_id() {
        let r = AddAgentRequest { host_agent_id: Some("h".into()), vm_policy: Some("{\"disks\": []}".into()), ..request() };
        let c = NodeSpec::from_request(VM, &r, "2.5").unwrap();
        assert_eq!(c.spec.vm_uuid.as_deref(), Some(VM.to_ascii_lowercase().as_str()));
        let (id, policy) = c.spec.vm_policy().unwrap().unwrap();
        assert_eq!((id.to_string(), policy.disks), (VM.to_ascii_lowercase(), Some(vec![])));
        let r = AddAgentRequest { vm_uuid: Some(VM.into()), ..r };
        assert_eq!(NodeSpec::from_request("vm-1", &r, "2.5").unwrap().spec.vm_uuid.unwrap(), VM.to_ascii_lowercase());
        let other = format!("{{\"vm\": \"{}\"}}", "00000000-0000-4000-8000-000000000001");
        assert!(refused(&AddAgentRequest { vm_policy: Some(other), ..r }).contains("vm_policy is for vm"));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut AddAgentRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.ak_tpm = None), "ak_tpm is required"),
            (Box::new(|r| r.ak_tpm = Some("%%%".into())), "ak_tpm is not base64"),
            (Box::new(|r| r.ak_tpm = Some(B64.encode([0, 4, 1, 2]))), "ak_tpm is not a TPM2B_PUBLIC"),
            (Box::new(|r| r.mtls_cert = None), "mtls_cert is required"),
            (Box::new(|r| r.cloudagent_ip = " ".into()), "cloudagent_ip"),
            (Box::new(|r| r.cloudagent_port = 0), "cloudagent_port"),
            (Box::new(|r| r.accept_tpm_hash_algs = Some(vec!["sha384".into()])), "accept_tpm_hash_algs"),
            (Box::new(|r| r.tpm_policy = Some("{\"15\": [\"zz\"]}".into())), "tpm_policy"),
            (Box::new(|r| r.runtime_policy = Some("not base64!".into())), "runtime_policy is not base64"),
            (Box::new(|r| r.runtime_policy_sig = Some("c2ln".into())), "runtime_policy_sig"),
            (Box::new(|r| r.ima_sign_verification_keys = Some("[{\"k\": 1}]".into())), "ima_sign_verification_keys"),
            (Box::new(|r| r.supported_version = Some("three".into())), "supported_version"),
            (Box::new(|r| r.v = Some(B64.encode([1u8; 31]))), "v"),
            (Box::new(|r| r.hvm_pcr = Some(16)), "hvm_pcr"),
            (Box::new(|r| r.hvm_pcr = Some(10)), "hvm_pcr"),
            (Box::new(|r| r.hvm_pcr = Some(24)), "hvm_pcr"),
            (Box::new(|r| r.host_agent_id = Some("n1".into())), "its own host"),
            (Box::new(|r| r.host_agent_id = Some("a/../b c".into())), "host_agent_id"),
            (Box::new(|r| r.vm_policy = Some("{}".into())), "vm_policy needs host_agent_id"),
            (Box::new(|r| { r.host_agent_id = Some("h".into()); r.vm_policy = Some("{\"disk\": []}".into()) }), "vm_policy:"),
            (Box::new(|r| { r.host_agent_id = Some("h".into()); r.vm_policy = Some("{}".into()) }), "vm_uuid is required"),
            (Box::new(|r| { r.host_agent_id = Some("h".into()); r.vm_policy = Some("{}".into()); r.vm_uuid = Some("x".into()) }), "vm_uuid:"),
            (Box::new(|r| r.vm_uuid = Some(VM.into())), "vm_uuid is only used with vm_policy"),
        ];
        for (change, expected) in cases {
            let mut r = request();
            change(&mut r);
            let e = refused(&r);
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
    }
}
