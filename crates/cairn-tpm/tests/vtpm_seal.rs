//! Sealing a vTPM state key to a TPM: round trip, only on the TPM that sealed it, and the stored
//! blobs load with tpm2-tools under the same primary template.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_tpm::vtpm::{SealedKey, MAX_SEALED};
use cairn_tpm::TpmError;
use common::{path_str, TestTpm};

#[test]
fn sealed_key_comes_back_only_from_its_tpm() {
    let t = TestTpm::plain();
    let key: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let sealed = t.open().seal(&key).unwrap();
    assert!(!sealed.private.windows(key.len()).any(|w| w == key.as_slice()), "the key shows in the private blob");
    // A new connection re-creates the same primary.
    assert_eq!(t.open().unseal(&sealed).unwrap().bytes(), key.as_slice());
    assert_eq!(t.open().unseal(&sealed).unwrap().bytes(), key.as_slice());

    let other = TestTpm::plain();
    let err = other.open().unseal(&sealed).unwrap_err();
    assert!(matches!(err, TpmError::SealedElsewhere { .. }), "{err}");
    assert!(err.to_string().contains("sealed by another TPM"), "{err}");

    // Nothing left loaded (three transient object slots, three loaded sessions): more seals and
    // unseals than either fit.
    for _ in 0..4 {
        let again = t.open().seal(&key).unwrap();
        assert_eq!(t.open().unseal(&again).unwrap().bytes(), key.as_slice());
    }

    let mut tpm = t.open();
    assert!(tpm.seal(&[]).is_err());
    assert!(tpm.seal(&[1; MAX_SEALED + 1]).is_err());
    let truncated = SealedKey { public: sealed.public.clone(), private: sealed.private[..10].to_vec() };
    assert!(tpm.unseal(&truncated).is_err());
}

#[test]
fn tpm2_tools_unseal_the_stored_blobs() {
    let t = TestTpm::plain();
    let key = [0x42u8; 32];
    let sealed = t.open().seal(&key).unwrap();
    let public = t.write("statekey.pub", &sealed.public);
    let private = t.write("statekey.priv", &sealed.private);
    let (primary, object) = (t.file("primary.ctx"), t.file("object.ctx"));
    t.tool_ok(
        "tpm2_createprimary",
        &["-C", "o", "-g", "sha256", "-G", "ecc256:null:aes128cfb", "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt", "-c", path_str(&primary)],
    );
    // Without a resource manager tpm2-tools leave objects loaded: flush between steps.
    t.tool_ok("tpm2_flushcontext", &["-t"]);
    t.tool_ok("tpm2_load", &["-C", path_str(&primary), "-u", path_str(&public), "-r", path_str(&private), "-c", path_str(&object)]);
    t.tool_ok("tpm2_flushcontext", &["-t"]);
    let out_file = t.file("unsealed");
    t.tool_ok("tpm2_unseal", &["-c", path_str(&object), "-o", path_str(&out_file)]);
    assert_eq!(std::fs::read(out_file).unwrap(), key);
}
