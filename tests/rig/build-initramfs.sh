#!/bin/bash
# Build the rig's initramfs (busybox-static + tests/rig/init) into
# build/rig/initramfs.cpio.gz; rebuilt only when its inputs change.
# --arch arm64: the arm64 rig's (Debian's busybox-static for arm64,
# downloaded once into the cache, + tests/rig/init-arm64) into
# build/rig/initramfs-arm64.cpio.gz.  Prints the file's path.
#
#   tests/rig/build-initramfs.sh [--arch x86|arm64]
set -euo pipefail
. "$(dirname "$0")/../../scripts/common.sh"

case "${1:-} ${2:-}" in
" "|"--arch x86") arch=x86 ;;
"--arch arm64") arch=arm64 ;;
*) gm_die "usage: build-initramfs.sh [--arch x86|arm64]" ;;
esac

if [ "$arch" = x86 ]; then
    out=$GM_BUILD/rig/initramfs.cpio.gz
    bb=/bin/busybox
    init=$GM_ROOT/tests/rig/init
else
    out=$GM_BUILD/rig/initramfs-arm64.cpio.gz
    init=$GM_ROOT/tests/rig/init-arm64
    # Debian's own build, from its registry (dpkg knows arm64:
    # scripts/setup-deps.sh adds the architecture).
    dl=$GM_CACHE/dl/busybox-arm64
    bb=$dl/bin/busybox
    if ! [ -x "$bb" ]; then
        gm_log "downloading Debian's busybox-static for arm64"
        rm -rf "$dl"
        mkdir -p "$dl/deb"
        (cd "$dl/deb" && apt-get download -q busybox-static:arm64 >/dev/null 2>&1) ||
            gm_die "apt-get download busybox-static:arm64 failed: run scripts/setup-deps.sh
  (it adds dpkg's arm64 architecture) and check that the registry is reachable"
        dpkg-deb -x "$dl"/deb/busybox-static_*_arm64.deb "$dl"
    fi
fi
[ -x "$bb" ] && file -L "$bb" | grep -q "statically linked" ||
    gm_die "$bb is not a static busybox: install Debian's busybox-static"
key=$(gm_key "$init" "$bb")
if gm_built "$out" "$key"; then
    echo "$out"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/host"
cp "$bb" "$tmp/bin/busybox"
install -m 0755 "$init" "$tmp/init"
mkdir -p "$(dirname "$out")"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -9) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$key" >"$out.key"
echo "$out"
