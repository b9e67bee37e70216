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

3. In the nested rig (tests/rig; its kernel can make memory private):
   conversion throughput for ranges of 4 KiB, 64 KiB, 2 MiB and 1 GiB,
   private->shared and shared->private, driven by the guest's hypercall
   through QEMU, with two copies (mmap=off) and in place (mmap=on),
   against two floors: a minimal VMM of ours whose guest makes the same
   hypercalls, answered with the same calls, in each model
   (bench/floor/vmm.c), and a program making the two-copy model's
   KVM_SET_MEMORY_ATTRIBUTES and fallocate() calls with no guest and no
   QEMU (bench/in_rig.py, bench/floor/convert.c).
4. In the rig: host memory held per byte of guest RAM once every page
   has been written, in shared mode and in private mode after a storm of
   conversions, at several RAM sizes.
5. In the rig (its kernel logs guest_memfd's dirty pages): live
   migration of a guest whose RAM is memory-backend-guest-memfd against
   memory-backend-memfd, total time and downtime, the guest idle and
   writing.

The runs of the things compared are interleaved (run i of each before
run i + 1 of any).  Each part's raw data goes to partN.json in the
results folder (docs/benchmarks, kept in the repository), with the
commit, machine, date and command line it came from; bench/report.py
makes the tables (results.md), the plot (results.png) and the figures of
docs/benchmarks.md from them.  A run of some parts replaces only theirs.

  bench/run.py [--runs N] [--sizes 256M,1G,4G] [--parts 1,2] [--passes N] [--smoke]

--passes is part 3's passes per launch of QEMU or of the VMM (3): every
pass is a figure, so a run gives that many, the first after a launch
among them.

--smoke runs the smallest size once, into build/bench-smoke so that it
never overwrites a real run's figures (the test command's check that the
benchmark runs to the end).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from gmemtest import (BUILD, FLAG_HALT, KIND_GUEST, ROOT, Qemu,  # noqa: E402
                      gmem_mmap_lacking, meminfo, payload_args,
                      payload_result, proc_status)
from rig import build_rig, run_rig  # noqa: E402
import report  # noqa: E402
from report import BACKENDS, GiB, MiB, SHORT  # noqa: E402

LOWMEM = 2 * GiB     # q35 puts RAM above this at 4 GiB once RAM >= 2.75 GiB


def parse_size(s):
    units = {"M": MiB, "G": GiB}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def ram_ranges(size):
    """Every page of a q35 guest's RAM, above 1 MiB."""
    if size < 0xb0000000:
        return [(MiB, size - MiB, KIND_GUEST, 0)]
    return [(MiB, LOWMEM - MiB, KIND_GUEST, 0),
            (4 * GiB, size - LOWMEM, KIND_GUEST, 0)]


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
        held = (proc_status(vm.proc.pid, "RssAnon") + meminfo("Shmem") - shmem0 +
                meminfo("Unevictable") - unev0)
    finally:
        vm.stop()
    return took, held


def prealloc_seconds(backend, size, threads):
    """(seconds QEMU takes to preallocate, seconds of a QMP round trip):
    timed inside one QEMU, started with prealloc=off and -S, as the
    qom-set prealloc=true that makes it preallocate (the path that
    prealloc=on at start-up takes too)."""
    opts = "%s,id=m0,size=%d,prealloc-threads=%d" % (backend, size, threads)
    vm = Qemu(["-object", opts, "-m", "%dM" % (size // MiB), "-S"],
              extra_machine=",memory-backend=m0")
    with vm:
        t0 = time.monotonic()
        vm.qmp.cmd("query-status")
        roundtrip = time.monotonic() - t0
        t0 = time.monotonic()
        vm.qmp.cmd("qom-set", path="/objects/m0", property="prealloc", value=True)
        took = time.monotonic() - t0
        if not vm.qom_get("/objects/m0", "prealloc"):
            raise RuntimeError("%s: prealloc is not on after qom-set" % opts)
    return took, roundtrip


def floor_seconds(program, size):
    out = subprocess.run([program, str(size)], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return float(out.strip())


def floor_path(name):
    """Where build_floors() puts the floor program name."""
    return os.path.join(BUILD, "bench", name)


def build_floors():
    os.makedirs(floor_path(""), exist_ok=True)
    progs = {}
    for name in ("gmem-fallocate", "anon-populate", "convert", "vmm"):
        exe = floor_path(name)
        subprocess.run(["cc", "-O2", "-Wall", "-Werror",
                        "-I", os.path.join(BUILD, "qemu-src", "linux-headers"),
                        "-o", exe, os.path.join(HERE, "floor", name + ".c")],
                       check=True)
        progs[name] = exe
    return progs


def startup_part(opts):
    """Part 1's raw data: every run of every backend, in the order run."""
    sizes = [parse_size(x) for x in opts.sizes.split(",")]
    runs = []
    for size in sizes:
        for prealloc in (False, True):
            # Interleaved: run i of every backend before run i + 1 of any,
            # so that a drift of the machine touches them all alike.
            for _ in range(opts.runs):
                for backend in BACKENDS:
                    t, m = startup_run(backend, size, prealloc)
                    runs.append(dict(size=size, prealloc=prealloc,
                                     backend=backend, seconds=t, held=m))
    return {"sizes": sizes, "runs": runs}


def prealloc_part(opts, floors):
    """Part 2's raw data: the floors' and each backend's seconds per run,
    interleaved."""
    size = parse_size(opts.prealloc_size)
    runs = []
    for _ in range(opts.runs):
        runs.append(dict(what="floor: fallocate() of a guest_memfd, no QEMU",
                         seconds=floor_seconds(floors["gmem-fallocate"], size)))
        runs.append(dict(what="floor: MADV_POPULATE_WRITE of anonymous memory, "
                         "no QEMU",
                         seconds=floor_seconds(floors["anon-populate"], size)))
        for backend in ("memory-backend-guest-memfd", "memory-backend-memfd"):
            for threads in (1, 2):
                t, rt = prealloc_seconds(backend, size, threads)
                runs.append(dict(what="%s, prealloc-threads=%d" % (
                    SHORT[backend], threads), seconds=t, roundtrip=rt))
    return {"size": size, "runs": runs}


def rig_parts(opts, floors):
    """Parts 3, 4 and 5 (those of opts.parts), in one boot of the rig:
    {part: raw data}, or {part: None} with the reason they were skipped."""
    kernel, initramfs, why = build_rig()
    parts = opts.parts & {3, 4, 5}
    if why:
        return {p: None for p in parts}, why
    # The rig's command line cannot hold commas; "none" skips a part.
    words = ["/usr/bin/python3", "bench/in_rig.py", floors["convert"],
             floors["vmm"], str(opts.runs),
             opts.chunks.replace(",", "+") if 3 in opts.parts else "none",
             opts.footprint_sizes.replace(",", "+") if 4 in opts.parts else "none",
             opts.migration_size,
             str(opts.migration_runs if 5 in opts.parts else 0),
             str(opts.passes)]
    # Part 5 holds two guests' RAM at once.
    rig = run_rig(kernel, initramfs, words, timeout=5400, mem="4G")
    if "bench.json" not in rig.results:
        # The rig ran: a benchmark that fails there is a failure.
        raise RuntimeError("the rig's benchmark failed (%.0fs): %s" % (
            rig.wall, " | ".join(rig.console.strip().splitlines()[-12:])))
    res = json.loads(rig.results["bench.json"])
    keys = {3: "conversions", 4: "footprint", 5: "migration"}
    return {p: {"kernel": res["kernel"], keys[p]: res[keys[p]]}
            for p in parts}, None


def host_parts_in_rig(opts, parts, lacking):
    """Parts 1 and 2 (those of parts) in a boot of the rig, for a host
    whose own KVM cannot run guests from a guest_memfd: ({part: raw
    data}, the rig's machine phrase)."""
    kernel, initramfs, why = build_rig()
    if why:
        raise RuntimeError("parts %s need KVM, which this host lacks (%s), "
                           "and the rig cannot be built: %s" % (
                               sorted(parts), lacking, why))
    sizes = [parse_size(x) for x in opts.sizes.split(",")]
    # Part 1's largest guest, written full in each of two backends' runs
    # one after the other, and the kernel's own.
    mem = max(max(sizes), parse_size(opts.prealloc_size)) * 2 + 2 * GiB
    # The rig's command line cannot hold commas.
    words = ["/usr/bin/python3", "bench/run.py", "--in-rig", "--runs", str(opts.runs),
             "--sizes", opts.sizes.replace(",", "+"),
             "--prealloc-size", opts.prealloc_size,
             "--parts", "+".join(str(p) for p in sorted(parts))]
    rig = run_rig(kernel, initramfs, words, timeout=5400, mem="%dM" % (mem // MiB))
    if "host-parts.json" not in rig.results:
        raise RuntimeError("parts %s failed in the rig (%.0fs): %s" % (
            sorted(parts), rig.wall,
            " | ".join(rig.console.strip().splitlines()[-12:])))
    res = json.loads(rig.results["host-parts.json"])
    return {int(p): d for p, d in res["parts"].items()}, res["machine"]


def in_rig_host_parts(opts):
    """bench/run.py --in-rig: parts 1 and 2 here, in the rig, with the
    floor programs the host built; the raw data to the results folder."""
    floors = {name: floor_path(name) for name in ("gmem-fallocate", "anon-populate")}
    data = {}
    if 1 in opts.parts:
        data[1] = startup_part(opts)
    if 2 in opts.parts:
        data[2] = prealloc_part(opts, floors)
    with open(os.path.join(os.environ["GM_RIG_RESULTS"], "host-parts.json"), "w") as f:
        json.dump({"parts": data, "machine": "the nested rig (%s)" % machine()}, f)
    return 0


def machine():
    """This machine, in a phrase."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s, %d CPUs, %d GiB, Linux %s" % (
        model, os.cpu_count(), meminfo("MemTotal") // GiB, os.uname().release)


def save(folder, part, data, meta, why=None):
    """folder/partN.json: a part's raw data and where it came from."""
    doc = {"meta": meta, "data": data}
    if why:
        doc["skipped"] = why
    with open(os.path.join(folder, "part%d.json" % part), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="256M,1G,4G")
    ap.add_argument("--prealloc-size", default="2G")
    ap.add_argument("--chunks", default="4K,64K,2M,1G",
                    help="conversion sizes of part 3")
    ap.add_argument("--footprint-sizes", default="256M,512M,1G",
                    help="guest RAM sizes of part 4")
    ap.add_argument("--migration-size", default="1G",
                    help="guest RAM of part 5")
    ap.add_argument("--migration-runs", type=int, default=7,
                    help="runs of each backend in part 5, whose run-to-run "
                    "spread in the rig is larger than the 5%% it measures")
    ap.add_argument("--parts", default="1,2,3,4,5",
                    help="which parts to run (1-2 on this host, 3-5 in the rig)")
    ap.add_argument("--passes", type=int, default=3,
                    help="part 3: passes per launch of QEMU or of the VMM")
    ap.add_argument("--smoke", action="store_true")
    # Parts 1 and 2 inside the rig (host_parts_in_rig); lists use '+'.
    ap.add_argument("--in-rig", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--outdir", help="results folder (default: docs/benchmarks, "
                    "or build/bench-smoke with --smoke)")
    opts = ap.parse_args()
    # A smoke run (the test command's) never overwrites a real run's data.
    opts.outdir = opts.outdir or (os.path.join(BUILD, "bench-smoke")
                                  if opts.smoke else report.DATA)
    os.makedirs(opts.outdir, exist_ok=True)
    if opts.smoke:
        opts.runs, opts.sizes, opts.prealloc_size = 1, "256M", "256M"
        opts.chunks, opts.footprint_sizes = "4K", "256M"
        opts.migration_size, opts.migration_runs = "128M", 1
        opts.passes = 2
    if opts.in_rig:
        opts.sizes = opts.sizes.replace("+", ",")
        opts.parts = {int(p) for p in opts.parts.split("+")}
        return in_rig_host_parts(opts)
    opts.parts = {int(p) for p in opts.parts.split(",")}
    # Parts 1 and 2 run on this host's KVM, or in the rig if it has none
    # that runs guests from a guest_memfd.
    _, lacking = gmem_mmap_lacking()
    floors = build_floors()

    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True).stdout.strip() or "unknown"

    def meta(t0):
        return {"commit": commit, "machine": machine(), "runs": opts.runs,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
                "args": " ".join(sys.argv[1:]) or "(defaults)",
                "wall": time.time() - t0}

    host_parts = opts.parts & {1, 2}
    if host_parts and lacking:
        print("bench: parts %s in the nested rig: this host's KVM cannot run "
              "them (%s)" % (sorted(host_parts), lacking), flush=True)
        t0 = time.time()
        data, where = host_parts_in_rig(opts, host_parts, lacking)
        for part in sorted(data):
            save(opts.outdir, part, data[part],
                 dict(meta(t0), machine=where + " on " + machine()))
            print("bench: part %d done" % part, flush=True)
        host_parts = set()
    for part, fn in ((1, lambda: startup_part(opts)),
                     (2, lambda: prealloc_part(opts, floors))):
        if part in host_parts:
            t0 = time.time()
            save(opts.outdir, part, fn(), meta(t0))
            print("bench: part %d done" % part, flush=True)
    if opts.parts & {3, 4, 5}:
        t0 = time.time()
        data, why = rig_parts(opts, floors)
        for part in data:
            save(opts.outdir, part, data[part],
                 dict(meta(t0), rig_parts=sorted(data)), why)

    lines = report.report(opts.outdir)
    if opts.outdir == report.DATA:
        report.write_docs(lines, opts.outdir)
    print("\n(written to %s: partN.json, results.md, results.png%s)" % (
        os.path.relpath(opts.outdir, ROOT),
        "; and docs/benchmarks.md" if opts.outdir == report.DATA else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
