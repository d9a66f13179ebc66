//! The agent's software keys, kept in its state directory: the node key (NK) and the mTLS
//! certificate.
//!
//! - NK: RSA-2048 made with aws-lc-rs, stored as PKCS#8 DER in `nk.der` (mode 0600). A tenant and
//!   a verifier encrypt the bootstrap key halves U and V to it (RSA-OAEP); its public key, PEM,
//!   is what PCR 16 binds to the TPM in every quote.
//! - mTLS: an ECDSA P-256 key (`mtls.key`, 0600) and a self-signed certificate (`mtls.crt`) made
//!   with rcgen, CN = the agent uuid, SAN = the contact IP and `localhost`. The registrar stores
//!   it; a verifier then pins it as the agent's server certificate, as Keylime does.
//!
//! Existing files are reused, so a restarted agent keeps its keys; a new file is written to a
//! temporary name and renamed, so a crash never leaves half a key.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use cairn_core::crypto::spki::pem_encode;

use crate::error::AgentError;

/// NK file name.
pub const NK_FILE: &str = "nk.der";
/// mTLS private key file name.
pub const MTLS_KEY_FILE: &str = "mtls.key";
/// mTLS certificate file name.
pub const MTLS_CERT_FILE: &str = "mtls.crt";

/// The node key.
pub struct NodeKey {
    key: PrivateDecryptingKey,
    public_pem: String,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").field("public_pem", &self.public_pem).finish_non_exhaustive()
    }
}

impl NodeKey {
    /// Loads `dir/nk.der`, or makes and stores a new key.
    pub fn load_or_create(dir: &Path) -> Result<NodeKey, AgentError> {
        let path = dir.join(NK_FILE);
        let key = if path.exists() {
            let der = fs::read(&path).map_err(AgentError::io(&path))?;
            PrivateDecryptingKey::from_pkcs8(&der).map_err(|e| AgentError::Keys(format!("{}: {e}", path.display())))?
        } else {
            let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
                .map_err(|_| AgentError::Keys("RSA-2048 key generation failed".into()))?;
            let der = key.as_der().map_err(|_| AgentError::Keys("cannot encode the NK".into()))?;
            write_private(&path, der.as_ref())?;
            key
        };
        let public = key.public_key();
        let spki = public.as_der().map_err(|_| AgentError::Keys("cannot encode the NK public key".into()))?;
        Ok(NodeKey { public_pem: pem_encode("PUBLIC KEY", spki.as_ref()), key })
    }

    /// SubjectPublicKeyInfo, PEM: what `/keys/pubkey` serves and PCR 16 binds.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The private key, for RSA-OAEP decryption of U and V.
    pub fn private(&self) -> &PrivateDecryptingKey {
        &self.key
    }
}

/// The agent's TLS identity.
#[derive(Clone, Debug)]
pub struct MtlsIdentity {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl MtlsIdentity {
    /// Loads `dir/mtls.{crt,key}`, or makes a self-signed certificate for `uuid` and `ip`.
    pub fn load_or_create(dir: &Path, uuid: &str, ip: IpAddr) -> Result<MtlsIdentity, AgentError> {
        let (cert_path, key_path) = (dir.join(MTLS_CERT_FILE), dir.join(MTLS_KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = fs::read_to_string(&cert_path).map_err(AgentError::io(&cert_path))?;
            let key_pem = fs::read_to_string(&key_path).map_err(AgentError::io(&key_path))?;
            return Ok(MtlsIdentity { cert_pem, key_pem });
        }
        let keys = |e: rcgen::Error| AgentError::Keys(format!("mTLS certificate: {e}"));
        let key = rcgen::KeyPair::generate().map_err(keys)?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(keys)?;
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, uuid);
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Cairn agent");
        let cert = params.self_signed(&key).map_err(keys)?;
        let identity = MtlsIdentity { cert_pem: cert.pem(), key_pem: key.serialize_pem() };
        write_private(&key_path, identity.key_pem.as_bytes())?;
        write_public(&cert_path, identity.cert_pem.as_bytes())?;
        Ok(identity)
    }
}

/// Writes a secret file with mode 0600 (temporary name, then rename).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    write_atomically(path, bytes, 0o600)
}

/// Writes a public file with mode 0644.
pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    write_atomically(path, bytes, 0o644)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(AgentError::io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(AgentError::io(&tmp))?;
    fs::rename(&tmp, path).map_err(AgentError::io(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_once_kept_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let nk = NodeKey::load_or_create(dir.path()).unwrap();
        assert!(nk.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let mode = fs::metadata(dir.path().join(NK_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(nk.public_pem(), again.public_pem());
        // The public key is a 2048-bit RSA SubjectPublicKeyInfo.
        let key = cairn_core::crypto::spki::from_pem(nk.public_pem()).unwrap();
        assert!(matches!(key, cairn_core::tpm::PublicKey::Rsa { ref n, .. } if n.len() == 256));

        let ip = IpAddr::from([127, 0, 0, 1]);
        let tls = MtlsIdentity::load_or_create(dir.path(), "agent-1", ip).unwrap();
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let mode = fs::metadata(dir.path().join(MTLS_KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(MtlsIdentity::load_or_create(dir.path(), "other", ip).unwrap().cert_pem, tls.cert_pem);
    }
}
