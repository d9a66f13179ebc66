//! Running `qemu-img` (Debian's `qemu-utils`) for `cairn image`: what it is asked, how paths are
//! written into its option strings, and what its failures mean.
//!
//! A LUKS secret reaches qemu-img only as a `secret` object reading a file (`file=…`), never on
//! the command line: command lines are visible to every user of the machine. In qemu's option
//! strings a comma separates options, so a comma in a path is written twice ([`opt_path`]).
//! `qemu-img info` opens images without reading their data, so it cannot tell whether a secret is
//! right; [`check`] (`qemu-img check`) unlocks the LUKS key slot and reads the qcow2 metadata.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, Context};

/// The id of the `secret` object every call names.
pub const SECRET_ID: &str = "cairn-image-secret";

/// What `qemu-img` says when a secret unlocks no LUKS key slot.
const WRONG_SECRET: &str = "cannot unlock any keyslot";

/// What `qemu-img info` tells of an image without its secret.
#[derive(Debug)]
pub struct Info {
    /// The format qemu-img detected or was told (`raw`, `qcow2`, …).
    pub format: String,
    /// The size the guest sees, in bytes.
    pub virtual_size: u64,
    /// Whether the image is encrypted.
    pub encrypted: bool,
    /// The LUKS header's UUID, for an encrypted qcow2.
    pub luks_uuid: Option<String>,
}

/// `path` for a qemu option string: UTF-8, commas doubled.
pub fn opt_path(path: &Path) -> anyhow::Result<String> {
    let Some(s) = path.to_str() else { bail!("{}: qemu-img needs a UTF-8 path", path.display()) };
    Ok(s.replace(',', ",,"))
}

/// `--object` text: a secret read from `file`.
pub fn secret_object(file: &Path) -> anyhow::Result<String> {
    Ok(format!("secret,id={SECRET_ID},file={},format=raw", opt_path(file)?))
}

/// `--image-opts` text: an encrypted qcow2 at `image` opened with the secret object.
pub fn image_opts(image: &Path) -> anyhow::Result<String> {
    Ok(format!("driver=qcow2,file.filename={},encrypt.key-secret={SECRET_ID}", opt_path(image)?))
}

/// Runs `qemu-img` with `args`, returning its output whatever its exit status.
fn run(args: &[&std::ffi::OsStr]) -> anyhow::Result<Output> {
    match Command::new("qemu-img").args(args).output() {
        Ok(out) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("qemu-img is not installed: install Debian's qemu-utils (apt-get install qemu-utils)")
        }
        Err(e) => Err(e).context("cannot run qemu-img"),
    }
}

/// qemu-img's complaint, one line per message.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().replace("qemu-img: ", "")
}

/// The error of a failed call on `image`: a wrong secret said plainly, else qemu-img's words.
fn failure(out: &Output, what: &str, image: &Path) -> anyhow::Error {
    let why = stderr(out);
    if why.contains(WRONG_SECRET) {
        anyhow::anyhow!("the secret does not open {}", image.display())
    } else {
        anyhow::anyhow!("{what} {}: {why}", image.display())
    }
}

/// `qemu-img info` of `path`, format detected unless `format` is given; reads no data.
pub fn info(path: &Path, format: Option<&str>) -> anyhow::Result<Info> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["info".as_ref(), "--output=json".as_ref()];
    if let Some(f) = format {
        args.extend([std::ffi::OsStr::new("-f"), std::ffi::OsStr::new(f)]);
    }
    args.extend([std::ffi::OsStr::new("--"), path.as_os_str()]);
    let out = run(&args)?;
    if !out.status.success() {
        return Err(failure(&out, "qemu-img cannot read", path));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("qemu-img info: unexpected output")?;
    Ok(Info {
        format: v["format"].as_str().context("qemu-img info: no format")?.to_owned(),
        virtual_size: v["virtual-size"].as_u64().context("qemu-img info: no virtual size")?,
        encrypted: v["encrypted"].as_bool().unwrap_or(false),
        luks_uuid: v["format-specific"]["data"]["encrypt"]["uuid"].as_str().map(str::to_owned),
    })
}

/// Makes `output`, a LUKS-encrypted qcow2 holding what `input` holds, with the secret in
/// `secret_file`.
pub fn encrypt(input: &Path, output: &Path, secret_file: &Path) -> anyhow::Result<()> {
    let object = secret_object(secret_file)?;
    let options = format!("encrypt.format=luks,encrypt.key-secret={SECRET_ID}");
    let args = [
        "convert".as_ref(),
        "-O".as_ref(),
        "qcow2".as_ref(),
        "--object".as_ref(),
        object.as_ref(),
        "-o".as_ref(),
        options.as_ref(),
        "--".as_ref(),
        input.as_os_str(),
        output.as_os_str(),
    ];
    let out = run(&args)?;
    if !out.status.success() {
        return Err(failure(&out, "qemu-img cannot encrypt", input));
    }
    Ok(())
}

/// Opens `image` with the secret in `secret_file` and checks its qcow2 metadata.
pub fn check(image: &Path, secret_file: &Path) -> anyhow::Result<()> {
    let (object, opts) = (secret_object(secret_file)?, image_opts(image)?);
    let args = ["check".as_ref(), "--object".as_ref(), object.as_ref(), "--image-opts".as_ref(), opts.as_ref()];
    let out = run(&args)?;
    match out.status.code() {
        Some(0) => Ok(()),
        // Leaked clusters waste space but lose no data.
        Some(3) => {
            eprintln!("warning: {}: {}", image.display(), String::from_utf8_lossy(&out.stdout).trim());
            Ok(())
        }
        Some(2) => bail!("{} is corrupt: {}", image.display(), String::from_utf8_lossy(&out.stdout).trim()),
        _ => Err(failure(&out, "qemu-img cannot open", image)),
    }
}

/// Decrypts `image` into `raw`, an existing file of the image's virtual size.
pub fn decrypt(image: &Path, secret_file: &Path, raw: &Path) -> anyhow::Result<()> {
    let (object, opts) = (secret_object(secret_file)?, image_opts(image)?);
    let args = [
        "convert".as_ref(),
        "-n".as_ref(),
        "--object".as_ref(),
        object.as_ref(),
        "--image-opts".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        "--".as_ref(),
        opts.as_ref(),
        raw.as_os_str(),
    ];
    let out = run(&args)?;
    if !out.status.success() {
        return Err(failure(&out, "qemu-img cannot decrypt", image));
    }
    Ok(())
}
