//! `cairn refdb` on real Debian packages: `apt-get download` fetches them, `dpkg-deb` extracts
//! them and `sha256sum`/`sha1sum` hash their files, so every expectation (names, versions, paths,
//! digests) comes from the packages actually downloaded and independent tools, never from this
//! file. Newer versions are made at test time from the downloaded ones and checked with
//! `dpkg --compare-versions`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "common/debs.rs"]
mod debs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use debs::{download, ima_ng_data, newer, ok, run, s, sha1, Pkg};
use serde_json::{json, Value};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().expect("cairn runs")
}

/// (sha256 hex, path) of the measured files, boot_aggregate first.
fn measurements(files: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut m = vec![("0".repeat(64), "boot_aggregate".to_string())];
    m.extend(files.iter().map(|(d, p)| (d.to_string(), p.to_string())));
    m
}

/// An ASCII IMA log (ima-ng, sha256 file digests, correct template hashes).
fn ascii_log(files: &[(&str, &str)]) -> String {
    measurements(files)
        .iter()
        .map(|(d, p)| format!("10 {} ima-ng sha256:{d} {p}\n", hex::encode(sha1(&ima_ng_data(d, p)))))
        .collect()
}

/// The same log in the binary format the kernel exports.
fn binary_log(files: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (d, p) in measurements(files) {
        let data = ima_ng_data(&d, &p);
        out.extend(10u32.to_le_bytes());
        out.extend(sha1(&data));
        out.extend(6u32.to_le_bytes());
        out.extend(b"ima-ng");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
    }
    out
}

/// Writes a log and returns `cairn refdb level --json` on it (and checks the log replays cleanly).
fn level(dir: &Path, db: &Path, name: &str, log: &[u8]) -> Value {
    let path = dir.join(name);
    std::fs::write(&path, log).unwrap();
    let replay: Value = serde_json::from_str(&ok(&cairn(&["ima", "replay", "--json", s(&path)]), "ima replay")).unwrap();
    assert_eq!(replay["template_hash_mismatches"], json!([]), "{name}: the test wrote a bad log");
    let out = ok(&cairn(&["refdb", "level", "--db", s(db), "--ima-log", s(&path), "--json"]), "refdb level");
    serde_json::from_str(&out).unwrap()
}

fn build(dir: &Path, pkgs: &[Pkg]) -> PathBuf {
    let db = dir.join("ref.sqlite");
    let mut args = vec!["refdb", "build", "--out", s(&db), "--deb"];
    args.extend(pkgs.iter().map(|p| s(&p.deb)));
    let o = cairn(&args);
    ok(&o, "refdb build");
    let err = String::from_utf8_lossy(&o.stderr);
    let total: usize = pkgs.iter().map(|p| p.files.len()).sum();
    assert!(err.contains(&format!("{} packages, {total} files", pkgs.len())), "progress: {err}");
    eprintln!("{err}");
    db
}

#[test]
fn build_and_lookup_give_every_file_of_every_package() {
    let (dir, pkgs) = download();
    let db = build(dir.path(), &pkgs);
    for p in &pkgs {
        for (path, sha256, sha1) in &p.files {
            let expect = format!("{} {} {path}", p.name, p.version);
            let by256 = ok(&cairn(&["refdb", "lookup", sha256, "--db", s(&db)]), "lookup sha256");
            assert!(by256.lines().any(|l| l == expect), "{path}: {by256:?} lacks {expect:?}");
            let by1 = ok(&cairn(&["refdb", "lookup", &format!("sha1:{sha1}"), "--db", s(&db)]), "lookup sha1");
            assert!(by1.lines().any(|l| l == expect), "{path}: {by1:?} lacks {expect:?}");
        }
    }
    let (path, sha256, _) = pkgs[0].program();
    let j: Value = serde_json::from_str(&ok(&cairn(&["refdb", "lookup", sha256, "--db", s(&db), "--json"]), "lookup")).unwrap();
    assert!(j.as_array().unwrap().iter().any(|h| h["package"] == pkgs[0].name.as_str()
        && h["version"] == pkgs[0].version.as_str()
        && h["path"] == path.as_str()
        && h["alg"] == "sha256"));
    // An unknown digest: exit 1, nothing on stdout.
    let o = cairn(&["refdb", "lookup", &"ab".repeat(32), "--db", s(&db)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    // Building again from the same packages replaces, not duplicates.
    build(dir.path(), &pkgs);
    let again = ok(&cairn(&["refdb", "lookup", sha256, "--db", s(&db)]), "lookup");
    assert_eq!(again.lines().filter(|l| l.ends_with(&format!(" {path}"))).count(), 1, "{again}");
}

#[test]
fn repacked_with_zstd_and_gzip_the_same_package_gives_the_same_files() {
    let (dir, pkgs) = download();
    let p = &pkgs[1];
    let tree = dir.path().join("tree");
    run(Command::new("dpkg-deb").args(["-R", s(&p.deb), s(&tree)]), "dpkg-deb -R");
    for z in ["zstd", "gzip", "none"] {
        let deb = dir.path().join(format!("{}-{z}.deb", p.name));
        run(Command::new("dpkg-deb").args([&format!("-Z{z}"), "-b", s(&tree), s(&deb)]), "dpkg-deb -b");
        let db = dir.path().join(format!("{z}.sqlite"));
        ok(&cairn(&["refdb", "build", "--deb", s(&deb), "--out", s(&db), "--sm3"]), "refdb build");
        for (path, sha256, sha1) in &p.files {
            let expect = format!("{} {} {path}", p.name, p.version);
            for d in [sha256.clone(), format!("sha1:{sha1}")] {
                let got = ok(&cairn(&["refdb", "lookup", &d, "--db", s(&db)]), "lookup");
                assert!(got.lines().any(|l| l == expect), "{z}: {path}: {got:?}");
            }
        }
    }
}

#[test]
fn levels_follow_a_json_feed_over_real_packages() {
    let (dir, pkgs) = download();
    let db = build(dir.path(), &pkgs);
    let (hostname, sed, grep) = (&pkgs[0], &pkgs[1], &pkgs[2]);
    let fixed = newer(&sed.version);
    let grep_newest = newer(&grep.version);
    let feed = json!({
        "format": "cairn-update-feed/1",
        "packages": {
            sed.name.as_str(): { "newest": fixed, "security": [fixed] },
            grep.name.as_str(): { "newest": grep_newest },
            // Current versions are no update.
            hostname.name.as_str(): { "newest": hostname.version },
        }
    });
    let feed_path = dir.path().join("feed.json");
    std::fs::write(&feed_path, feed.to_string()).unwrap();
    ok(&cairn(&["refdb", "feed", "import", s(&feed_path), "--db", s(&db)]), "feed import");

    let h = hostname.program();
    let clean = level(dir.path(), &db, "clean", ascii_log(&[(&h.1, &h.0)]).as_bytes());
    assert_eq!(clean["level"], "ima_all_ok", "{clean:#}");
    assert_eq!(clean["reasons"], json!([]));

    let sd = sed.program();
    let g = grep.program();
    let sec = level(dir.path(), &db, "security.bin", &binary_log(&[(&h.1, &h.0), (&sd.1, &sd.0), (&g.1, &g.0)]));
    assert_eq!(sec["level"], "ima_pkg_security_updates", "{sec:#}");
    assert_eq!(
        sec["reasons"][0],
        json!({"kind": "security_update", "package": sed.name, "installed": sed.version, "fixed_in": fixed,
               "newest": fixed, "paths": [sd.0]})
    );
    assert_eq!(sec["reasons"][1]["kind"], "update");

    let upd = level(dir.path(), &db, "update", ascii_log(&[(&h.1, &h.0), (&g.1, &g.0)]).as_bytes());
    assert_eq!(upd["level"], "ima_pkg_not_security_updates", "{upd:#}");
    assert_eq!(
        upd["reasons"],
        json!([{"kind": "update", "package": grep.name, "installed": grep.version, "newest": grep_newest, "paths": [g.0]}])
    );

    // A file no package ships: its content is this test's own, so no database can know it.
    let stranger = dir.path().join("stranger");
    std::fs::write(&stranger, format!("not from any package {:?}", dir.path())).unwrap();
    let digest = run(Command::new("sha256sum").arg(&stranger), "sha256sum");
    let digest = digest.split_whitespace().next().unwrap();
    let unknown = level(dir.path(), &db, "unknown", ascii_log(&[(&sd.1, &sd.0), (digest, "/usr/local/bin/stranger")]).as_bytes());
    assert_eq!(unknown["level"], "ima_digest_not_found", "{unknown:#}");
    assert_eq!(
        unknown["reasons"][0],
        json!({"kind": "digest_not_found", "digest": format!("sha256:{digest}"), "path": "/usr/local/bin/stranger",
               "source": {"list": "ima", "entry": 2}})
    );

    // --min turns a level into an exit code; the text output names the cause.
    let path = dir.path().join("update");
    let o = cairn(&["refdb", "level", "--db", s(&db), "--ima-log", s(&path), "--min", "ima_pkg_not_security_updates"]);
    assert_eq!(o.status.code(), Some(0));
    let o = cairn(&["refdb", "level", "--db", s(&db), "--ima-log", s(&path), "--min", "ima_all_ok"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("level: ima_pkg_not_security_updates") && text.contains(&grep_newest), "{text}");
}

#[test]
fn packages_indexes_of_security_and_updates_suites() {
    let (dir, pkgs) = download();
    let db = build(dir.path(), &pkgs);
    let (hostname, _, grep) = (&pkgs[0], &pkgs[1], &pkgs[2]);
    let stanza = |name: &str, version: &str| {
        format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nDescription: test stanza\n more text\n .\n\n")
    };
    // The security suite, gzip-compressed, its suite told by its name as apt stores it.
    let sec_fix = newer(&hostname.version);
    let index = format!("{}{}", stanza("not-installed-anywhere", "1.0-1"), stanza(&hostname.name, &sec_fix));
    let sec_path = dir.path().join("deb.example_debian-security_dists_stable-security_main_binary-amd64_Packages");
    std::fs::write(&sec_path, index).unwrap();
    run(Command::new("gzip").arg(&sec_path), "gzip");
    let sec_gz = PathBuf::from(format!("{}.gz", sec_path.display()));
    ok(&cairn(&["refdb", "feed", "import", s(&sec_gz), "--db", s(&db)]), "import security index");
    // The updates suite, xz-compressed, named only "Packages": the suite must be given.
    let upd_path = dir.path().join("Packages");
    std::fs::write(&upd_path, stanza(&grep.name, &newer(&grep.version))).unwrap();
    run(Command::new("xz").arg(&upd_path), "xz");
    let upd_xz = dir.path().join("Packages.xz");
    let o = cairn(&["refdb", "feed", "import", s(&upd_xz), "--db", s(&db)]);
    assert_eq!(o.status.code(), Some(2), "a nameless index without --suite is refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--suite"));
    ok(&cairn(&["refdb", "feed", "import", s(&upd_xz), "--db", s(&db), "--suite", "updates"]), "import updates index");

    let h = hostname.program();
    let g = grep.program();
    let r = level(dir.path(), &db, "host", ascii_log(&[(&h.1, &h.0)]).as_bytes());
    assert_eq!(r["level"], "ima_pkg_security_updates", "{r:#}");
    assert_eq!(r["reasons"][0]["fixed_in"], sec_fix.as_str());
    let r = level(dir.path(), &db, "grep", ascii_log(&[(&g.1, &g.0)]).as_bytes());
    assert_eq!(r["level"], "ima_pkg_not_security_updates", "{r:#}");
    // Importing the same index again changes nothing.
    ok(&cairn(&["refdb", "feed", "import", s(&sec_gz), "--db", s(&db)]), "import again");
    let r = level(dir.path(), &db, "host2", ascii_log(&[(&h.1, &h.0)]).as_bytes());
    assert_eq!(r["level"], "ima_pkg_security_updates");
}

#[test]
fn rootfs_build_takes_owners_from_a_real_dpkg_database() {
    let (dir, pkgs) = download();
    // dpkg installs into a fresh root. Packages with maintainer scripts would run them on this
    // machine (there is no shell in the root to chroot into), so only script-free ones go in.
    let mut installable = Vec::new();
    for p in &pkgs {
        let ctrl = dir.path().join(format!("ctrl-{}", p.name));
        run(Command::new("dpkg-deb").args(["-e", s(&p.deb), s(&ctrl)]), "dpkg-deb -e");
        if ["preinst", "postinst", "prerm", "postrm"].iter().all(|f| !ctrl.join(f).exists()) {
            installable.push(p);
        }
    }
    assert!(!installable.is_empty(), "every test package has maintainer scripts now: pick others for this test");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let mut dpkg = Command::new("dpkg");
    dpkg.arg(format!("--root={}", s(&root))).args(["--force-script-chrootless", "--force-depends", "--log=/dev/null", "-i"]);
    dpkg.args(installable.iter().map(|p| s(&p.deb)));
    run(&mut dpkg, "dpkg --root -i");
    // A file dpkg did not install.
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/local.conf"), "local\n").unwrap();

    let db = dir.path().join("rootfs.sqlite");
    let o = cairn(&["refdb", "build", "--rootfs", s(&root), "--out", s(&db)]);
    ok(&o, "refdb build --rootfs");
    for p in &installable {
        for (path, sha256, _) in &p.files {
            let got = ok(&cairn(&["refdb", "lookup", sha256, "--db", s(&db)]), "lookup");
            assert!(got.lines().any(|l| l == format!("{} {} {path}", p.name, p.version)), "{path}: {got}");
        }
    }
    let local = run(Command::new("sha256sum").arg(root.join("etc/local.conf")), "sha256sum");
    let got = ok(&cairn(&["refdb", "lookup", local.split_whitespace().next().unwrap(), "--db", s(&db)]), "lookup");
    assert_eq!(got.trim(), "unknown  /etc/local.conf");
}
