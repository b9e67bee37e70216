#!/bin/bash
# Build the rig kernel: Debian's linux-source-7.2 (pinned), with the
# project's kernel series applied and config.fragment merged onto
# tinyconfig.  kernel-patches/series names the series in the order they
# apply; each is a folder of `git format-patch` output whose own `series`
# file lists its patches in order (the cover letter is not applied).  The
# result is cached outside the repository under a key of source version +
# patches + config, so an unchanged kernel is never rebuilt.  Prints the
# bzImage's path as its last line on success.
#
# --arch arm64 builds the arm64 rig's kernel instead, with Debian's cross
# compiler (gcc-aarch64-linux-gnu) and config.arm64.fragment, and prints
# its Image's path.
#
#   kernel-patches/build.sh [--arch x86|arm64] [--print-key | --print-patches]
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"

arch=x86
action=build
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) arch=${2:-}; shift 2 || gm_die "--arch needs x86 or arm64" ;;
    --print-key) action=key; shift ;;
    --print-patches) action=patches; shift ;;
    *) gm_die "unknown argument $1 (usage: build.sh [--arch x86|arm64] [--print-key | --print-patches])" ;;
    esac
done
case "$arch" in
x86) fragment=config.fragment image=arch/x86/boot/bzImage target=bzImage prefix=
     cross=() ;;
arm64) fragment=config.arm64.fragment image=arch/arm64/boot/Image target=Image
       prefix=arm64-
       command -v aarch64-linux-gnu-gcc >/dev/null ||
           gm_die "no aarch64-linux-gnu-gcc: run scripts/setup-deps.sh (it installs
  Debian's gcc-aarch64-linux-gnu)"
       cross=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) ;;
*) gm_die "--arch $arch: x86 or arm64" ;;
esac

LINUX_VERSION=7.2.13-1
LINUX_DEB=linux-source-7.2_${LINUX_VERSION}_all.deb
LINUX_SHA256=30a8c5fc63f9028a62e6d7b3f7f43bee67425dbce2a05fceba83f9b87c92083d

here=$GM_ROOT/kernel-patches
# Every patch of every series, in the order they apply.
patches=()
while read -r s; do
    case "$s" in ''|'#'*) continue ;; esac
    [ -f "$here/$s/series" ] || gm_die "kernel-patches/series names $s, which has no series file"
    while read -r p; do
        case "$p" in ''|'#'*) continue ;; esac
        [ -f "$here/$s/$p" ] || gm_die "$s/series names $p, which is not there"
        patches+=("$here/$s/$p")
    done <"$here/$s/series"
done <"$here/series"
[ "$action" = patches ] && { printf '%s\n' "${patches[@]}"; exit 0; }
# The x86 key is what it was before arm64 existed: its cache stays valid.
key=$(gm_key "$LINUX_VERSION $LINUX_SHA256${prefix:+ $arch}" "$here/$fragment" \
      ${patches[@]+"${patches[@]}"})
[ "$action" = key ] && { echo "$key"; exit 0; }

kroot=$GM_CACHE/kernel
out=$kroot/$prefix$key
if [ -f "$out/${image##*/}" ]; then
    echo "$out/${image##*/}"
    exit 0
fi

dl=$GM_CACHE/dl
mkdir -p "$dl" "$kroot"
if ! [ -f "$dl/$LINUX_DEB" ] ||
   [ "$(sha256sum "$dl/$LINUX_DEB" | cut -d' ' -f1)" != "$LINUX_SHA256" ]; then
    gm_log "downloading linux-source-7.2 $LINUX_VERSION"
    rm -f "$dl/$LINUX_DEB"
    (cd "$dl" && apt-get download -q "linux-source-7.2=$LINUX_VERSION" >"$dl/apt-linux.log" 2>&1) ||
        gm_die "apt-get download linux-source-7.2=$LINUX_VERSION failed (see $dl/apt-linux.log).
  Run scripts/setup-deps.sh first (it adds Debian's sid suite, pinned so
  that nothing is installed from it), and check that the registry is reachable."
    [ "$(sha256sum "$dl/$LINUX_DEB" | cut -d' ' -f1)" = "$LINUX_SHA256" ] ||
        gm_die "sha256 of $LINUX_DEB does not match the pin in $0: delete
  $dl/$LINUX_DEB and run again; if it still differs, review the pin."
fi

# One build tree per key and arch; older ones are removed once this one
# is built.
tree=$kroot/${prefix}build-$key
if ! [ -f "$tree/.gm-unpacked" ]; then
    gm_log "unpacking linux-source-7.2"
    rm -rf "$tree"
    mkdir -p "$tree"
    dpkg-deb --fsys-tarfile "$dl/$LINUX_DEB" |
        tar -xO ./usr/src/linux-source-7.2.tar.xz | tar -xJ -C "$tree" --strip-components=1
    for p in "${patches[@]}"; do
        gm_log "applying ${p#"$here"/}"
        patch -d "$tree" -p1 --batch --forward --quiet <"$p" ||
            gm_die "${p#"$here"/} does not apply to linux-source-7.2 $LINUX_VERSION"
    done
    touch "$tree/.gm-unpacked"
fi

# Reproducible, so that ccache hits across rebuilds.
export KBUILD_BUILD_TIMESTAMP="@0" KBUILD_BUILD_USER=gmem KBUILD_BUILD_HOST=rig
cc="ccache ${cross[*]:+aarch64-linux-gnu-}gcc"
kmake() { make -C "$tree" -s ${cross[@]+"${cross[@]}"} CC="$cc" HOSTCC="ccache gcc" "$@"; }

gm_log "configuring $arch (tinyconfig + $fragment)"
kmake tinyconfig >/dev/null
(cd "$tree" && ${cross[@]+env "${cross[@]}"} ./scripts/kconfig/merge_config.sh -m .config \
     "$here/$fragment" >/dev/null)
kmake olddefconfig >/dev/null
# Every option of the fragment must have survived olddefconfig.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$here/$fragment" | while read -r opt; do
              grep -qx "$opt" "$tree/.config" || echo "$opt"; done)
[ -z "$missing" ] || gm_die "config options not taken (unmet dependencies?): $missing"

log=$kroot/${prefix}build-$key.log
gm_log "building $target (about 6 minutes cold on 2 cores)"
kmake -j"$(( $(nproc) + 1 ))" "$target" >"$log" 2>&1 ||
    { tail -30 "$log" >&2; gm_die "kernel build failed (log: $log)"; }

mkdir -p "$out.tmp"
cp "$tree/$image" "$tree/.config" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
for old in "$kroot"/"$prefix"build-*; do
    case "$old" in "$tree"|"$log") ;; *) rm -rf "$old" ;; esac
done
echo "$out/${image##*/}"
