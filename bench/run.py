#!/usr/bin/python3
"""Benchmarks, side by side, measured in one run on one machine:

1. VM start-up: wall time from QEMU's start to the payload's result after
   it has written every page of its RAM, and the host memory held at that
   point (QEMU's anonymous RSS + memfd/shmem pages + guest_memfd pages),
   for memory-backend-guest-memfd, -memfd and -ram, with prealloc off and
   on; ratios to memory-backend-memfd.
2. Preallocation throughput of memory-backend-guest-memfd and -memfd with
   prealloc-threads 1 and 2, against the floor: a program of ours that
   fallocate()s a guest_memfd directly, and one that faults in anonymous
   memory.

Each figure is the median of several runs, with min and max.  Writes the
tables to build/bench/results.md as well.

  bench/run.py [--runs N] [--sizes 256M,1G,4G] [--smoke]

--smoke runs the smallest size once (the test command's check that the
benchmark runs to the end).  Not yet: conversion throughput in the rig and
the footprint after a conversion storm (issue 5, parts 3 and 4).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from gmemtest import (BUILD, FLAG_HALT, KIND_GUEST, ROOT, Qemu,  # noqa: E402
                      meminfo, payload_args, payload_result, require_gmem_mmap)

MiB = 1 << 20
GiB = 1 << 30
BACKENDS = ["memory-backend-guest-memfd", "memory-backend-memfd",
            "memory-backend-ram"]
SHORT = {"memory-backend-guest-memfd": "guest-memfd",
         "memory-backend-memfd": "memfd", "memory-backend-ram": "ram"}
LOWMEM = 2 * GiB     # q35 puts RAM above this at 4 GiB once RAM >= 2.75 GiB


def parse_size(s):
    units = {"M": MiB, "G": GiB}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def human(n):
    return "%d GiB" % (n // GiB) if n % GiB == 0 else "%d MiB" % (n // MiB)


def ram_ranges(size):
    """Every page of a q35 guest's RAM, above 1 MiB."""
    if size < 0xb0000000:
        return [(MiB, size - MiB, KIND_GUEST, 0)]
    return [(MiB, LOWMEM - MiB, KIND_GUEST, 0),
            (4 * GiB, size - LOWMEM, KIND_GUEST, 0)]


def rss_anon(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def startup_run(backend, size, prealloc):
    """(seconds to the payload's result, bytes held then)."""
    opts = "%s,id=m0,size=%d" % (backend, size)
    if prealloc:
        opts += ",prealloc=on"
    blob = payload_args(ram_ranges(size), flags=FLAG_HALT)
    shmem0, unev0 = meminfo("Shmem"), meminfo("Unevictable")
    vm = Qemu(["-object", opts, "-m", "%dM" % (size // MiB)], args_blob=blob,
              qmp=False, extra_machine=",memory-backend=m0")
    t0 = time.monotonic()
    vm.start()
    try:
        out = vm.wait_output("RESULT ", 600)
        took = time.monotonic() - t0
        result = payload_result(out)
        if not result.startswith("RESULT PASS"):
            raise RuntimeError("%s: %s" % (opts, result))
        held = (rss_anon(vm.proc.pid) + meminfo("Shmem") - shmem0 +
                meminfo("Unevictable") - unev0)
    finally:
        vm.stop()
    return took, held


def prealloc_seconds(backend, size, threads):
    """Time QEMU takes to preallocate: QEMU up to its first QMP answer with
    prealloc=on, less the same without it."""
    def ready(prealloc):
        opts = "%s,id=m0,size=%d" % (backend, size)
        if prealloc:
            opts += ",prealloc=on,prealloc-threads=%d" % threads
        vm = Qemu(["-object", opts, "-m", "%dM" % (size // MiB), "-S"],
                  extra_machine=",memory-backend=m0")
        t0 = time.monotonic()
        vm.start()
        try:
            vm.qmp.cmd("query-status")
            return time.monotonic() - t0
        finally:
            vm.stop()
    return max(ready(True) - ready(False), 1e-6)


def floor_seconds(program, size):
    out = subprocess.run([program, str(size)], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return float(out.strip())


def build_floors():
    out = os.path.join(BUILD, "bench")
    os.makedirs(out, exist_ok=True)
    progs = {}
    for name in ("gmem-fallocate", "anon-populate"):
        exe = os.path.join(out, name)
        subprocess.run(["cc", "-O2", "-Wall", "-Werror",
                        "-I", os.path.join(BUILD, "qemu-src", "linux-headers"),
                        "-o", exe, os.path.join(HERE, "floor", name + ".c")],
                       check=True)
        progs[name] = exe
    return progs


def stats(values):
    return statistics.median(values), min(values), max(values)


def fmt(values, unit_fn):
    med, lo, hi = stats(values)
    return "%s [%s–%s]" % (unit_fn(med), unit_fn(lo), unit_fn(hi))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="256M,1G,4G")
    ap.add_argument("--prealloc-size", default="2G")
    ap.add_argument("--smoke", action="store_true")
    opts = ap.parse_args()
    if opts.smoke:
        opts.runs, opts.sizes, opts.prealloc_size = 1, "256M", "256M"
    sizes = [parse_size(s) for s in opts.sizes.split(",")]
    require_gmem_mmap()
    floors = build_floors()

    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    host = "%s, %d CPUs, %d GiB, Linux %s" % (
        subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                       stdout=subprocess.PIPE, universal_newlines=True).stdout.strip(),
        os.cpu_count(), meminfo("MemTotal") // GiB, os.uname().release)
    out("# Benchmarks (%s)" % time.strftime("%Y-%m-%d"))
    out()
    out("Machine: %s.  Median of %d run(s) [min–max]." % (host, opts.runs))
    out()
    out("## 1. Start-up to the payload's result, every page written once")
    out()
    out("| RAM | prealloc | backend | time (s) | vs memfd | host memory held | vs memfd |")
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for prealloc in (False, True):
            res = {}
            for backend in BACKENDS:
                runs = [startup_run(backend, size, prealloc) for _ in range(opts.runs)]
                res[backend] = ([r[0] for r in runs], [r[1] for r in runs])
            base_t = statistics.median(res["memory-backend-memfd"][0])
            base_m = statistics.median(res["memory-backend-memfd"][1])
            for backend in BACKENDS:
                t, m = res[backend]
                out("| %s | %s | %s | %s | %.2f | %s | %.2f |" % (
                    human(size), "on" if prealloc else "off", SHORT[backend],
                    fmt(t, lambda v: "%.2f" % v), statistics.median(t) / base_t,
                    fmt(m, lambda v: "%d MiB" % (v // MiB)),
                    statistics.median(m) / base_m))
    out()

    size = parse_size(opts.prealloc_size)
    out("## 2. Preallocation of %s (GiB/s; higher is better)" % human(size))
    out()
    out("| what | GiB/s | vs floor (guest_memfd fallocate) |")
    out("| --- | --- | --- |")
    floor_runs = [size / GiB / floor_seconds(floors["gmem-fallocate"], size)
                  for _ in range(opts.runs)]
    floor = statistics.median(floor_runs)
    rows = [("floor: fallocate() of a guest_memfd, no QEMU", floor_runs),
            ("floor: MADV_POPULATE_WRITE of anonymous memory, no QEMU",
             [size / GiB / floor_seconds(floors["anon-populate"], size)
              for _ in range(opts.runs)])]
    for backend in ("memory-backend-guest-memfd", "memory-backend-memfd"):
        for threads in (1, 2):
            rows.append(("%s, prealloc-threads=%d" % (SHORT[backend], threads),
                         [size / GiB / prealloc_seconds(backend, size, threads)
                          for _ in range(opts.runs)]))
    for what, v in rows:
        out("| %s | %s | %.2f |" % (what, fmt(v, lambda x: "%.2f" % x),
                                    statistics.median(v) / floor))
    out()
    out("## 3, 4. Conversions in the rig, footprint after a conversion storm")
    out()
    out("Not measured yet (issue 5).")

    path = os.path.join(BUILD, "bench", "results.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n(written to %s)" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
