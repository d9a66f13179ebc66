//! Agent configuration: raw values (TOML file, flags, environment) and the validated form.
//!
//! Two stages, as the CLI does it everywhere: [`RawConfig`] holds optional text exactly as an
//! operator wrote it (every field optional, so a file and flags can be layered with
//! [`RawConfig::over`]); [`RawConfig::validate`] turns it into an [`AgentConfig`] whose fields have
//! their shapes (algorithms, socket addresses, URLs, paths), or says which field is wrong.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_core::pcr::PcrIndex;
use cairn_core::HashAlg;
use cairn_tpm::{AkAlg, AkSpec, EkKind};
use serde::Deserialize;

use crate::error::AgentError;
use crate::hvm::{self, HvmConfig, Selector};
use crate::identity::UuidSource;

/// Default TPM: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cairn/agent";
/// Default listening address (Keylime's agent port).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9002";
/// Default registrar (Keylime's registrar HTTP port).
pub const DEFAULT_REGISTRAR: &str = "http://127.0.0.1:8890";
/// The kernel's IMA measurement list.
pub const DEFAULT_IMA_LOG: &str = "/sys/kernel/security/ima/ascii_runtime_measurements";
/// The kernel's copy of the UEFI event log.
pub const DEFAULT_UEFI_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";
/// Revocation actions directory, under the state directory unless configured.
pub const REVOCATION_ACTIONS_DIR: &str = "revocation_actions";

/// Configuration as written: every field optional. TOML keys are the field names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// TCTI of the TPM.
    pub tcti: Option<String>,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// `hash_ek`, `generate`, or a literal uuid.
    pub uuid: Option<String>,
    /// Address to serve the agent API on.
    pub listen: Option<String>,
    /// Address the registrar tells verifiers (default: the listening IP, or 127.0.0.1 if unspecified).
    pub contact_ip: Option<String>,
    /// Port the registrar tells verifiers (default: the listening port).
    pub contact_port: Option<u16>,
    /// Registrar base URL (`http://host:8890`).
    pub registrar: Option<String>,
    /// Whether to register at start.
    pub register: Option<bool>,
    /// EK: `rsa2048` or `ecc256`.
    pub ek: Option<String>,
    /// AK algorithm (`rsa2048-rsassa`, …).
    pub ak_alg: Option<String>,
    /// AK signing hash, also the quoted PCR bank.
    pub hash: Option<String>,
    /// AK persistent handle.
    pub ak_handle: Option<String>,
    /// IMA ASCII measurement list.
    pub ima_log: Option<PathBuf>,
    /// UEFI event log.
    pub uefi_log: Option<PathBuf>,
    /// CA (PEM) a verifier's client certificate must chain to; unset = accept any client, logged.
    pub client_ca: Option<PathBuf>,
    /// Public key or certificate (PEM) of the verifier's revocation key; unset = revocation
    /// notifications are refused.
    pub revocation_cert: Option<PathBuf>,
    /// Directory of revocation actions [default: `<state_dir>/revocation_actions`].
    pub revocation_actions_dir: Option<PathBuf>,
    /// Serve `/cairn/v1/ima/changes` so a verifier attests at once when the IMA log grows.
    pub push_on_change: Option<bool>,
    /// Host mode: measure the hypervisor's processes ([`crate::hvm`]).
    pub hvm: Option<bool>,
    /// The PCR host mode extends [default: 13].
    pub hvm_pcr: Option<u8>,
    /// Milliseconds between measurement rounds [default: 30000].
    pub hvm_interval_ms: Option<u64>,
    /// Executable path globs to measure [default: `qemu-system-*`, `swtpm`, `libvirtd`].
    pub hvm_exe: Option<Vec<String>>,
    /// What this node is: `host` (default) or `vm` (its TPM is a vTPM of an enrolled host).
    pub kind: Option<String>,
    /// A host's vTPM CA directory (`cairn vtpm create --ca-dir`); its CA is certified by the AK
    /// and published at registration. Unset = no vTPM CA.
    pub vtpm_ca_dir: Option<PathBuf>,
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, AgentError> {
        let text = std::fs::read_to_string(path).map_err(AgentError::io(path))?;
        toml::from_str(&text).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))
    }

    /// `self` where set, else `base`.
    pub fn over(self, base: RawConfig) -> RawConfig {
        RawConfig {
            tcti: self.tcti.or(base.tcti),
            state_dir: self.state_dir.or(base.state_dir),
            uuid: self.uuid.or(base.uuid),
            listen: self.listen.or(base.listen),
            contact_ip: self.contact_ip.or(base.contact_ip),
            contact_port: self.contact_port.or(base.contact_port),
            registrar: self.registrar.or(base.registrar),
            register: self.register.or(base.register),
            ek: self.ek.or(base.ek),
            ak_alg: self.ak_alg.or(base.ak_alg),
            hash: self.hash.or(base.hash),
            ak_handle: self.ak_handle.or(base.ak_handle),
            ima_log: self.ima_log.or(base.ima_log),
            uefi_log: self.uefi_log.or(base.uefi_log),
            client_ca: self.client_ca.or(base.client_ca),
            revocation_cert: self.revocation_cert.or(base.revocation_cert),
            revocation_actions_dir: self.revocation_actions_dir.or(base.revocation_actions_dir),
            push_on_change: self.push_on_change.or(base.push_on_change),
            hvm: self.hvm.or(base.hvm),
            hvm_pcr: self.hvm_pcr.or(base.hvm_pcr),
            hvm_interval_ms: self.hvm_interval_ms.or(base.hvm_interval_ms),
            hvm_exe: self.hvm_exe.or(base.hvm_exe),
            kind: self.kind.or(base.kind),
            vtpm_ca_dir: self.vtpm_ca_dir.or(base.vtpm_ca_dir),
        }
    }

    /// Checks every field and fills defaults.
    pub fn validate(self) -> Result<AgentConfig, AgentError> {
        let bad = |field: &str, why: String| AgentError::Config(format!("{field}: {why}"));
        let hvm = if self.hvm.unwrap_or(false) { Some(hvm_config(&self)?) } else { None };
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|e| bad("listen", format!("not an IP:port address ({e})")))?;
        let contact_ip: IpAddr = match self.contact_ip.as_deref() {
            Some(s) => s.parse().map_err(|e| bad("contact_ip", format!("not an IP address ({e})")))?,
            None if listen.ip().is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            None => listen.ip(),
        };
        let registrar = self.registrar.as_deref().unwrap_or(DEFAULT_REGISTRAR);
        let registrar = reqwest::Url::parse(registrar).map_err(|e| bad("registrar", format!("not a URL ({e})")))?;
        if registrar.scheme() != "http" && registrar.scheme() != "https" {
            return Err(bad("registrar", "must be an http:// or https:// URL".into()));
        }
        let ek = match self.ek.as_deref().unwrap_or("rsa2048") {
            "rsa2048" | "rsa" => EkKind::Rsa2048,
            "ecc256" | "ecc" => EkKind::EccP256,
            other => return Err(bad("ek", format!("{other:?} is not rsa2048 or ecc256"))),
        };
        let alg_name = self.ak_alg.as_deref().unwrap_or("rsa2048-rsassa");
        let alg = ak_alg(alg_name).ok_or_else(|| {
            let names: Vec<_> = AkAlg::ALL.iter().map(|a| a.name()).collect();
            bad("ak_alg", format!("{alg_name:?} is not one of {}", names.join(", ")))
        })?;
        let hash_name = self.hash.as_deref().unwrap_or("sha256");
        let hash = HashAlg::from_name(hash_name).ok_or_else(|| bad("hash", format!("{hash_name:?} is not a hash")))?;
        let handle = match self.ak_handle.as_deref() {
            None => None,
            Some(h) => Some(parse_handle(h).ok_or_else(|| bad("ak_handle", format!("{h:?} is not a persistent handle (0x81xxxxxx)")))?),
        };
        let uuid = UuidSource::parse(self.uuid.as_deref().unwrap_or("hash_ek")).map_err(|why| bad("uuid", why))?;
        let kind = match self.kind.as_deref().unwrap_or("host") {
            "host" => NodeKind::Host,
            "vm" => NodeKind::Vm,
            other => return Err(bad("kind", format!("{other:?} is not host or vm"))),
        };
        if kind == NodeKind::Vm && self.vtpm_ca_dir.is_some() {
            return Err(bad("vtpm_ca_dir", "a VM (kind = \"vm\") does not issue vTPM EK certificates".into()));
        }
        let state_dir: PathBuf = self.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let revocation_actions_dir = self.revocation_actions_dir.unwrap_or_else(|| state_dir.join(REVOCATION_ACTIONS_DIR));
        Ok(AgentConfig {
            tcti: self.tcti.unwrap_or_else(|| DEFAULT_TCTI.into()),
            state_dir,
            uuid,
            listen,
            contact_ip,
            contact_port: self.contact_port,
            registrar,
            register: self.register.unwrap_or(true),
            ak: AkSpec { alg, hash, handle, ek },
            ima_log: self.ima_log.unwrap_or_else(|| DEFAULT_IMA_LOG.into()),
            uefi_log: self.uefi_log.unwrap_or_else(|| DEFAULT_UEFI_LOG.into()),
            client_ca: self.client_ca,
            revocation_cert: self.revocation_cert,
            revocation_actions_dir,
            push_on_change: self.push_on_change.unwrap_or(false),
            hvm,
            kind,
            vtpm_ca_dir: self.vtpm_ca_dir,
        })
    }
}

/// Host-mode settings from the raw values.
fn hvm_config(raw: &RawConfig) -> Result<HvmConfig, AgentError> {
    let bad = |field: &str, why: String| AgentError::Config(format!("{field}: {why}"));
    let n = raw.hvm_pcr.unwrap_or(hvm::DEFAULT_PCR);
    let pcr = PcrIndex::new(n).filter(|_| n <= 23).ok_or_else(|| bad("hvm_pcr", format!("{n} is not a PCR from 0 to 23")))?;
    match n {
        10 => return Err(bad("hvm_pcr", "10 is IMA's PCR".into())),
        16 => return Err(bad("hvm_pcr", "16 is reset on every quote to bind the node key".into())),
        17..=23 => tracing::warn!("hvm_pcr {n} can be reset by software: a root attacker could replay a clean list into it"),
        _ => {}
    }
    let ms = raw.hvm_interval_ms.unwrap_or(hvm::DEFAULT_INTERVAL_MS);
    if ms == 0 {
        return Err(bad("hvm_interval_ms", "must be at least 1".into()));
    }
    let patterns: Vec<String> = match &raw.hvm_exe {
        Some(p) => p.clone(),
        None => hvm::DEFAULT_SELECTORS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let selectors = patterns
        .iter()
        .map(|p| Selector::new(p).ok_or_else(|| bad("hvm_exe", "an empty pattern".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HvmConfig { pcr, interval: Duration::from_millis(ms), selectors, proc_root: "/proc".into() })
}

/// An AK algorithm by its full name, or the short forms `cairn tpm quote` takes.
fn ak_alg(name: &str) -> Option<AkAlg> {
    match name {
        "rsa2048" | "rsa" => Some(AkAlg::Rsa2048Rsassa),
        "ecc256" | "ecc" => Some(AkAlg::EccP256Ecdsa),
        "sm2" => Some(AkAlg::Sm2P256),
        other => AkAlg::from_name(other),
    }
}

/// `0x81010010` or decimal, within the persistent range.
fn parse_handle(s: &str) -> Option<u32> {
    let s = s.trim();
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => s.parse().ok()?,
    };
    (0x8100_0000..=0x81ff_ffff).contains(&v).then_some(v)
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// TCTI of the TPM.
    pub tcti: String,
    /// Where keys, certificate and uuid live.
    pub state_dir: PathBuf,
    /// How the uuid is chosen.
    pub uuid: UuidSource,
    /// Address the HTTPS server binds.
    pub listen: SocketAddr,
    /// IP registered at the registrar.
    pub contact_ip: IpAddr,
    /// Port registered at the registrar; `None` = the port actually bound.
    pub contact_port: Option<u16>,
    /// Registrar base URL.
    pub registrar: reqwest::Url,
    /// Whether to register at start.
    pub register: bool,
    /// The AK (and the EK it is created under).
    pub ak: AkSpec,
    /// IMA ASCII measurement list.
    pub ima_log: PathBuf,
    /// UEFI event log.
    pub uefi_log: PathBuf,
    /// Client CA for mTLS; `None` = accept any client certificate (logged).
    pub client_ca: Option<PathBuf>,
    /// The verifier's revocation public key or certificate (PEM); `None` = revocation
    /// notifications are refused.
    pub revocation_cert: Option<PathBuf>,
    /// Where revocation actions are (the directory may be absent: no actions).
    pub revocation_actions_dir: PathBuf,
    /// Whether a verifier may long-poll for IMA log growth (push-on-change).
    pub push_on_change: bool,
    /// Host mode, when on.
    pub hvm: Option<HvmConfig>,
    /// What this node registers as.
    pub kind: NodeKind,
    /// A host's vTPM CA directory, published (certified by the AK) at registration.
    pub vtpm_ca_dir: Option<PathBuf>,
}

/// What a node registers as (`cairn_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A machine whose TPM's EK certificate a TPM vendor (or the operator's CA) issued.
    Host,
    /// A VM on a vTPM whose EK certificate an enrolled host's vTPM CA issued.
    Vm,
}

impl NodeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Vm => "vm",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_layering() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.listen.port(), 9002);
        assert_eq!(c.contact_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.ak.alg, AkAlg::Rsa2048Rsassa);
        assert_eq!(c.ak.hash, HashAlg::Sha256);
        assert_eq!(c.uuid, UuidSource::HashEk);
        assert_eq!((c.kind, c.vtpm_ca_dir.as_deref()), (NodeKind::Host, None));
        let vm: RawConfig = toml::from_str("kind = \"vm\"").unwrap();
        assert_eq!(vm.validate().unwrap().kind, NodeKind::Vm);
        let file: RawConfig = toml::from_str("listen = \"127.0.0.1:1\"\nhash = \"sha384\"\nak_handle = \"0x81010020\"").unwrap();
        let flags = RawConfig { hash: Some("sha1".into()), ..RawConfig::default() };
        let c = flags.over(file).validate().unwrap();
        assert_eq!((c.listen.port(), c.contact_port, c.ak.hash), (1, None, HashAlg::Sha1));
        assert_eq!(c.ak.handle, Some(0x8101_0020));
        assert_eq!(c.revocation_cert, None);
        assert_eq!(c.revocation_actions_dir, PathBuf::from(DEFAULT_STATE_DIR).join("revocation_actions"));
        let file: RawConfig = toml::from_str("state_dir = \"/s\"\nrevocation_cert = \"/etc/rev.pem\"").unwrap();
        let c = file.validate().unwrap();
        assert_eq!(c.revocation_cert.as_deref(), Some(Path::new("/etc/rev.pem")));
        assert_eq!(c.revocation_actions_dir, PathBuf::from("/s/revocation_actions"));
        let flags = RawConfig { revocation_actions_dir: Some("/a".into()), ..RawConfig::default() };
        assert_eq!(flags.validate().unwrap().revocation_actions_dir, PathBuf::from("/a"));
    }

    #[test]
    fn host_mode_is_off_unless_asked_and_has_defaults() {
        assert!(RawConfig::default().validate().unwrap().hvm.is_none());
        let raw: RawConfig = toml::from_str("hvm = true").unwrap();
        let h = raw.validate().unwrap().hvm.unwrap();
        assert_eq!((h.pcr.get(), h.interval), (13, Duration::from_secs(30)));
        let names: Vec<&str> = h.selectors.iter().map(Selector::pattern).collect();
        assert_eq!(names, ["qemu-system-*", "swtpm", "libvirtd"]);
        let raw: RawConfig = toml::from_str("hvm = true\nhvm_pcr = 15\nhvm_exe = [\"/opt/*/vmm\"]").unwrap();
        let h = raw.validate().unwrap().hvm.unwrap();
        assert_eq!((h.pcr.get(), h.selectors.len()), (15, 1));
    }

    #[test]
    fn bad_fields_are_named() {
        for (toml, field) in [
            ("listen = \"nope\"", "listen"),
            ("registrar = \"ftp://x\"", "registrar"),
            ("ak_alg = \"dsa\"", "ak_alg"),
            ("hash = \"md5\"", "hash"),
            ("ak_handle = \"0x01000000\"", "ak_handle"),
            ("uuid = \"has space\"", "uuid"),
            ("ek = \"ecc384\"", "ek"),
            ("hvm = true\nhvm_pcr = 16", "hvm_pcr"),
            ("hvm = true\nhvm_pcr = 24", "hvm_pcr"),
            ("hvm = true\nhvm_interval_ms = 0", "hvm_interval_ms"),
            ("hvm = true\nhvm_exe = [\"\"]", "hvm_exe"),
            ("kind = \"container\"", "kind"),
            ("kind = \"vm\"\nvtpm_ca_dir = \"/ca\"", "vtpm_ca_dir"),
        ] {
            let raw: RawConfig = toml::from_str(toml).unwrap();
            let e = raw.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{toml}: {e}");
        }
        assert!(toml::from_str::<RawConfig>("colour = 1").is_err());
    }
}
