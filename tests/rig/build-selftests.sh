#!/bin/bash
# Build Linux's own KVM selftests for guest_memfd and private memory from
# the rig kernel's source tree (kernel-patches/build.sh keeps it in
# $GM_CACHE/kernel/build-<kernel key>), for tests/rig/kvm_selftests.py to
# run inside the rig.  Only the tests named below are built, with ccache,
# against the tree's own uapi headers (installed into a folder of ours),
# into $GM_CACHE/kernel/selftests-<key>/, where the key covers the kernel
# key and this script: an unchanged key is never rebuilt.  Prints that
# folder on success.  --print-dir prints it without building.  --arch
# arm64 builds the arm64 ones (static, with Debian's cross compiler) from
# the arm64 rig kernel's tree, into $GM_CACHE/kernel/arm64-selftests-<key>/.
#
#   tests/rig/build-selftests.sh [--arch x86|arm64] [--print-dir]
set -euo pipefail
. "$(dirname "$0")/../../scripts/common.sh"

arch=x86
print=
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) arch=${2:-}; shift 2 || gm_die "--arch needs x86 or arm64" ;;
    --print-dir) print=1; shift ;;
    *) gm_die "unknown argument $1" ;;
    esac
done

# As named in tools/testing/selftests/kvm/Makefile.kvm (x86 list), the
# ones about guest_memfd, memory attributes and private memory, and the
# kernel series' own (kernel-patches/gmem-in-place, sw-intent-bit,
# gmem-memcg).
case "$arch" in
x86) TESTS=(guest_memfd_test
            guest_memfd_memcg_test
            x86/private_mem_conversions_test
            x86/private_mem_kvm_exits_test
            x86/gmem_in_place_conversion_test
            x86/sw_protected_intent_bit_test
            set_memory_region_test
            pre_fault_memory_test)
     prefix= cc="ccache gcc" cross=() ;;
# arm64's list (Makefile.kvm) has no private-memory tests: arm64 KVM has
# no VM type with private memory in 7.2.
arm64) TESTS=(guest_memfd_test
              guest_memfd_memcg_test
              set_memory_region_test)
       prefix=arm64- cc="ccache aarch64-linux-gnu-gcc -static"
       cross=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) ;;
*) gm_die "--arch $arch: x86 or arm64" ;;
esac

kkey=$("$GM_ROOT/kernel-patches/build.sh" --arch "$arch" --print-key)
key=$(gm_key "$kkey")
kroot=$GM_CACHE/kernel
out=$kroot/${prefix}selftests-$key
if [ -n "$print" ] || [ -d "$out" ]; then
    echo "$out"
    exit 0
fi

tree=$kroot/${prefix}build-$kkey
if ! [ -f "$tree/.gm-unpacked" ]; then
    gm_log "no kernel tree at $tree: building the rig kernel first"
    "$GM_ROOT/kernel-patches/build.sh" --arch "$arch" >/dev/null
    [ -f "$tree/.gm-unpacked" ] ||
        gm_die "kernel-patches/build.sh found its kernel cached but the source tree
  $tree is gone: remove $kroot/$prefix$kkey and run kernel-patches/build.sh again."
fi

# Called from make (make check), the outer make's flags and jobserver
# must not reach the kernel's makefiles.
unset MAKEFLAGS MAKELEVEL MFLAGS
log=$kroot/${prefix}selftests-$key.log
stage=$out.tmp
rm -rf "$stage"
mkdir -p "$stage"
: >"$log"
fail() { tail -30 "$log" >&2; gm_die "$1 (log: $log)"; }

# The uapi headers: "make headers" in the (configured) tree, copied into
# a folder of ours that the selftests then use in place of the tree's
# (headers_install would need rsync).  The same flags as build.sh, so
# that kbuild sees no changed command and rebuilds nothing of the kernel's.
gm_log "kernel uapi headers"
kcc="ccache ${cross[*]:+aarch64-linux-gnu-}gcc"
make -C "$tree" -s ${cross[@]+"${cross[@]}"} CC="$kcc" HOSTCC="ccache gcc" headers \
    >>"$log" 2>&1 ||
    fail "make headers failed in $tree"
mkdir -p "$stage/usr"
cp -r "$tree/usr/include" "$stage/usr/"

gm_log "building ${TESTS[*]}"
make -C "$tree/tools/testing/selftests/kvm" -j2 ${cross[@]+"${cross[@]}"} CC="$cc" \
    OUTPUT="$stage/obj" LINUX_HDR_PATH="$stage/usr/include/" \
    KHDR_INCLUDES="-isystem $stage/usr/include" \
    "${TESTS[@]/#/$stage/obj/}" >>"$log" 2>&1 || fail "the KVM selftests did not build"

mkdir -p "$stage/bin"
for t in "${TESTS[@]}"; do
    install -D -m 0755 "$stage/obj/$t" "$stage/bin/$t"
done
mv "$stage/bin" "$out"
rm -rf "$stage"
for old in "$kroot"/"$prefix"selftests-*; do
    case "$old" in "$out"|"$log") ;; *) rm -rf "$old" ;; esac
done
echo "$out"
