#!/bin/sh
# Run in the arm64 rig (tests/rig/init-arm64) by tests/e2e/test_arm64.py:
# memory-backend-guest-memfd on arm64 KVM, with the qemu-system-aarch64
# cross-built for arm64 (scripts/build-qemu.sh --arm64) and the arm64
# payload (tests/guest/payload-arm64.S).  QEMU runs under the arm64
# dynamic loader of Debian's cross toolchain, with Debian's arm64
# libraries (scripts/arm64-sysroot.sh): the host's root is x86.
#
#   arm64_backend.sh QEMU SYSROOT PAYLOAD KERNEL INITRAMFS
#   arm64_backend.sh --old-kernel QEMU SYSROOT
#
# (the host's paths; KERNEL and INITRAMFS are the arm64 rig's own, booted
# again as a guest on the backend).  --old-kernel: the rig runs a Debian
# kernel older than 6.18, whose arm64 KVM has no guest_memfd: only what
# QEMU says there.
#
# Appends one line per test to $GM_RIG_RESULTS/results.txt in the in-rig
# runner's form ("PASS|FAIL|SKIP name (secs): detail"), and each test's
# QEMU output and serial console beside it.  Busybox sh.
#
# SPDX-License-Identifier: GPL-2.0-or-later
H=$GM_HOST
TESTS="ram_in_guest_memfd numa_two_nodes prealloc errors linux_guest"
if [ "$1" = --old-kernel ]; then
    TESTS=no_guest_memfd
    shift
fi
QEMU=$H$1
SYSROOT=$H$2
PAYLOAD=$H$3
KERNEL=$H$4
INITRAMFS=$H$5
RES=$GM_RIG_RESULTS
out=$RES/results.txt
T=${TMPDIR:-/tmp}/arm64-backend
MiB=1048576
SEED=0x1e3779b97f4a7c15
GMEM=memory-backend-guest-memfd
# The cross toolchain's loader and libc, then the arm64 libraries QEMU links
RUNQ="$H/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 --library-path
$H/usr/aarch64-linux-gnu/lib:$SYSROOT/usr/lib/aarch64-linux-gnu:$SYSROOT/lib/aarch64-linux-gnu
$QEMU"
BASE="-accel kvm -cpu host -nodefaults -display none"
# QEMU's data files would be looked for beside the loader (/proc/self/exe):
# none of these tests needs one.

# The monitor's pipe is opened read-write (fd 3), so that opening it never
# waits for QEMU, and writing to it after QEMU died is no SIGPIPE.
trap '' PIPE

now() { cut -d' ' -f1 /proc/uptime; }
result() {  # STATUS NAME DETAIL
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    echo "$1 backend/$2 (${secs}s): $3" >>"$out"
}
fail() { why=$*; return 1; }

# start NAME ARGS...: QEMU in the background on the payload, its serial
# console in $T/NAME.serial, its monitor on the pipe $T/mon.in (fd 3), its
# output in $RES/NAME.qemu; waits (120 s at most) for the payload's
# verdict.  The payload then powers off, and QEMU stays, paused
# (-action shutdown=pause), for the test to look at.  Sets PID.
start_vm() {
    name=$1
    shift
    rm -f "$T/mon.in" "$T/mon.out"
    mkfifo "$T/mon.in" "$T/mon.out"
    : >"$T/$name.serial"
    # shellcheck disable=SC2086
    $RUNQ $BASE -kernel "$PAYLOAD" -serial "file:$T/$name.serial" \
        -action shutdown=pause -monitor pipe:"$T/mon" "$@" >"$RES/$name.qemu" 2>&1 &
    PID=$!
    i=0
    while ! grep -q -E "gmem-arm64: (PASS|FAIL)" "$T/$name.serial"; do
        if ! kill -0 "$PID" 2>/dev/null || [ $i -ge 1200 ]; then
            cp "$T/$name.serial" "$RES/$name.serial"
            fail "the payload gave no verdict in $((i / 10)) s:" \
                "$(tail -3 "$RES/$name.qemu" "$T/$name.serial" | tr '\n' '|')"
            stop_vm
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    cp "$T/$name.serial" "$RES/$name.serial"
    cat "$T/mon.out" >"$RES/$name.monitor" &
    MONCAT=$!
    exec 3<>"$T/mon.in"
    grep -q "gmem-arm64: PASS" "$T/$name.serial" ||
        { fail "$(grep FAIL "$T/$name.serial")"; return 1; }
}

# stop_vm: quit QEMU (kill it after 10 s) and wait for it.
stop_vm() {
    { echo quit >&3; } 2>/dev/null
    i=0
    while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
    wait "$PID" 2>/dev/null
    exec 3>&-
    [ -n "$MONCAT" ] && kill "$MONCAT" 2>/dev/null
    MONCAT=
}

# gmem_maps PID: QEMU's mappings of a guest_memfd ("start-end perms size")
# ("anon_inode:[kvm-gmem]" up to 6.18, "/[kvm-gmem] (deleted)" in 7.2)
gmem_maps() {
    grep -F "[kvm-gmem]" "/proc/$1/maps" | while read -r range perms rest; do
        s=${range%-*}
        e=${range#*-}
        echo "$s-$e $perms $((0x$e - 0x$s))"
    done
}

# check_words ADDR COUNT: the payload's word in COUNT pages from ADDR, read
# through QEMU (HMP pmemsave).
check_words() {
    rm -f "$T/mem.bin"
    # A relative name (QEMU runs in $T): HMP reads "SIZE /name" as a division
    echo "pmemsave $1 $(($2 * 4096)) mem.bin" >&3
    i=0
    while [ "$(stat -c %s "$T/mem.bin" 2>/dev/null)" != $(($2 * 4096)) ]; do
        [ $i -ge 100 ] && { fail "pmemsave wrote no $2 pages in 10 s:" \
            "$(tail -c 300 "$RES/$name.monitor" | tr -c '[:print:]' ' ')"; return 1; }
        sleep 0.1
        i=$((i + 1))
    done
    p=0
    while [ $p -lt "$2" ]; do
        a=$(($1 + p * 4096))
        got=$(od -A n -t x8 -j $((p * 4096)) -N 8 "$T/mem.bin" | tr -d ' ')
        want=$(printf %016x $((a ^ SEED)))
        [ "$got" = "$want" ] ||
            { fail "page $(printf %x $a): read $got through QEMU, the guest wrote $want"; return 1; }
        p=$((p + 1))
    done
}

# status_kb PID FIELD: a /proc/PID/status field, in KiB
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

test_ram_in_guest_memfd() {
    # More RAM than each of virt's two flash banks (64 MiB, anonymous
    # memory that QEMU allocates and the guest never touches here)
    start_vm ram -machine virt,memory-backend=m0 -m 128M \
        -object $GMEM,id=m0,size=128M || return 1
    grep -q "ram 0x0000000008000000" "$T/ram.serial" ||
        { fail "the guest saw RAM other than 128 MiB: $(head -1 "$T/ram.serial")"; return 1; }
    # The payload powered off (PSCI), leaving QEMU paused
    echo "info status" >&3
    i=0
    while ! grep -q "paused (shutdown)" "$RES/ram.monitor"; do
        [ $i -ge 100 ] && { fail "QEMU is not paused by the payload's power-off:" \
            "$(tail -c 200 "$RES/ram.monitor" | tr -c '[:print:]' ' ')"; return 1; }
        sleep 0.1
        i=$((i + 1))
    done
    # The guest wrote all of RAM from 4 MiB; the host reads it back.
    check_words 0x40400000 16 || return 1
    check_words 0x47ff0000 16 || return 1
    maps=$(gmem_maps "$PID")
    [ "$(echo "$maps" | wc -l)" = 1 ] && [ "${maps#* rw-s }" = $((128 * MiB)) ] ||
        { fail "mappings of a guest_memfd: '$maps' (want one rw-s of 128 MiB)"; return 1; }
    fds=$(ls -l "/proc/$PID/fd" | grep -c -F "[kvm-gmem]")
    [ "$fds" = 1 ] || { fail "$fds guest_memfds held, want 1"; return 1; }
    # No anonymous mapping as large as RAM; anonymous + shmem memory far below it
    big=$(while read -r range perms off dev ino path; do
        [ -z "$path" ] && [ $((0x${range#*-} - 0x${range%-*})) -ge $((128 * MiB)) ] &&
            echo "$range"
    done <"/proc/$PID/maps")
    [ -z "$big" ] || { fail "anonymous mappings as large as RAM: $big"; return 1; }
    other=$(($(status_kb "$PID" RssAnon) + $(status_kb "$PID" RssShmem)))
    [ $other -lt $((64 * 1024)) ] ||
        { fail "QEMU holds $((other / 1024)) MiB of anonymous and shmem memory besides 128 MiB of RAM"; return 1; }
    detail="the payload powered off; its pattern read back through QEMU; one rw-s mapping of the guest_memfd, no anonymous copy (RssAnon+RssShmem $((other / 1024)) MiB)"
}

# node_unevictable N: host node N's unevictable memory, in KiB (where
# guest_memfd pages are counted)
node_unevictable() {
    awk '$3 == "Unevictable:" { print $4 }' "/sys/devices/system/node/node$1/meminfo"
}

test_numa_two_nodes() {
    # Each guest node's backend bound to the other host node: where the
    # pages the guest writes are allocated shows the policy applied.
    u0=$(node_unevictable 0)
    u1=$(node_unevictable 1)
    start_vm numa -machine virt -m 128M \
        -object $GMEM,id=n0,size=64M,policy=bind,host-nodes=1 \
        -object $GMEM,id=n1,size=64M,policy=bind,host-nodes=0 \
        -numa node,nodeid=0,memdev=n0 -numa node,nodeid=1,memdev=n1 || return 1
    grep -q "ram 0x0000000008000000" "$T/numa.serial" ||
        { fail "the guest saw RAM other than 128 MiB: $(head -1 "$T/numa.serial")"; return 1; }
    check_words 0x43fff000 2 || return 1
    # Each mapping carries its backend's policy.
    pol=
    for m in $(gmem_maps "$PID" | cut -d- -f1); do
        pol="$pol $(grep "^$m " "/proc/$PID/numa_maps" | cut -d' ' -f2)"
    done
    [ "$(echo $pol | tr ' ' '\n' | sort | tr '\n' ' ')" = "bind:0 bind:1 " ] ||
        { fail "policies of the guest_memfd mappings:$pol (want bind:0 and bind:1)"; return 1; }
    # The guest wrote guest node 0's RAM from 4 MiB (60 MiB) and all of
    # node 1's (64 MiB): at least 95% of each is on the host node its
    # backend is bound to.
    g1=$(($(node_unevictable 1) - u1))
    g0=$(($(node_unevictable 0) - u0))
    [ $g1 -ge $((60 * 1024 * 95 / 100)) ] && [ $g0 -ge $((64 * 1024 * 95 / 100)) ] ||
        { fail "unevictable memory grew by $((g0 / 1024)) MiB on host node 0 and $((g1 / 1024)) MiB on node 1; want 64 and 60"; return 1; }
    detail="policies$pol; host node 0 +$((g0 / 1024)) MiB, node 1 +$((g1 / 1024)) MiB of unevictable (guest_memfd) memory"
}

test_prealloc() {
    before=$(awk '$1 == "Unevictable:" { print $2 }' /proc/meminfo)
    rm -f "$T/mon.in" "$T/mon.out"
    mkfifo "$T/mon.in" "$T/mon.out"
    # shellcheck disable=SC2086
    $RUNQ $BASE -S -machine virt,memory-backend=m0 -m 256M \
        -object $GMEM,id=m0,size=256M,prealloc=on,prealloc-threads=2 \
        -monitor pipe:"$T/mon" >"$RES/prealloc.qemu" 2>&1 &
    PID=$!
    cat "$T/mon.out" >"$RES/prealloc.monitor" &
    MONCAT=$!
    exec 3<>"$T/mon.in"
    echo "info status" >&3
    i=0
    while ! grep -q "VM status" "$RES/prealloc.monitor"; do
        kill -0 "$PID" 2>/dev/null && [ $i -lt 600 ] ||
            { fail "QEMU did not answer in 60 s: $(tail -3 "$RES/prealloc.qemu")"; stop_vm; return 1; }
        sleep 0.1
        i=$((i + 1))
    done
    grown=$(($(awk '$1 == "Unevictable:" { print $2 }' /proc/meminfo) - before))
    stop_vm
    [ $grown -ge $((256 * 1024 * 95 / 100)) ] ||
        { fail "unevictable memory grew by $((grown / 1024)) MiB before the guest ran, want 256"; return 1; }
    detail="$((grown / 1024)) MiB allocated before the guest ran"
}

# refused NAME WANT ARGS...: QEMU exits 1 saying WANT
refused() {
    name=$1
    want=$2
    shift 2
    # shellcheck disable=SC2086
    timeout 60 $RUNQ $BASE "$@" >"$RES/$name.qemu" 2>&1
    rc=$?
    [ $rc = 1 ] && grep -q -F "$want" "$RES/$name.qemu" ||
        { fail "exit $rc: $(tail -2 "$RES/$name.qemu" | tr '\n' '|') (want exit 1 and '$want')"; return 1; }
}

test_errors() {
    refused mmap_off "mmap=off keeps the guest's memory private, but this KVM VM cannot make memory private" \
        -machine virt,memory-backend=m0 -m 64M -object $GMEM,id=m0,size=64M,mmap=off || return 1
    refused host_nodes "host NUMA node 7 does not" \
        -machine virt,memory-backend=m0 -m 64M -object $GMEM,id=m0,size=64M,host-nodes=7,policy=bind || return 1
    refused size "is not a non-zero multiple of the host page size" \
        -machine virt,memory-backend=m0 -m 64M -object $GMEM,id=m0,size=65537 || return 1
    detail="mmap=off (no private memory in an arm64 VM), a host node that does not exist, a size of no whole pages: each exits 1 with its message"
}

test_no_guest_memfd() {
    # Before 6.18 arm64 KVM has no guest_memfd at all, either mode (and
    # KVM_CAP_USER_MEMORY2, from 6.8 on).
    want="this host's KVM cannot back this VM's memory with a guest_memfd (the VM has no KVM_CAP_GUEST_MEMFD)"
    hint="KVM offers a guest_memfd to every VM from Linux 6.18 on"
    refused old_mmap_on "$want" \
        -machine virt,memory-backend=m0 -m 64M -object $GMEM,id=m0,size=64M || return 1
    grep -q -F "$hint" "$RES/old_mmap_on.qemu" ||
        { fail "no hint: $(tail -2 "$RES/old_mmap_on.qemu" | tr '\n' '|')"; return 1; }
    refused old_mmap_off "$want" \
        -machine virt,memory-backend=m0 -m 64M -object $GMEM,id=m0,size=64M,mmap=off || return 1
    detail="kernel $(uname -r): mmap=on and mmap=off each exit 1: $want; $hint"
}

test_linux_guest() {
    # The rig's own kernel and initramfs, whose init says it is up (with
    # gm.guest) and powers off through PSCI: QEMU exits 0.
    # shellcheck disable=SC2086
    timeout 600 $RUNQ $BASE -machine virt,memory-backend=m0 -m 256M -smp 1 \
        -object $GMEM,id=m0,size=256M -kernel "$KERNEL" -initrd "$INITRAMFS" \
        -append "console=ttyAMA0 panic=-1 gm.guest" -no-reboot \
        -serial "file:$RES/linux.serial" >"$RES/linux.qemu" 2>&1
    rc=$?
    up=$(grep "^guest: up" "$RES/linux.serial")
    [ $rc = 0 ] && [ -n "$up" ] ||
        { fail "exit $rc; $(tail -3 "$RES/linux.serial" "$RES/linux.qemu" | tr '\n' '|')"; return 1; }
    echo "$up" | grep -q "MemTotal: 2[0-9][0-9][0-9][0-9][0-9] kB" ||
        { fail "the guest saw other RAM than 256 MiB: $up"; return 1; }
    detail="Linux $up"
}

mkdir -p "$T"
cd "$T" || exit 1
if ! [ -x "$QEMU" ] || ! [ -f "$SYSROOT/.key" ]; then
    echo "FAIL backend/build: $QEMU and its libraries in $SYSROOT were not built (scripts/build-qemu.sh --arm64)" >>"$out"
    exit 0
fi
if [ "$TESTS" != no_guest_memfd ] && ! [ -f "$PAYLOAD" ]; then
    echo "FAIL backend/build: $PAYLOAD was not built (make -C tests/guest)" >>"$out"
    exit 0
fi
for t in $TESTS; do
    start=$(now)
    why=
    detail=
    PID=
    MONCAT=
    if "test_$t"; then
        stop_vm 2>/dev/null
        result PASS "$t" "$detail"
    else
        stop_vm 2>/dev/null
        result FAIL "$t" "$why"
    fi
done
