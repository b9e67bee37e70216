#!/bin/bash
# A rig kernel from one of Debian's own kernel packages, for the tests of
# what QEMU says on older kernels.  Prints two paths: the kernel and an
# initramfs (the rig's own initramfs + the modules the rig needs: KVM,
# virtio-pci and 9p, in dependency order).  Cached in ~/.cache/gmem.
#
#   tests/rig/build-debian-kernel.sh [--arch arm64] PACKAGE VERSION SHA256
#
# --arch arm64: an arm64 kernel package for the arm64 rig
# (tests/rig/init-arm64).
set -euo pipefail
. "$(dirname "$0")/../../scripts/common.sh"

arch=amd64
if [ "${1:-}" = --arch ]; then
    [ "${2:-}" = arm64 ] || gm_die "--arch: only arm64 is another"
    arch=arm64
    shift 2
fi
pkg=$1 version=$2 sha=$3
deb=$GM_CACHE/dl/${pkg}_${version/:/%3a}_$arch.deb
out=$GM_CACHE/debian-kernel/$pkg-$version
if [ $arch = arm64 ]; then
    base=$("$GM_ROOT/tests/rig/build-initramfs.sh" --arch arm64)
else
    base=$("$GM_ROOT/tests/rig/build-initramfs.sh")
fi
key=$(gm_key "$base.key" "$sha")
if gm_built "$out/initramfs.cpio.gz" "$key"; then
    echo "$out/vmlinuz"; echo "$out/initramfs.cpio.gz"; exit 0
fi

mkdir -p "$GM_CACHE/dl"
if ! [ -f "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha" ]; then
    rm -f "$deb"
    (cd "$GM_CACHE/dl" && apt-get download -q "$pkg:$arch=$version" >/dev/null 2>&1) ||
        gm_die "apt-get download $pkg=$version failed: the registry no longer has it?"
    [ "$(sha256sum "$deb" | cut -d' ' -f1)" = "$sha" ] ||
        gm_die "sha256 of $deb does not match the pin"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/deb"
kver=$(ls "$tmp/deb/lib/modules")
mods=$tmp/deb/lib/modules/$kver
find "$mods" -name '*.ko.xz' -exec xz -d {} +

# The modules the rig needs and what they depend on, dependencies first.
declare -A seen
order=()
add() {
    local name=$1 file dep deps
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    # Module names have '_' where file names may have '-' (kvm_amd).
    file=$(find "$mods" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) | head -1)
    [ -n "$file" ] || return 0          # built in
    deps=$(/sbin/modinfo -F depends "$file") || gm_die "modinfo $file failed"
    for dep in ${deps//,/ }; do
        add "$dep"
    done
    order+=("$file")
}
# (arm64's KVM is built in, and so may the others be: those are skipped)
for m in virtio_pci 9pnet_virtio 9p kvm kvm_amd kvm_intel; do
    add "$m"
done

mkdir -p "$tmp/root/lib/modules" "$out"
: >"$tmp/root/lib/modules/load"
for f in "${order[@]}"; do
    cp "$f" "$tmp/root/lib/modules/"
    basename "$f" >>"$tmp/root/lib/modules/load"
done
(cd "$tmp/root" && find . | cpio -o -H newc --quiet | gzip -9) >"$tmp/mods.cpio.gz"
# Two concatenated cpio archives make one initramfs.
cat "$base" "$tmp/mods.cpio.gz" >"$out/initramfs.cpio.gz"
cp "$tmp/deb/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$key" >"$out/initramfs.cpio.gz.key"
echo "$out/vmlinuz"; echo "$out/initramfs.cpio.gz"
