#!/bin/bash
# Build the rig's initramfs (busybox-static + tests/rig/init) into
# build/rig/initramfs.cpio.gz; rebuilt only when its inputs change.
set -euo pipefail
. "$(dirname "$0")/../../scripts/common.sh"

out=$GM_BUILD/rig/initramfs.cpio.gz
bb=/bin/busybox
[ -x "$bb" ] && file -L "$bb" | grep -q "statically linked" ||
    gm_die "$bb is not a static busybox: install Debian's busybox-static"
key=$(gm_key "$GM_ROOT/tests/rig/init" "$bb")
if gm_built "$out" "$key"; then
    echo "$out"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/host"
cp "$bb" "$tmp/bin/busybox"
install -m 0755 "$GM_ROOT/tests/rig/init" "$tmp/init"
mkdir -p "$(dirname "$out")"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -9) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$key" >"$out.key"
echo "$out"
