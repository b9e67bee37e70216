#!/bin/bash
# Configure (once) and build qemu-system-x86_64 with the overlay, plus any
# extra ninja targets given as arguments.  Incremental: with nothing
# changed it only runs a no-op ninja.
set -euo pipefail
. "$(dirname "$0")/common.sh"

"$GM_ROOT/scripts/setup-deps.sh"
"$GM_ROOT/scripts/qemu-tree.sh"

config=(
    --cc=cc
    --target-list=x86_64-softmmu
    --without-default-features
    --without-default-devices --with-devices-x86_64=gmem
    --enable-kvm --enable-tcg
    --enable-fdt=system --enable-slirp
    --enable-virtfs --enable-attr --enable-cap-ng
    --enable-numa
    --disable-docs --disable-user --disable-rust --disable-install-blobs
    --disable-download
    --python=/usr/bin/python3
)
key=$(printf '%s\n' "${config[@]}" "$(cat "$QEMU_SRC/.gm-key")" | sha256sum | cut -d' ' -f1)

if ! [ -f "$QEMU_BUILD/.gm-key" ] || [ "$(cat "$QEMU_BUILD/.gm-key")" != "$key" ]; then
    gm_log "configuring QEMU in $QEMU_BUILD"
    rm -rf "$QEMU_BUILD"
    mkdir -p "$QEMU_BUILD"
    (cd "$QEMU_BUILD" && "$QEMU_SRC/configure" "${config[@]}" >configure.log 2>&1) ||
        { tail -30 "$QEMU_BUILD/configure.log" >&2; gm_die "configure failed (log: $QEMU_BUILD/configure.log)"; }
    echo "$key" >"$QEMU_BUILD/.gm-key"
fi

command -v ccache >/dev/null && ccache --max-size=8G >/dev/null
jobs=$(( $(nproc) + 1 ))
gm_log "building qemu-system-x86_64 $*"
ninja -C "$QEMU_BUILD" -j"$jobs" qemu-system-x86_64 "$@" >"$GM_BUILD/ninja.log" 2>&1 ||
    { grep -E "error:|undefined reference|^FAILED" "$GM_BUILD/ninja.log" | head -40 >&2;
      gm_die "build failed (log: $GM_BUILD/ninja.log)"; }
