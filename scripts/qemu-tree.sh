#!/bin/bash
# Fetch QEMU's pinned Debian source package, check it, unpack it with
# Debian's patches as a git repository (one commit, tagged "debian"), apply
# patches/qemu/*.patch in order with `git am` (one commit per hook, so that
# `git log` and `git blame` in build/qemu-src say which hook a line belongs
# to; scripts/qemu-hooks.sh writes edited hooks back) and link the overlay
# in.  The tree is only unpacked again when the pins or the patches change,
# so incremental builds keep their timestamps.
set -euo pipefail
. "$(dirname "$0")/common.sh"

dl=$GM_CACHE/dl
mkdir -p "$dl"

verify() {
    local f=$1 want=$2 got
    [ -f "$dl/$f" ] || return 1
    got=$(sha256sum "$dl/$f" | cut -d' ' -f1)
    [ "$got" = "$want" ]
}

all_verified() {
    verify qemu_10.2.2+ds-1.dsc "$QEMU_SHA256_DSC" &&
    verify qemu_10.2.2+ds.orig.tar.xz "$QEMU_SHA256_ORIG" &&
    verify qemu_10.2.2+ds-1.debian.tar.xz "$QEMU_SHA256_DEBIAN"
}

if ! all_verified; then
    gm_log "downloading QEMU source package $QEMU_SRC_VERSION"
    (cd "$dl" && rm -f $QEMU_FILES &&
     apt-get source -q --download-only "qemu=$QEMU_SRC_VERSION" >"$dl/apt.log" 2>&1) ||
        gm_die "apt-get source qemu=$QEMU_SRC_VERSION failed (see $dl/apt.log).
  Run scripts/setup-deps.sh first (it adds the deb-src line for sid), and
  check that Debian's package registry is reachable."
    all_verified || gm_die "sha256 of the QEMU source package does not match
  configs/pins.sh.  The download in $dl is not the pinned one: delete it and
  run again; if it still differs, the registry serves another build of
  $QEMU_SRC_VERSION and the pins must be reviewed before use."
fi

# The tree is unpacked again when this key changes: the pins, the patches,
# or this script.
key=$(gm_key "$GM_ROOT/configs/pins.sh" "$GM_ROOT"/patches/qemu/*.patch)
# derive PATTERN FROM TO: the device set FROM less the lines that match
# PATTERN, written to TO only when that changes it (meson reads TO: a new
# file would make every build reconfigure).
derive() {
    grep -v -E "$1" "$2" >"$3.tmp"
    if cmp -s "$3.tmp" "$3"; then rm -f "$3.tmp"; else mv "$3.tmp" "$3"; fi
}
# Link the overlay in (every run: cheap, and picks up new headers).
link_overlay() {
    local h rel
    # QEMU's meson.build picks up overlay/meson.build (patch 0001).
    ln -sfn "$GM_ROOT" "$QEMU_SRC/overlay"
    ln -sfn "$GM_ROOT/configs/x86_64-devices.mak" \
        "$QEMU_SRC/configs/devices/x86_64-softmmu/gmem.mak"
    ln -sfn "$GM_ROOT/configs/aarch64-devices.mak" \
        "$QEMU_SRC/configs/devices/aarch64-softmmu/gmem.mak"
    # The aarch64 devices for arm64 hosts (KVM only, no virtfs)
    derive '^CONFIG_VIRTIO_9P=' "$GM_ROOT/configs/aarch64-devices.mak" \
        "$QEMU_SRC/configs/devices/aarch64-softmmu/gmem-kvm.mak"
    # The same devices for a build without KVM: less what needs KVM
    derive '^CONFIG_(SEV|TDX)=' "$GM_ROOT/configs/x86_64-devices.mak" \
        "$QEMU_SRC/configs/devices/x86_64-softmmu/gmem-nokvm.mak"
    # The overlay's headers, where QEMU's code expects them: include/ for
    # the generic ones, target/ for what a target's own code includes.
    (cd "$GM_ROOT" && find include target -name '*.h') | while read -r h; do
        [ -e "$QEMU_SRC/$h" ] && [ ! -L "$QEMU_SRC/$h" ] &&
            gm_die "overlay header $h would replace QEMU's own"
        ln -sfn "$GM_ROOT/$h" "$QEMU_SRC/$h"
        echo "/$h"
    done >"$QEMU_SRC/.git/info/exclude.overlay"
    # None of it is QEMU's: keep it out of the tree's git status.
    { printf '%s\n' /.gm-key /overlay /configs/devices/x86_64-softmmu/gmem.mak \
          /configs/devices/x86_64-softmmu/gmem-nokvm.mak \
          /configs/devices/aarch64-softmmu/gmem.mak \
          /configs/devices/aarch64-softmmu/gmem-kvm.mak
      cat "$QEMU_SRC/.git/info/exclude.overlay"; } >"$QEMU_SRC/.git/info/exclude"
}

if [ -f "$QEMU_SRC/.gm-key" ] && [ "$(cat "$QEMU_SRC/.gm-key")" = "$key" ]; then
    link_overlay
    exit 0
fi

gm_log "unpacking $QEMU_SRC_DIR with Debian's patches"
mkdir -p "$GM_BUILD"
rm -rf "$QEMU_SRC" "$GM_BUILD/$QEMU_SRC_DIR" "$QEMU_BUILD"
(cd "$GM_BUILD" && dpkg-source -q -x "$dl/qemu_10.2.2+ds-1.dsc" >/dev/null 2>&1) ||
    gm_die "dpkg-source could not unpack $dl/qemu_10.2.2+ds-1.dsc"
mv "$GM_BUILD/$QEMU_SRC_DIR" "$QEMU_SRC"

# The committer of the tree's commits (each hook keeps its own author).
git_tree() {
    git -C "$QEMU_SRC" -c user.name=qemu-tree.sh -c user.email=qemu-tree@localhost \
        -c advice.detachedHead=false "$@"
}
git_tree init -q
git_tree add -A -f .
git_tree commit -q -m "QEMU $QEMU_SRC_VERSION, Debian's source package with its patches"
git_tree tag debian
for p in "$GM_ROOT"/patches/qemu/*.patch; do
    [ -e "$p" ] || continue
    gm_log "applying $(basename "$p")"
    if ! git_tree am -q --whitespace=nowarn "$p" >"$GM_BUILD/qemu-tree-am.log" 2>&1; then
        git_tree am --abort >/dev/null 2>&1 || true
        cat "$GM_BUILD/qemu-tree-am.log" >&2
        gm_die "$(basename "$p") does not apply to $QEMU_SRC_DIR"
    fi
done

link_overlay
echo "$key" >"$QEMU_SRC/.gm-key"
