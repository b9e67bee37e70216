#!/bin/bash
# The Linux test guest's initramfs: busybox-static, init and the writer,
# into build/guest/linux-initramfs.cpio.gz.  The kernel is the rig's
# (kernel-patches/build.sh).
set -euo pipefail
. "$(dirname "$0")/../../../scripts/common.sh"

here=$GM_ROOT/tests/guest/linux
out=$GM_BUILD/guest/linux-initramfs.cpio.gz
key=$(gm_key "$here/init" "$here/writer.c" /bin/busybox)
if gm_built "$out" "$key"; then
    echo "$out"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/proc" "$tmp/dev"
cp /bin/busybox "$tmp/bin/busybox"
install -m 0755 "$here/init" "$tmp/init"
cc -static -O2 -Wall -Werror -o "$tmp/writer" "$here/writer.c"
mkdir -p "$(dirname "$out")"
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -9) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$key" >"$out.key"
echo "$out"
