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
   through QEMU, against the floor: a program of ours making the same
   KVM_SET_MEMORY_ATTRIBUTES and fallocate() calls with no guest and no
   QEMU (bench/in_rig.py, bench/floor/convert.c).
4. In the rig: host memory held per byte of guest RAM once every page
   has been written, in shared mode and in private mode after a storm of
   conversions, at several RAM sizes.
5. In the rig (its kernel logs guest_memfd's dirty pages): live
   migration of a guest whose RAM is memory-backend-guest-memfd against
   memory-backend-memfd, total time and downtime, the guest idle and
   writing.

Each figure is the median of several runs, with min and max.  Writes the
tables to build/bench/results.md and a plot to build/bench/results.png.

  bench/run.py [--runs N] [--sizes 256M,1G,4G] [--smoke]

--smoke runs the smallest size once, into build/bench-smoke so that it
never overwrites a real run's figures (the test command's check that the
benchmark runs to the end).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from gmemtest import (BUILD, FLAG_HALT, KIND_GUEST, ROOT, Qemu,  # noqa: E402
                      meminfo, payload_args, payload_result, proc_status,
                      require_gmem_mmap)
from rig import build_rig, run_rig  # noqa: E402

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
    for name in ("gmem-fallocate", "anon-populate", "convert"):
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


def rig_parts(opts, floors, out, plot):
    """Parts 3, 4 and 5 (those of opts.parts), in one boot of the rig."""
    kernel, initramfs, why = build_rig()
    if why:
        for part, title in ((3, "Conversions in the rig"),
                            (4, "Host footprint after a conversion storm"),
                            (5, "Live migration in the rig")):
            if part in opts.parts:
                out("## %d. %s" % (part, title))
                out()
                out("Skipped (the rig cannot be built): " + why)
                out()
        return
    # The rig's command line cannot hold commas; "none" skips a part.
    words = ["/usr/bin/python3", "bench/in_rig.py", floors["convert"],
             str(opts.runs),
             opts.chunks.replace(",", "+") if 3 in opts.parts else "none",
             opts.footprint_sizes.replace(",", "+") if 4 in opts.parts else "none",
             opts.migration_size,
             str(opts.migration_runs if 5 in opts.parts else 0)]
    # Part 5 holds two guests' RAM at once.
    rig = run_rig(kernel, initramfs, words, timeout=5400, mem="4G")
    if "bench.json" not in rig.results:
        # The rig ran: a benchmark that fails there is a failure.
        raise RuntimeError("the rig's benchmark failed (%.0fs): %s" % (
            rig.wall, " | ".join(rig.console.strip().splitlines()[-12:])))
    res = json.loads(rig.results["bench.json"])
    with open(os.path.join(opts.outdir, "rig.json"), "w") as f:
        f.write(rig.results["bench.json"])

    if 3 in opts.parts:
        conversion_table(res, out, plot)
    if 4 in opts.parts:
        footprint_table(res, out)
    if 5 in opts.parts:
        migration_table(res, out)


def conversion_table(res, out, plot):
    out("## 3. Conversions in the rig (higher is better)")
    out()
    out("Linux %s in the rig, nested under TCG (-cpu max): absolute figures are "
        "the rig's, the ratios are what counts.  A pass converts the range "
        "chunk by chunk, one hypercall each." % res["kernel"])
    out()
    out("| chunk | direction | conversions | ours: conversions/s | ours: GiB/s | "
        "floor: conversions/s | floor: GiB/s | ours / floor |")
    out("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in res["conversions"]:
        n = c["total"] // c["chunk"]
        for i, direction in enumerate(("shared->private", "private->shared")):
            ours = [n / r[i] for r in c["ours"]]
            floor = [n / r[i] for r in c["floor"]]
            ratio = statistics.median(ours) / statistics.median(floor)
            out("| %s | %s | %d | %s | %s | %s | %s | %.2f |" % (
                human_chunk(c["chunk"]), direction, n,
                fmt(ours, rate),
                fmt(ours, lambda v: "%.2f" % (v * c["chunk"] / GiB)),
                fmt(floor, rate),
                fmt(floor, lambda v: "%.2f" % (v * c["chunk"] / GiB)), ratio))
            plot["conversions"].append((c["chunk"], direction,
                                        statistics.median(ours) * c["chunk"] / GiB,
                                        statistics.median(floor) * c["chunk"] / GiB))
    out()


def footprint_table(res, out):
    out("## 4. Host footprint after a conversion storm (ideal: 1.00)")
    out()
    out("Bytes of host memory holding guest RAM (shmem + guest_memfd pages) per "
        "byte of RAM, once the payload has written every page: in shared mode "
        "(mmap=on), and in private mode (a sw-protected-guest) after 160 "
        "conversions of 4 KiB to 2 MiB, each written on its new side.  QEMU's "
        "own anonymous memory is shown apart.")
    out()
    out("| RAM | mode | held / RAM | held | private at the end | QEMU anonymous |")
    out("| --- | --- | --- | --- | --- | --- |")
    for f in res["footprint"]:
        runs = f["runs"]
        out("| %s | %s | %s | %s | %d MiB | %s |" % (
            human(f["size"]), f["mode"],
            fmt([r["held"] / f["size"] for r in runs], lambda v: "%.3f" % v),
            fmt([r["held"] for r in runs], lambda v: "%d MiB" % (v // MiB)),
            runs[0]["private"] // MiB,
            fmt([r["anon"] for r in runs], lambda v: "%d MiB" % (v // MiB))))
    out()


def migration_table(res, out):
    out("## 5. Live migration in the rig (lower is better; goal: within 5% of memfd)")
    out()
    out("A guest whose RAM is all written once, migrated to a second QEMU in the "
        "rig over a unix socket (no bandwidth cap, downtime limit 1 s), idle "
        "(halted) or writing %d MiB over and over; the runs of the two backends "
        "interleaved.  Each QEMU's vCPU runs on the rig's second CPU, its other "
        "threads (the migration's) on the first.  The rig's kernel logs dirty "
        "pages of guest_memfd memslots "
        "(kernel-patches/gmem-dirty-log)." % (res["migration"][0]["written"] // MiB))
    out()
    out("Median of %d runs of each backend [min–max]; \"paired\" is the median of "
        "the ratios of runs done one after the other, which cancels the rig's "
        "drift over the part." % len(res["migration"][0]["runs"]["memfd"]))
    out()
    out("| RAM | guest | backend | total time (ms) | vs memfd | paired | "
        "downtime (ms) | vs memfd |")
    out("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in res["migration"]:
        base = m["runs"]["memfd"]
        for kind, name in (("gmem", "guest-memfd"), ("memfd", "memfd")):
            runs = m["runs"][kind]
            paired = statistics.median(a[0] / b[0] for a, b in zip(runs, base))
            out("| %s | %s | %s | %s | %.2f | %.2f | %s | %.2f |" % (
                human(m["size"]), "writing" if m["writing"] else "idle", name,
                fmt([r[0] for r in runs], lambda v: "%d" % v),
                statistics.median(r[0] for r in runs) /
                statistics.median(r[0] for r in base), paired,
                fmt([r[1] for r in runs], lambda v: "%d" % v),
                statistics.median(r[1] for r in runs) /
                max(1, statistics.median(r[1] for r in base))))
    out()
    retried = [r for m in res["migration"] for r in m["retried"]]
    out("Runs done again after the destination failed: %d%s" % (
        len(retried), "".join("\n- " + r for r in retried)))
    out()


def rate(v):
    return "%.0f" % v if v >= 10 else "%.2f" % v


def human_chunk(n):
    return "%d KiB" % (n >> 10) if n < MiB else human(n)


def draw(plot, path):
    """A PNG of start-up times and conversion throughput, with gnuplot;
    None if gnuplot is missing or there is nothing to draw."""
    if not plot["startup"] or not shutil.which("gnuplot"):
        return None
    d = os.path.dirname(path)
    with open(os.path.join(d, "startup.dat"), "w") as f:
        for size in sorted({s for s, _, _ in plot["startup"]}):
            row = {b: t for s, b, t in plot["startup"] if s == size}
            f.write("\"%s\" %s\n" % (human(size), " ".join(
                "%.3f" % row[b] for b in BACKENDS)))
    with open(os.path.join(d, "conversions.dat"), "w") as f:
        for chunk, direction, ours, floor in plot["conversions"]:
            f.write("\"%s %s\" %.4f %.4f\n" % (
                human_chunk(chunk).replace(" ", ""), direction.split("->")[1],
                ours, floor))
    script = """
set terminal pngcairo size 1200,500 font ",10"
set output "%(png)s"
set multiplot layout 1,2
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
set yrange [0:*]
set title "Start-up to the payload's result, prealloc off (s, lower is better)"
plot "%(d)s/startup.dat" using 2:xtic(1) title "guest-memfd", \
     "" using 3 title "memfd", "" using 4 title "ram"
set title "Conversions in the rig (GiB/s, log scale, higher is better)"
set logscale y
set yrange [*:*]
set xtics rotate by -30
plot "%(d)s/conversions.dat" using 2:xtic(1) title "ours (guest hypercall via QEMU)", \
     "" using 3 title "floor (ioctl + fallocate)"
unset multiplot
""" % {"png": path, "d": d}
    if plot["conversions"] == []:
        script = script.replace("set multiplot layout 1,2", "").split(
            'set title "Conversions')[0]
    p = subprocess.run(["gnuplot"], input=script, universal_newlines=True,
                       stderr=subprocess.PIPE)
    if p.returncode:
        print("bench: gnuplot failed: " + p.stderr.strip(), file=sys.stderr)
        return None
    return path


def startup_part(opts, sizes, out, plot):
    out("## 1. Start-up to the payload's result, every page written once")
    out()
    out("| RAM | prealloc | backend | time (s) | vs memfd | host memory held | vs memfd |")
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        for prealloc in (False, True):
            # Interleaved: run i of every backend before run i + 1 of any,
            # so that a drift of the machine touches them all alike.
            res = {backend: ([], []) for backend in BACKENDS}
            for _ in range(opts.runs):
                for backend in BACKENDS:
                    t, m = startup_run(backend, size, prealloc)
                    res[backend][0].append(t)
                    res[backend][1].append(m)
            base_t = statistics.median(res["memory-backend-memfd"][0])
            base_m = statistics.median(res["memory-backend-memfd"][1])
            for backend in BACKENDS:
                t, m = res[backend]
                if not prealloc:
                    plot["startup"].append((size, backend, statistics.median(t)))
                out("| %s | %s | %s | %s | %.2f | %s | %.2f |" % (
                    human(size), "on" if prealloc else "off", SHORT[backend],
                    fmt(t, lambda v: "%.2f" % v), statistics.median(t) / base_t,
                    fmt(m, lambda v: "%d MiB" % (v // MiB)),
                    statistics.median(m) / base_m))
    out()


def prealloc_part(opts, floors, out):
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
    ap.add_argument("--smoke", action="store_true")
    opts = ap.parse_args()
    # A smoke run (the test command's) never overwrites a real run's output.
    opts.outdir = os.path.join(BUILD, "bench-smoke" if opts.smoke else "bench")
    os.makedirs(opts.outdir, exist_ok=True)
    if opts.smoke:
        opts.runs, opts.sizes, opts.prealloc_size = 1, "256M", "256M"
        opts.chunks, opts.footprint_sizes = "4K", "256M"
        opts.migration_size, opts.migration_runs = "128M", 1
    sizes = [parse_size(s) for s in opts.sizes.split(",")]
    opts.parts = {int(p) for p in opts.parts.split(",")}
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
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True).stdout.strip() or "unknown"
    out("Commit %s; parts %s (bench/run.py %s)." % (
        commit, ",".join(str(p) for p in sorted(opts.parts)), " ".join(sys.argv[1:])))
    out()
    plot = {"startup": [], "conversions": []}
    if 1 in opts.parts:
        startup_part(opts, sizes, out, plot)
    if 2 in opts.parts:
        prealloc_part(opts, floors, out)
    if opts.parts & {3, 4, 5}:
        rig_parts(opts, floors, out, plot)

    path = os.path.join(opts.outdir, "results.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    png = draw(plot, os.path.join(opts.outdir, "results.png"))
    print("\n(written to %s%s)" % (os.path.relpath(path, ROOT),
                                   " and " + os.path.relpath(png, ROOT) if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
