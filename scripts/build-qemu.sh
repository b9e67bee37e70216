#!/bin/bash
# Configure (once) and build qemu-system-x86_64 and qemu-system-aarch64
# (the arm64 rig runs on it) with the overlay, plus any extra ninja
# targets given as arguments.  Incremental: with nothing changed it only
# runs a no-op ninja.
#   --asan  the same, with AddressSanitizer, in build/qemu-asan (for the
#           tests that look for memory errors; QEMU_ASAN_BIN)
#   --no-kvm  the same, without KVM (TCG only), in build/qemu-nokvm: the
#           backend's type exists in every Linux build (QEMU_NOKVM_BIN)
#   --arm64  qemu-system-aarch64 for arm64 hosts (KVM only, no TCG),
#           cross-built with Debian's cross compiler against Debian's arm64
#           libraries (scripts/arm64-sysroot.sh), in build/qemu-arm64: the
#           QEMU that runs in the arm64 rig (QEMU_ARM64_BIN, printed as
#           the last line)
set -euo pipefail
. "$(dirname "$0")/common.sh"

asan=()
kvm=(--enable-kvm)
devices=gmem
# The sanitizer and no-KVM builds are x86 only: what they test is the same
# code on either target.
targets=(x86_64-softmmu aarch64-softmmu)
if [ "${1:-}" = --asan ]; then
    shift
    asan=(--enable-asan)
    targets=(x86_64-softmmu)
    QEMU_BUILD=$QEMU_ASAN_BUILD
elif [ "${1:-}" = --no-kvm ]; then
    shift
    kvm=(--disable-kvm)
    devices=gmem-nokvm
    targets=(x86_64-softmmu)
    QEMU_BUILD=$QEMU_NOKVM_BUILD
elif [ "${1:-}" = --arm64 ]; then
    shift
    targets=(aarch64-softmmu)
    QEMU_BUILD=$QEMU_ARM64_BUILD
fi
binaries=("${targets[@]/#/qemu-system-}")
binaries=("${binaries[@]%-softmmu}")

"$GM_ROOT/scripts/setup-deps.sh"
"$GM_ROOT/scripts/qemu-tree.sh"

sysroot=
if [ "$QEMU_BUILD" = "$QEMU_ARM64_BUILD" ]; then
    sysroot=$("$GM_ROOT/scripts/arm64-sysroot.sh")
    lib=$sysroot/usr/lib/aarch64-linux-gnu
    # No TCG, so no virtfs either (it needs libattr; the guests in the
    # arm64 rig need no shared folder): the device set is gmem-kvm.mak.
    config=(
        --cross-prefix=aarch64-linux-gnu-
        --target-list=aarch64-softmmu
        --without-default-features
        --without-default-devices --with-devices-aarch64=gmem-kvm
        --enable-kvm --disable-tcg
        --enable-fdt=system --enable-numa
        --extra-cflags="-I$sysroot/usr/include"
        --extra-ldflags="-L$lib -Wl,-rpath-link,$lib:$sysroot/lib/aarch64-linux-gnu"
        --disable-docs --disable-user --disable-rust --disable-install-blobs
        --disable-download
        --python=/usr/bin/python3
    )
    export PKG_CONFIG=$sysroot/pkg-config
else
config=(
    --target-list="$(IFS=,; echo "${targets[*]}")"
    --without-default-features
    --without-default-devices --with-devices-x86_64=$devices
    --with-devices-aarch64=gmem
    "${kvm[@]}" --enable-tcg
    --enable-fdt=system --enable-slirp
    --enable-virtfs --enable-attr --enable-cap-ng
    --enable-numa
    --disable-docs --disable-user --disable-rust --disable-install-blobs
    --disable-download
    --python=/usr/bin/python3
    ${asan[@]+"${asan[@]}"}
)
fi
# Configured again when the options, the tree or this script change (and
# when the packages configure looks for do: scripts/setup-deps.sh).
key=$(gm_key "${config[@]}" "$QEMU_SRC/.gm-key" "$GM_ROOT/scripts/setup-deps.sh" \
      ${sysroot:+"$sysroot/.key"})

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
what=${asan[@]+ with AddressSanitizer}
[ "${kvm[0]}" = --disable-kvm ] && what=" without KVM"
[ "$QEMU_BUILD" = "$QEMU_ARM64_BUILD" ] && what=" for arm64 hosts (cross-built)"
gm_log "building ${binaries[*]}$what $*"
log=$QEMU_BUILD.ninja.log
ninja -C "$QEMU_BUILD" -j"$jobs" "${binaries[@]}" "$@" >"$log" 2>&1 ||
    { grep -E "error:|undefined reference|^FAILED" "$log" | head -40 >&2;
      gm_die "build failed (log: $log)"; }
# QEMU builds without -Werror outside git; the overlay's own code must not
# warn.  ninja only shows warnings for files it compiled in this run, so an
# object that warned is removed to be compiled, and reported, again.
warned=$(grep -E "^\.\./qemu-src/overlay/[^:]+:[0-9]+:[0-9]+: warning:" "$log" || true)
if [ -n "$warned" ]; then
    echo "$warned" >&2
    for src in $(echo "$warned" | cut -d: -f1 | sort -u); do
        find "$QEMU_BUILD" -name "overlay_$(echo "${src#../qemu-src/overlay/}" |
            tr / _).o" -delete
    done
    gm_die "the overlay's code has compiler warnings (above)"
fi

if [ "$QEMU_BUILD" = "$QEMU_ARM64_BUILD" ]; then
    echo "$QEMU_ARM64_BIN"
    exit 0
fi

# QEMU's x86 option ROMs (linuxboot_dma.bin for -kernel, kvmvapic.bin) are
# built by make, not ninja.  SeaBIOS comes from Debian's seabios package.
# QEMU run from its build tree looks for firmware in its data directory
# inside qemu-bundle/ (install_blobs is off, so nothing else puts it there).
make -s -C "$QEMU_BUILD/pc-bios/optionrom" >>"$log" 2>&1 ||
    gm_die "building QEMU's option ROMs failed (log: $log)"
datadir=$QEMU_BUILD/qemu-bundle/usr/local/share/qemu
mkdir -p "$datadir"
for rom in linuxboot_dma.bin linuxboot.bin kvmvapic.bin multiboot_dma.bin pvh.bin; do
    ln -sfn "$QEMU_BUILD/pc-bios/optionrom/$rom" "$datadir/$rom"
done
for fw in bios-256k.bin bios-microvm.bin bios.bin; do
    [ -e "/usr/share/seabios/$fw" ] ||
        gm_die "/usr/share/seabios/$fw is missing: install Debian's seabios package"
    ln -sfn "/usr/share/seabios/$fw" "$datadir/$fw"
done
