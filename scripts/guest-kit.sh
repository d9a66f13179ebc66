#!/usr/bin/env bash
# Fetches (once) what a test needs to boot a real Linux guest under QEMU: Debian's cloud kernel, the
# virtio network modules it loads from its initramfs, and a static busybox for the guest's init.
#
#   scripts/guest-kit.sh [KIT_DIR]      (default: target/guest-kit)
#
# Writes KIT_DIR/vmlinuz, KIT_DIR/modules/*.ko (in load order, listed in KIT_DIR/modules/order),
# KIT_DIR/busybox and KIT_DIR/kernel-version. Packages come from the configured apt sources
# (`apt-get download`, no installation). Idempotent: a complete kit is left alone. Exit 0 = ready.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="${1:-$ROOT/target/guest-kit}"
# Load order: each module after the ones it depends on.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)

ready() {
    [[ -s "$KIT/vmlinuz" && -x "$KIT/busybox" && -s "$KIT/modules/order" ]]
}
if ready; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The meta package names the current kernel package.
kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[[ -n "$kpkg" ]] || { echo "guest-kit: no linux-image-cloud-amd64 in the apt lists (run apt-get update)" >&2; exit 1; }
apt-get download -q "$kpkg" busybox-static >/dev/null 2>&1 ||
    { echo "guest-kit: apt-get download $kpkg busybox-static failed" >&2; exit 1; }
dpkg-deb -x ./"$kpkg"_*.deb k
dpkg-deb -x ./busybox-static_*.deb b

rm -rf "$KIT"
mkdir -p "$KIT/modules"
cp k/boot/vmlinuz-* "$KIT/vmlinuz"
basename k/lib/modules/* > "$KIT/kernel-version"
for m in "${MODULES[@]}"; do
    f="$(find k/lib/modules -name "$m.ko" | head -n 1)"
    [[ -n "$f" ]] || { echo "guest-kit: module $m not in $kpkg" >&2; exit 1; }
    cp "$f" "$KIT/modules/"
    echo "$m" >> "$KIT/modules/order"
done
cp b/bin/busybox "$KIT/busybox"
ready || { echo "guest-kit: incomplete kit in $KIT" >&2; exit 1; }
echo "guest-kit: $(cat "$KIT/kernel-version") in $KIT"
