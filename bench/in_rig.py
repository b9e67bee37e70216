#!/usr/bin/python3
"""The benchmark's parts that need private memory, run inside the nested
rig (bench/run.py boots it): conversion throughput (part 3) and the host
footprint after a conversion storm (part 4).  Writes its figures as JSON
to $GM_RIG_RESULTS/bench.json.

  bench/in_rig.py FLOOR_PROGRAM VMM_PROGRAM RUNS CHUNKS SIZES MIGRATION_SIZE MIGRATION_RUNS [PASSES]

CHUNKS are conversion sizes (4K+64K+2M+1G: the rig's command line cannot
hold commas); SIZES the guest RAM sizes of part 4 (256M+512M+1G);
MIGRATION_SIZE the guest RAM of part 5 (live migration, the rig kernel
logging guest_memfd's dirty pages), MIGRATION_RUNS its runs of each
backend; PASSES (default 1) the passes of part 3 per launch of QEMU or
of the VMM, each pass a figure of its own.

Part 3 times conversions in the guest's hypercalls through QEMU, with
two copies (mmap=off) and in place (mmap=on, where the kernel converts
guest_memfd pages in place): the payload (KIND_BENCH) brackets each pass
with a hypercall that QEMU refuses, and QEMU's trace of refused requests
alone (cgs_gmem_map_gpa_range_refused, with timestamps) gives
the time between the two; the conversions themselves are not traced.
Two floors: FLOOR_PROGRAM (bench/floor/convert.c) makes the two-copy
model's KVM_SET_MEMORY_ATTRIBUTES and fallocate() calls with no guest and
no QEMU; VMM_PROGRAM (bench/floor/vmm.c) is a minimal VMM whose guest
asks for the same conversions with the same hypercalls, answered with the
calls QEMU makes, in either model.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from gmemtest import (FLAG_COUNTER, FLAG_HALT, KIND_BENCH, KIND_GUEST,  # noqa: E402
                      KIND_PRIVATE, KIND_SHARED, Qemu, meminfo, payload_args,
                      payload_result, proc_status)
from migration import (assert_no_failure, counters, ram_args,  # noqa: E402
                       wait_counter, wait_migration)

MiB = 1 << 20
GiB = 1 << 30
MARK = 0xfee00000           # the payload's marker hypercall (payload.S)
BENCH_BASE = GiB            # 1 GiB aligned, so that a 1 GiB chunk fits
TRACE = re.compile(r"T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z "
                   r"cgs_gmem_map_gpa_range_refused gpa 0x([0-9a-f]+) ")


def parse_size(s):
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def total_for(chunk):
    """Bytes converted per pass: up to 4096 conversions, at most 256 MiB
    (or one conversion of a larger chunk)."""
    return max(chunk, min(4096 * chunk, 256 * MiB))


MODES = {"two-copy": "off", "in-place": "on"}     # part 3: mmap= of each
BENCH_RAM = 2 * GiB         # part 3's guests, QEMU's and the VMM's


def swp_args(size, extra=(), mode="two-copy"):
    return (["-object", "sw-protected-guest,id=swp",
             "-object", "memory-backend-guest-memfd,id=ram0,size=%d,mmap=%s"
             % (size, MODES[mode]),
             "-m", "%dM" % (size // MiB)] + list(extra),
            ",memory-backend=ram0,confidential-guest-support=swp")


def ours(chunk, total, runs, mode="two-copy"):
    """[(seconds to private, seconds to shared)] per run, through QEMU."""
    trace = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench-trace.txt")
    ranges = [(BENCH_BASE, total, KIND_BENCH, chunk // 4096)] * runs
    args, machine = swp_args(BENCH_RAM, ["-trace", "cgs_gmem_map_gpa_range_refused",
                                         "-D", trace, "-msg", "timestamp=on"],
                             mode)
    with Qemu(args, args_blob=payload_args(ranges, flags=FLAG_HALT),
              extra_machine=machine) as vm:
        out = vm.wait_output("RESULT ", 1200)
        if not payload_result(out).startswith("RESULT PASS"):
            raise RuntimeError("payload: %s %s" % (payload_result(out), vm.errors()))
        converted = sum(vm.qom_get("/objects/swp", c)
                        for c in ("conversions-to-private", "conversions-to-shared"))
    marks = []
    with open(trace) as f:
        for line in f:
            m = TRACE.search(line)
            if m and int(m.group(4), 16) == MARK:
                marks.append(int(m.group(1)) * 3600 + int(m.group(2)) * 60 +
                             float(m.group(3)))
    os.unlink(trace)
    want = 2 * runs * (total // chunk) + 2      # and the warm-up's two
    if len(marks) != 4 * runs or converted != want:
        raise RuntimeError("%d marks, %d conversions; wanted %d and %d"
                           % (len(marks), converted, 4 * runs, want))
    # A run that crosses midnight (UTC) would come out negative: add a day.
    d = [(b - a) % 86400 for a, b in zip(marks[0::2], marks[1::2])]
    return list(zip(d[0::2], d[1::2]))


def floor(program, chunk, total, runs, mode=None):
    """[(seconds to private, seconds to shared)] per run of a floor program
    (the VMM's: in mode, in a VM of BENCH_RAM bytes, as QEMU's)."""
    out = subprocess.run([program] + ([mode, str(BENCH_RAM)] if mode else []) +
                         [str(total), str(chunk), str(runs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode:
        raise RuntimeError("floor: " + out.stderr.strip())
    return [tuple(float(x) for x in line.split()) for line in out.stdout.splitlines()]


def storm(size, rng):
    """The payload's ranges: write all RAM (shared), then as many
    conversions as the payload carries, of random sizes from 4 KiB to 2 MiB,
    each of a range whose pages are all in the other state (the payload
    checks that a converted page reads zero), each followed by the guest
    writing the range on its new side."""
    ranges = [(MiB, size - MiB, KIND_GUEST, 0)]
    lo = 16 * MiB
    private = set()
    while len(ranges) < 161:
        pages = rng.choice([1, 3, 16, 100, 512])
        first = lo // 4096 + rng.randrange((size - lo) // 4096 - pages)
        span = range(first, first + pages)
        state = {p in private for p in span}
        if len(state) != 1:
            continue
        if state.pop():
            private.difference_update(span)
            kind = KIND_SHARED
        else:
            private.update(span)
            kind = KIND_PRIVATE
        ranges.append((first * 4096, pages * 4096, kind, 0))
    return ranges, len(private) * 4096


def footprint(mode, size, rng):
    """Host memory holding guest RAM once the payload is done (shmem and
    guest_memfd pages, which /proc/meminfo counts as Shmem and
    Unevictable), and QEMU's own anonymous memory."""
    if mode == "shared":
        args = ["-object", "memory-backend-guest-memfd,id=ram0,size=%d" % size,
                "-m", "%dM" % (size // MiB)]
        machine = ",memory-backend=ram0"
        ranges = [(MiB, size - MiB, KIND_GUEST, 0)]
        want_private = 0
    else:
        args, machine = swp_args(size)
        ranges, want_private = storm(size, rng)
    shmem0, unev0 = meminfo("Shmem"), meminfo("Unevictable")
    with Qemu(args, args_blob=payload_args(ranges, flags=FLAG_HALT),
              extra_machine=machine) as vm:
        out = vm.wait_output("RESULT ", 1200)
        if not payload_result(out).startswith("RESULT PASS"):
            raise RuntimeError("payload: %s" % payload_result(out))
        held = meminfo("Shmem") - shmem0 + meminfo("Unevictable") - unev0
        private = 0
        if mode == "private":
            private = vm.qom_get("/objects/ram0", "private-bytes")
            if private != want_private:
                raise RuntimeError("private-bytes %d, the storm left %d"
                                   % (private, want_private))
        anon = proc_status(vm.proc.pid, "RssAnon")
    return {"held": held, "anon": anon, "private": private}


WRITTEN = 32 * MiB          # what the guest keeps writing in part 5


def pin(vm, vcpu_cpu, other_cpu):
    """Pin vm's vCPU threads to vcpu_cpu and its other threads (and those
    it creates later, such as the migration thread) to other_cpu."""
    vcpus = {c["thread-id"] for c in vm.qmp.cmd("query-cpus-fast")}
    for tid in os.listdir("/proc/%d/task" % vm.proc.pid):
        os.sched_setaffinity(int(tid), {vcpu_cpu if int(tid) in vcpus else other_cpu})


def migration_run(kind, size, writing):
    """Migrate a guest of size bytes of RAM (all of it written once) from
    one QEMU to another, both with kind RAM, over a unix socket, the guest
    idle (halted) or writing WRITTEN bytes over and over; the guest checks
    every page it writes on the destination.  Each QEMU's vCPU runs on the
    rig's second CPU, everything else on the first.  Returns QEMU's total
    time and downtime, in ms."""
    ranges = [(MiB, WRITTEN, KIND_GUEST, 0),
              (MiB + WRITTEN, size - MiB - WRITTEN, KIND_GUEST, 0)]
    flags = FLAG_HALT | (FLAG_COUNTER if writing else 0)
    blob = payload_args(ranges, flags=flags)
    tmp = os.environ.get("TMPDIR", "/tmp")
    sock = os.path.join(tmp, "bench-migrate.sock")
    src = Qemu(ram_args(kind, size), args_blob=blob,
               extra_machine=",memory-backend=m0")
    dst = Qemu(ram_args(kind, size) + ["-incoming", "unix:" + sock],
               args_blob=blob, extra_machine=",memory-backend=m0")
    with src, dst:
        # The rig has two CPUs and a writing guest keeps one busy: give it
        # one of its own, and both QEMUs' other threads the other, so that
        # how the scheduler shares them does not decide the figures.
        if os.cpu_count() >= 2:
            pin(src, 1, 0)
            pin(dst, 1, 0)
        out = src.wait_output("RESULT ", 600)
        if not payload_result(out).startswith("RESULT PASS"):
            raise RuntimeError("payload: %s" % payload_result(out))
        if writing:
            wait_counter(src, 0)
        # The same settings for every backend: no bandwidth cap, and a
        # downtime the writing guest's WRITTEN bytes can meet.
        src.qmp.cmd("migrate-set-parameters", **{
            "max-bandwidth": 64 << 30, "downtime-limit": 1000})
        src.qmp.cmd("migrate", uri="unix:" + sock)
        info = wait_migration(src, 600)
        if info["status"] != "completed" or \
                wait_migration(dst)["status"] != "completed":
            raise RuntimeError("migration %s: %s" % (info["status"],
                                                     info.get("error-desc")))
        if writing:
            try:
                wait_counter(dst, counters(src)[-1] + 16)
            except RuntimeError as e:
                raise RuntimeError("%s RAM, %d MiB: the destination: %s"
                                   % (kind, size // MiB, e))
        assert_no_failure(dst)
    return info["total-time"], info["downtime"]


def migrations(size, runs):
    """Part 5: the backends interleaved, run by run.  A run whose
    destination fails is run once more, and the failure kept with the
    results: the rig's nested SVM (KVM under TCG) has been seen to leave a
    destination's vCPU in internal-error with its RIP in the rig kernel's
    __svm_vcpu_run, in 2 of 5 rig boots that ran this part after parts 3
    and 4 (with either backend: not known), never alone."""
    res = []
    for writing in (False, True):
        times = {"gmem": [], "memfd": []}
        retried = []
        for i in range(runs):
            # ABBA: neither backend always goes first.
            for kind in ("gmem", "memfd") if i % 2 == 0 else ("memfd", "gmem"):
                try:
                    times[kind].append(migration_run(kind, size, writing))
                except RuntimeError as e:
                    retried.append(str(e)[:400])
                    times[kind].append(migration_run(kind, size, writing))
        res.append({"size": size, "writing": writing, "written": WRITTEN,
                    "runs": times, "retried": retried})
    return res


def main():
    program, vmm, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    passes = int(sys.argv[8]) if len(sys.argv) > 8 else 1
    # "none": that part is not run
    chunks = [parse_size(s) for s in sys.argv[4].split("+") if s != "none"]
    sizes = [parse_size(s) for s in sys.argv[5].split("+") if s != "none"]
    res = {"kernel": os.uname().release, "conversions": [], "footprint": []}
    # Part 5 first, before the sw-protected guests of parts 3 and 4 ran in
    # this rig (see migrations()).
    res["migration"] = []
    if int(sys.argv[7]):
        res["migration"] = migrations(parse_size(sys.argv[6]), int(sys.argv[7]))
        print("bench: migrations done", flush=True)
    # Interleaved: run i of ours and of the floor (of each mode) before
    # run i + 1 of either, so that the rig's drift touches both alike.
    # "ours": QEMU, two copies; "in_place": QEMU, in place; "floor": no
    # vCPU, two copies; "vmm", "vmm_in_place": the minimal VMM.
    for chunk in chunks:
        total = total_for(chunk)
        conv = {"chunk": chunk, "total": total, "passes": passes,
                "ours": [], "floor": [],
                "in_place": [], "vmm": [], "vmm_in_place": []}
        for _ in range(runs):
            conv["ours"] += ours(chunk, total, passes)
            conv["in_place"] += ours(chunk, total, passes, "in-place")
            conv["floor"] += floor(program, chunk, total, passes)
            conv["vmm"] += floor(vmm, chunk, total, passes, "two-copy")
            conv["vmm_in_place"] += floor(vmm, chunk, total, passes, "in-place")
        res["conversions"].append(conv)
        print("bench: %d-byte conversions done" % chunk, flush=True)
    rng = random.Random(5)
    for size in sizes:
        foot = {mode: dict(mode=mode, size=size, runs=[])
                for mode in ("shared", "private")}
        for _ in range(runs):
            for mode in foot:
                foot[mode]["runs"].append(footprint(mode, size, rng))
        res["footprint"] += foot.values()
        print("bench: footprint at %d bytes done" % size, flush=True)
    with open(os.path.join(os.environ["GM_RIG_RESULTS"], "bench.json"), "w") as f:
        json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
