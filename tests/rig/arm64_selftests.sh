#!/bin/sh
# Run in the arm64 rig (tests/rig/init-arm64) by tests/e2e/test_arm64.py:
# Linux's KVM selftests built for arm64 (tests/rig/build-selftests.sh
# --arch arm64, static), from the folder $1 of the host's, each with a
# limit of 600 s.  Writes one line per test to $GM_RIG_RESULTS/results.txt
# in the in-rig runner's form ("PASS|FAIL|SKIP name (secs): detail"), and
# each test's output beside it.  Busybox sh: the host's Python cannot run
# here.
#
# SPDX-License-Identifier: GPL-2.0-or-later
dir=$GM_HOST$1
out=$GM_RIG_RESULTS/results.txt
: >"$out"
now() { cut -d' ' -f1 /proc/uptime; }
# guest_memfd_memcg_test wants cgroup v2 where a host's init mounts it.
[ -e /sys/fs/cgroup/cgroup.controllers ] || mount -t cgroup2 none /sys/fs/cgroup
for t in guest_memfd_test guest_memfd_memcg_test set_memory_region_test; do
    if ! [ -x "$dir/$t" ]; then
        echo "FAIL kvm-selftests/$t: $dir/$t was not built" >>"$out"
        continue
    fi
    start=$(now)
    timeout 600 "$dir/$t" >"$GM_RIG_RESULTS/$t.out" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    tail=$(tail -3 "$GM_RIG_RESULTS/$t.out" | tr '\n' '|')
    # What the test says it did (its pr_info lines), for the report
    said=$(grep -E "^(Fault-around|fault_around_bytes|Dirty logging|Guest faulted)" \
           "$GM_RIG_RESULTS/$t.out" | tr '\n' ';')
    case $rc in
    0) echo "PASS kvm-selftests/$t (${secs}s): exit 0${said:+; $said}" >>"$out" ;;
    4) echo "SKIP kvm-selftests/$t (${secs}s): $tail" >>"$out" ;;
    *) echo "FAIL kvm-selftests/$t (${secs}s): exit $rc: $tail" >>"$out" ;;
    esac
done
