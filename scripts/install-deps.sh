#!/usr/bin/env bash
# Installs what building and testing Cairn needs on Debian, when it is missing.
# Debian packages: swtpm (software TPM), swtpm-tools (swtpm_setup, local EK CA), tpm2-tools
# (the independent peer in tests), libtss2-dev + pkg-config (tss-esapi), openssl (cross-checks),
# python3-venv + python3-gpg (the Keylime interop test's venv: Keylime imports gpg, not on PyPI),
# qemu-utils (qemu-img: `cairn image` encrypts and opens VM disk images), qemu-system-x86 (with --test: real VMs
# whose evidence the host agent batches), xz-utils (the reference
# database tests compress Packages indexes; they also `apt-get download` real packages, which needs the
# package lists: fetched below with --test when apt cannot locate them).
set -euo pipefail

PKGS=(swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config gcc g++ make openssl ca-certificates python3-venv python3-gpg qemu-utils xz-utils)
# The tests also run real QEMU processes and boot a real guest (host-side VM evidence, the VM layer end to end):
# qemu-system-x86, and binutils (objcopy) to put this build's agent into the guest's initramfs.
if [[ "${1:-}" == "--test" ]]; then
    PKGS+=(qemu-system-x86 binutils)
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "Cairn needs these Debian packages: ${missing[*]}" >&2
        echo "Run this as root, or install them first: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "Cairn needs a Rust toolchain (cargo, Rust >= 1.85): see https://rustup.rs" >&2
    exit 1
fi
if [[ "${1:-}" == "--test" ]] && ! apt-get download --print-uris hostname sed grep >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "The reference database tests download Debian packages: run 'apt-get update' as root first" >&2
        exit 1
    fi
    echo "fetching Debian's package lists (the reference database tests download packages)"
    apt-get update -qq
fi
if [[ "${1:-}" == "--test" ]] && ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
