//! `cairn image`: trusted VM launch. A VM disk image is encrypted at rest (a LUKS-encrypted
//! qcow2) and its secret travels only as a bootstrap payload, which the verifier releases to a
//! host after the host attested.
//!
//! - `encrypt IN OUT.qcow2` (the tenant): a fresh random secret (32 bytes, hex) encrypts a copy
//!   of IN; the secret goes into a payload zip (`image-secret`, mode 0600, with `image.txt`
//!   saying which image it opens and how) for `cairn node add UUID --payload`. The secret reaches
//!   qemu-img through a 0600 temporary file that is removed afterwards; it is never on a command
//!   line or printed, and the payload zip (0600) is its only copy.
//! - `open IMAGE` (the host, after the release): with the released `image-secret` (by default
//!   where the agent unpacks it), check that it opens the image, decrypt it to a raw file, or
//!   print the qemu-system arguments that start the VM from the encrypted image.
//!
//! qemu-img does the cryptography (LUKS: AES-256-XTS, PBKDF2 over the secret); see
//! [`super::qemu_img`] for how it is called.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::payload_zip::{self, Entry};
use super::qemu_img::{self, SECRET_ID};

/// The secret's name in the payload, and so in the agent's `secure/unzipped/`.
pub const SECRET_FILE: &str = "image-secret";
/// The note in the payload saying which image the secret opens.
pub const NOTE_FILE: &str = "image.txt";
/// Where a released secret is on a host whose agent has the default state directory.
pub const RELEASED_SECRET: &str = "/var/lib/cairn/agent/secure/unzipped/image-secret";

/// Encrypted VM images.
#[derive(Subcommand)]
#[command(after_help = "\
Trusted VM launch:
    cairn image encrypt vm.raw vm.qcow2                     # tenant: vm.qcow2 + vm.qcow2.payload.zip
    cairn node add d432fbb3-… --payload vm.qcow2.payload.zip  # released once the host attests
    cairn image open vm.qcow2 --check                       # host: the released secret opens it
    eval \"qemu-system-x86_64 -m 2G $(cairn image open vm.qcow2 --print-qemu-args)\"")]
pub enum ImageCommand {
    /// Encrypt a VM disk image (any format qemu-img reads) into a LUKS-encrypted qcow2, and write
    /// the payload zip holding its secret for `cairn node add --payload`.
    Encrypt {
        /// The image to encrypt (left as it is).
        input: PathBuf,
        /// The encrypted qcow2 to write (must not exist).
        output: PathBuf,
        /// The payload zip to write (must not exist) [default: OUTPUT.payload.zip].
        #[arg(long, value_name = "FILE")]
        payload: Option<PathBuf>,
    },
    /// Open an encrypted image with its released secret: check it, decrypt it, or start a VM from it.
    Open {
        /// The encrypted qcow2.
        image: PathBuf,
        /// The released secret (`image-secret` of the payload).
        #[arg(long, value_name = "FILE", default_value = RELEASED_SECRET)]
        secret_file: PathBuf,
        #[command(flatten)]
        action: OpenAction,
    },
}

/// What `open` does with the image.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct OpenAction {
    /// Check that the secret opens the image (LUKS key slot unlocked, qcow2 metadata consistent).
    #[arg(long)]
    check: bool,
    /// Decrypt the image into a new raw file (mode 0600).
    #[arg(long, value_name = "RAW")]
    to: Option<PathBuf>,
    /// Check, then print the qemu-system arguments (`-object secret,… -drive …`) that start a VM
    /// from the encrypted image with the secret.
    #[arg(long)]
    print_qemu_args: bool,
}

impl ImageCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ImageCommand::Encrypt { input, output, payload } => {
                let payload = payload.unwrap_or_else(|| {
                    let mut p = output.clone().into_os_string();
                    p.push(".payload.zip");
                    PathBuf::from(p)
                });
                encrypt(&input, &output, &payload)?;
            }
            ImageCommand::Open { image, secret_file, action } => open(&image, &secret_file, &action)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A fresh secret: 32 random bytes as 64 hex characters (the LUKS passphrase, byte for byte).
fn fresh_secret() -> anyhow::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_ref())))
}

fn refuse_existing(path: &Path, what: &str) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        bail!("{what} {} exists already: remove it or choose another name", path.display());
    }
    Ok(())
}

fn encrypt(input: &Path, output: &Path, payload: &Path) -> anyhow::Result<()> {
    refuse_existing(output, "the encrypted image")?;
    refuse_existing(payload, "the payload")?;
    let source = qemu_img::info(input, None)?;
    if source.encrypted {
        bail!("{} is encrypted already: decrypt it first (`cairn image open … --to RAW`)", input.display());
    }
    println!("{}: {}, {} virtual", input.display(), source.format, size(source.virtual_size));
    let secret = fresh_secret()?;
    // 0600, removed when dropped (on every return below).
    let secret_file =
        tempfile::Builder::new().prefix(".cairn-image-secret-").tempfile().context("cannot create a temporary file")?;
    let mut f = secret_file.as_file();
    f.write_all(secret.as_bytes()).and_then(|()| f.sync_all()).context("cannot write the secret")?;
    println!("encrypting into {} (qcow2, LUKS AES-256-XTS, a fresh random secret)…", output.display());
    let made = qemu_img::encrypt(input, output, secret_file.path()).and_then(|()| {
        qemu_img::check(output, secret_file.path()).context("the new image does not open with its secret")
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(output);
        return Err(e);
    }
    drop(secret_file);
    let made = qemu_img::info(output, Some("qcow2"))?;
    println!("wrote {}: it opens with its secret", output.display());
    let note = note(input, &source, output, &made);
    let zipped = payload_zip::zip(&[
        Entry { name: NOTE_FILE.into(), mode: 0o644, data: Some(Zeroizing::new(note.into_bytes())) },
        Entry { name: SECRET_FILE.into(), mode: 0o600, data: Some(Zeroizing::new(secret.as_bytes().to_vec())) },
    ])?;
    write_new(payload, &zipped)?;
    println!("wrote {} ({SECRET_FILE} + {NOTE_FILE}, mode 0600): the only copy of the secret", payload.display());
    println!("next: cairn node add UUID --payload {}", payload.display());
    Ok(())
}

/// `image.txt`: which image the secret opens and how to open it on the host.
fn note(input: &Path, source: &qemu_img::Info, output: &Path, made: &qemu_img::Info) -> String {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let from = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(
        "Cairn encrypted VM image\n\
         image:       {name} (qcow2, LUKS AES-256-XTS, {} bytes virtual)\n\
         LUKS UUID:   {}\n\
         made from:   {from} ({})\n\
         secret:      {SECRET_FILE}, beside this file: the LUKS passphrase, exactly the file's bytes\n\
         \n\
         On the host, after the node attested and this payload was released:\n\
         \x20   cairn image open {name} --check                # the secret opens it\n\
         \x20   cairn image open {name} --print-qemu-args      # arguments for qemu-system\n\
         \x20   cairn image open {name} --to disk.raw          # a decrypted copy\n\
         (--secret-file defaults to {RELEASED_SECRET})\n",
        made.virtual_size,
        made.luks_uuid.as_deref().unwrap_or("-"),
        source.format,
    )
}

/// Writes a new 0600 file.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

fn open(image: &Path, secret_file: &Path, action: &OpenAction) -> anyhow::Result<()> {
    match std::fs::metadata(secret_file) {
        Ok(m) if m.is_file() && m.len() > 0 => {}
        Ok(_) => bail!("the secret file {} is empty or not a file", secret_file.display()),
        Err(e) => bail!(
            "cannot read the secret file {} ({e}): was the payload released to this node \
             (`cairn node add … --payload`)?",
            secret_file.display()
        ),
    }
    let info = qemu_img::info(image, Some("qcow2"))?;
    if !info.encrypted {
        bail!("{} is not encrypted", image.display());
    }
    if let Some(raw) = &action.to {
        refuse_existing(raw, "the raw file")?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(raw)
            .with_context(|| format!("cannot create {}", raw.display()))?;
        let done = f
            .set_len(info.virtual_size)
            .with_context(|| format!("cannot size {}", raw.display()))
            .and_then(|()| qemu_img::decrypt(image, secret_file, raw));
        if let Err(e) = done {
            let _ = std::fs::remove_file(raw);
            return Err(e);
        }
        println!("decrypted {} into {} ({} bytes, mode 0600)", image.display(), raw.display(), info.virtual_size);
        return Ok(());
    }
    qemu_img::check(image, secret_file)?;
    if action.print_qemu_args {
        println!("{}", qemu_args(image, secret_file)?.join(" "));
    } else {
        let virtual_size = size(info.virtual_size);
        println!("{}: the secret opens it ({virtual_size} virtual, qcow2 metadata consistent)", image.display());
    }
    Ok(())
}

/// The qemu-system arguments for a VM whose disk is `image`, shell-quoted, with absolute paths.
fn qemu_args(image: &Path, secret_file: &Path) -> anyhow::Result<Vec<String>> {
    let image = std::fs::canonicalize(image).with_context(|| format!("cannot resolve {}", image.display()))?;
    let secret =
        std::fs::canonicalize(secret_file).with_context(|| format!("cannot resolve {}", secret_file.display()))?;
    let drive = format!("file={},format=qcow2,encrypt.key-secret={SECRET_ID}", qemu_img::opt_path(&image)?);
    Ok(vec!["-object".into(), shell_word(&qemu_img::secret_object(&secret)?), "-drive".into(), shell_word(&drive)])
}

/// `s` as one shell word: as it is when it holds only safe characters, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.,/=:+@%".contains(c)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A byte count for people.
fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_escaped_for_qemu_and_quoted_for_the_shell() {
        assert_eq!(qemu_img::opt_path(Path::new("/vm/a,b.qcow2")).unwrap(), "/vm/a,,b.qcow2");
        assert_eq!(shell_word("file=/vm/a.qcow2,format=qcow2"), "file=/vm/a.qcow2,format=qcow2");
        assert_eq!(shell_word("file=/vm/my disk's.qcow2"), r"'file=/vm/my disk'\''s.qcow2'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn secrets_are_fresh_hex() {
        let (a, b) = (fresh_secret().unwrap(), fresh_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(*a, *b);
    }
}
