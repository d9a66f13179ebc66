-- A reference database: which package version installs a file with a given digest, and what the
-- update feed says about each package. Its own file, separate from a service's store.

-- One row per package version added (from a .deb or a root file system's dpkg database).
CREATE TABLE ref_packages (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    arch TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL,                 -- the .deb file or root file system it was read from
    UNIQUE (name, version, arch)
);

-- digest → (package, path): looked up by (alg, digest) on every attestation, so it is the key.
-- alg is the name cairn_core::HashAlg gives (sha1, sha256, sm3_256).
CREATE TABLE ref_files (
    alg TEXT NOT NULL,
    digest BLOB NOT NULL,
    package_id INTEGER NOT NULL REFERENCES ref_packages (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (alg, digest, package_id, path)
) WITHOUT ROWID;
CREATE INDEX ref_files_by_package ON ref_files (package_id);

-- The update feed: newest version per package, and the versions that fix a security issue.
CREATE TABLE feed_packages (
    package TEXT PRIMARY KEY,
    newest TEXT
) WITHOUT ROWID;
CREATE TABLE feed_security (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (package, version)
) WITHOUT ROWID;
