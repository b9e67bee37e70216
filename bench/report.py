#!/usr/bin/python3
"""The benchmark's tables and plot, made from the raw data that
bench/run.py keeps: one JSON file per part (partN.json) in a results
folder, each with the commit, machine, date and command line it came
from.  Nothing in the tables is typed in by hand.

  bench/report.py [DIR] [--docs]

DIR defaults to docs/benchmarks, the data of the last full `make bench`
(kept in the repository).  Writes DIR/results.md and DIR/results.png;
with --docs, also replaces everything below the marker line of
docs/benchmarks.md with DIR/results.md.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
DATA = os.path.join(ROOT, "docs", "benchmarks")
MARKER = "<!-- Everything below is written by bench/report.py; do not edit. -->"

MiB = 1 << 20
GiB = 1 << 30
BACKENDS = ["memory-backend-guest-memfd", "memory-backend-memfd",
            "memory-backend-ram"]
SHORT = {"memory-backend-guest-memfd": "guest-memfd",
         "memory-backend-memfd": "memfd", "memory-backend-ram": "ram"}
TITLES = {1: "Start-up to the payload's result, every page written once",
          2: "Preallocation (GiB/s; higher is better)",
          3: "Conversions in the rig (higher is better)",
          4: "Host footprint after a conversion storm (ideal: 1.00)",
          5: "Live migration in the rig (lower is better; goal: within 5% of memfd)"}


def human(n):
    return "%d GiB" % (n // GiB) if n % GiB == 0 else "%d MiB" % (n // MiB)


def human_chunk(n):
    return "%d KiB" % (n >> 10) if n < MiB else human(n)


def rate(v):
    return "%.0f" % v if v >= 10 else "%.2f" % v


def med(values):
    return statistics.median(values)


def fmt(values, unit_fn):
    """The median of values with [min–max], each through unit_fn."""
    return "%s [%s–%s]" % (unit_fn(med(values)), unit_fn(min(values)),
                           unit_fn(max(values)))


def provenance(meta, runs):
    """Where a part's figures come from, as a sentence; runs: how many
    runs each figure is the median of."""
    took = "%.0f s" % meta["wall"]
    if "rig_parts" in meta:
        took += " for one rig run of parts %s" % ", ".join(
            str(p) for p in meta["rig_parts"])
    return ("From `bench/run.py %s` at commit %s, %s (%s); %s.  "
            "Median of %d run(s) [min–max]." % (
                meta["args"], meta["commit"], meta["date"], took,
                meta["machine"], runs))


def startup_table(data, out, plot):
    out("| RAM | prealloc | backend | time (s) | vs memfd | host memory held | vs memfd |")
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for size in data["sizes"]:
        for prealloc in (False, True):
            runs = {b: [r for r in data["runs"] if r["size"] == size and
                        r["prealloc"] == prealloc and r["backend"] == b]
                    for b in BACKENDS}
            base_t = med([r["seconds"] for r in runs["memory-backend-memfd"]])
            base_m = med([r["held"] for r in runs["memory-backend-memfd"]])
            for backend in BACKENDS:
                t = [r["seconds"] for r in runs[backend]]
                m = [r["held"] for r in runs[backend]]
                if not prealloc:
                    plot["startup"].append((size, backend, med(t)))
                out("| %s | %s | %s | %s | %.2f | %s | %.2f |" % (
                    human(size), "on" if prealloc else "off", SHORT[backend],
                    fmt(t, lambda v: "%.2f" % v), med(t) / base_t,
                    fmt(m, lambda v: "%d MiB" % (v // MiB)), med(m) / base_m))


def prealloc_table(data, out, plot):
    size = data["size"]
    out("%s, each run in a QEMU of its own started with `prealloc=off` and "
        "`-S`: the time `qom-set prealloc=true` takes over QMP (a QMP round "
        "trip alone took %s ms).  The floor programs allocate the same in "
        "one call with no QEMU." % (human(size), fmt(
            [r["roundtrip"] * 1000 for r in data["runs"] if "roundtrip" in r],
            lambda v: "%.2f" % v)))
    out()
    out("| what | GiB/s | vs floor (guest_memfd fallocate) |")
    out("| --- | --- | --- |")
    whats = []
    for r in data["runs"]:
        if r["what"] not in whats:
            whats.append(r["what"])
    gibs = {w: [size / GiB / r["seconds"] for r in data["runs"] if r["what"] == w]
            for w in whats}
    floor = med(gibs[whats[0]])
    for w in whats:
        out("| %s | %s | %.2f |" % (w, fmt(gibs[w], lambda x: "%.2f" % x),
                                    med(gibs[w]) / floor))


def launch_passes(conversions):
    """Part 3's passes per launch (bench/run.py --passes), each a figure;
    1 for data from before it made several."""
    return conversions[0].get("passes", 1) if conversions else 1


def passes_said(conversions):
    """How many passes a launch made, as part of a sentence."""
    passes = launch_passes(conversions)
    if passes == 1:
        return "one pass per launch of QEMU or of a floor;"
    return ("%d passes per launch of QEMU or of a floor, each a figure "
            "of its own (the first after a launch among them);" % passes)


def conversion_table(data, out, plot):
    out("Linux %s in the rig, nested under TCG (-cpu max): absolute figures are "
        "the rig's, the ratios are what counts.  A pass converts the range "
        "chunk by chunk, one hypercall each; %s everything compared "
        "interleaved, run by run.  *two-copy*: QEMU with mmap=off (private "
        "pages in the guest_memfd, shared ones in a memfd, the side left freed); *in "
        "place*: QEMU with mmap=on (one guest_memfd, KVM_SET_MEMORY_ATTRIBUTES2 "
        "on it); *VMM*: the floor with the guest's exits, a minimal VMM of ours "
        "(bench/floor/vmm.c) whose guest makes the same hypercalls, answered "
        "with the same calls, in a VM shaped like QEMU's (2 GiB, one "
        "guest_memfd memslot, KVM's irqchip and PIT, a 64-bit guest); "
        "*no vCPU*: the two-copy calls alone "
        "(bench/floor/convert.c).  Goals: in place at least 2x two-copy from "
        "2 MiB up; QEMU at least 0.8 of the VMM at 4 KiB, 0.95 from 2 MiB." %
        (data["kernel"], passes_said(data["conversions"])))
    out()
    out("| chunk | direction | conversions | two-copy: QEMU conv/s | in place: "
        "QEMU conv/s | in place / two-copy | QEMU / VMM, two-copy | QEMU / VMM, "
        "in place | VMM two-copy: conv/s | VMM in place: conv/s | no vCPU: "
        "conv/s | two-copy QEMU / no vCPU |")
    out("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c in data["conversions"]:
        n = c["total"] // c["chunk"]
        for i, direction in enumerate(("shared->private", "private->shared")):
            rates = {k: [n / r[i] for r in c.get(k, [])]
                     for k in ("ours", "in_place", "vmm", "vmm_in_place", "floor")}

            def ratio(a, b):
                if not rates[a] or not rates[b]:
                    return "-"
                return "%.2f" % (med(rates[a]) / med(rates[b]))

            def col(k):
                return fmt(rates[k], rate) if rates[k] else "-"
            out("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                human_chunk(c["chunk"]), direction, n, col("ours"),
                col("in_place"), ratio("in_place", "ours"), ratio("ours", "vmm"),
                ratio("in_place", "vmm_in_place"), col("vmm"),
                col("vmm_in_place"), col("floor"), ratio("ours", "floor")))
            gib = {k: med(v) * c["chunk"] / GiB if v else 0
                   for k, v in rates.items()}
            plot["conversions"].append((c["chunk"], direction, gib))


def footprint_table(data, out, plot):
    out("Bytes of host memory holding guest RAM (shmem + guest_memfd pages) per "
        "byte of RAM, once the payload has written every page: in shared mode "
        "(mmap=on), and in private mode (a sw-protected-guest) after 160 "
        "conversions of 4 KiB to 2 MiB, each written on its new side; the two "
        "modes interleaved, run by run.  QEMU's own anonymous memory is shown "
        "apart.")
    out()
    out("| RAM | mode | held / RAM | held | private at the end | QEMU anonymous |")
    out("| --- | --- | --- | --- | --- | --- |")
    for f in data["footprint"]:
        runs = f["runs"]
        out("| %s | %s | %s | %s | %d MiB | %s |" % (
            human(f["size"]), f["mode"],
            fmt([r["held"] / f["size"] for r in runs], lambda v: "%.3f" % v),
            fmt([r["held"] for r in runs], lambda v: "%d MiB" % (v // MiB)),
            runs[0]["private"] // MiB,
            fmt([r["anon"] for r in runs], lambda v: "%d MiB" % (v // MiB))))


def migration_table(data, out, plot):
    res = data["migration"]
    out("A guest whose RAM is all written once, migrated to a second QEMU in the "
        "rig over a unix socket (no bandwidth cap, downtime limit 1 s), idle "
        "(halted) or writing %d MiB over and over; the runs of the two backends "
        "interleaved.  Each QEMU's vCPU runs on the rig's second CPU, its other "
        "threads (the migration's) on the first.  The rig's kernel (Linux %s) "
        "logs dirty pages of guest_memfd memslots "
        "(kernel-patches/gmem-dirty-log).  \"paired\" is the median of the "
        "ratios of runs done one after the other, which cancels the rig's drift "
        "over the part." % (res[0]["written"] // MiB, data["kernel"]))
    out()
    out("| RAM | guest | backend | total time (ms) | vs memfd | paired | "
        "downtime (ms) | vs memfd |")
    out("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in res:
        base = m["runs"]["memfd"]
        for kind, name in (("gmem", "guest-memfd"), ("memfd", "memfd")):
            runs = m["runs"][kind]
            paired = med([a[0] / b[0] for a, b in zip(runs, base)])
            out("| %s | %s | %s | %s | %.2f | %.2f | %s | %.2f |" % (
                human(m["size"]), "writing" if m["writing"] else "idle", name,
                fmt([r[0] for r in runs], lambda v: "%d" % v),
                med([r[0] for r in runs]) / med([r[0] for r in base]), paired,
                fmt([r[1] for r in runs], lambda v: "%d" % v),
                med([r[1] for r in runs]) / max(1, med([r[1] for r in base]))))
    out()
    retried = [r for m in res for r in m["retried"]]
    out("Runs done again after the destination failed: %d%s" % (
        len(retried), "".join("\n- " + r for r in retried)))


TABLES = {1: startup_table, 2: prealloc_table, 3: conversion_table,
          4: footprint_table, 5: migration_table}


def draw(plot, folder):
    """results.png: start-up times and conversion throughput, with
    gnuplot (its data files beside it); None if there is nothing to draw."""
    if not plot["startup"] and not plot["conversions"]:
        return None
    if not shutil.which("gnuplot"):
        raise RuntimeError("gnuplot is missing (scripts/setup-deps.sh installs it)")
    panels = []
    if plot["startup"]:
        with open(os.path.join(folder, "startup.dat"), "w") as f:
            for size in sorted({s for s, _, _ in plot["startup"]}):
                row = {b: t for s, b, t in plot["startup"] if s == size}
                f.write("\"%s\" %s\n" % (human(size), " ".join(
                    "%.3f" % row[b] for b in BACKENDS)))
        panels.append("""
set yrange [0:*]
unset logscale y
set title "Start-up to the payload's result, prealloc off (s, lower is better)"
plot "%(d)s/startup.dat" using 2:xtic(1) title "guest-memfd", \
     "" using 3 title "memfd", "" using 4 title "ram"
""")
    if plot["conversions"]:
        with open(os.path.join(folder, "conversions.dat"), "w") as f:
            for chunk, direction, gib in plot["conversions"]:
                f.write("\"%s %s\" %s\n" % (
                    human_chunk(chunk).replace(" ", ""),
                    direction.split("->")[1], " ".join(
                        "%.4f" % gib[k] for k in ("ours", "in_place", "vmm",
                                                  "vmm_in_place"))))
        panels.append("""
set title "Conversions in the rig (GiB/s, log scale, higher is better)"
set logscale y
set yrange [*:*]
set xtics rotate by -30
plot "%(d)s/conversions.dat" using 2:xtic(1) title "QEMU, two-copy", \
     "" using 3 title "QEMU, in place", "" using 4 title "VMM floor, two-copy", \
     "" using 5 title "VMM floor, in place"
""")
    png = os.path.join(folder, "results.png")
    script = ("""
set terminal pngcairo size %(w)d,500 font ",10"
set output "%(png)s"
set multiplot layout 1,%(n)d
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
""" + "".join(panels) + "unset multiplot\n") % {
        "png": png, "d": folder, "n": len(panels), "w": 600 * len(panels)}
    p = subprocess.run(["gnuplot"], input=script, universal_newlines=True,
                       stderr=subprocess.PIPE)
    if p.returncode:
        raise RuntimeError("gnuplot failed: " + p.stderr.strip())
    return png


def load(folder):
    """{part number: its JSON} for the parts whose data folder holds."""
    parts = {}
    for n in TABLES:
        path = os.path.join(folder, "part%d.json" % n)
        if os.path.exists(path):
            with open(path) as f:
                parts[n] = json.load(f)
    return parts


def report(folder, out=print):
    """Write folder/results.md and results.png from its partN.json files;
    return the lines of results.md."""
    parts = load(folder)
    lines = []

    def emit(line=""):
        out(line)
        lines.append(line)

    plot = {"startup": [], "conversions": []}
    emit("# Benchmarks")
    emit()
    for n, part in sorted(parts.items()):
        emit("## %d. %s" % (n, TITLES[n]))
        emit()
        runs = part["meta"]["runs"]
        if n == 5 and "skipped" not in part:
            # Part 5 makes --migration-runs runs, not --runs.
            runs = len(part["data"]["migration"][0]["runs"]["memfd"])
        if n == 3 and "skipped" not in part:
            # Every pass of a launch is a figure (bench/run.py --passes).
            runs *= launch_passes(part["data"]["conversions"])
        emit(provenance(part["meta"], runs))
        emit()
        if "skipped" in part:
            emit("Skipped: " + part["skipped"])
        else:
            TABLES[n](part["data"], emit, plot)
        emit()
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    draw(plot, folder)
    return lines


def write_docs(lines, folder):
    """docs/benchmarks.md: its hand-written part (the method) as it is,
    then the figures of folder."""
    with open(DOCS) as f:
        text = f.read()
    if MARKER not in text:
        raise RuntimeError("%s has no marker line %r" % (DOCS, MARKER))
    rel = os.path.relpath(folder, os.path.dirname(DOCS))
    head = text.split(MARKER)[0]
    body = ["", "## Latest figures", "",
            "Raw data, tables and plot: [%s/](%s/) (regenerate with "
            "`bench/report.py --docs`)." % (rel, rel), "",
            "![Start-up times and conversion throughput](%s/results.png)" % rel,
            ""]
    # The report's own title is the document's.
    for line in lines[2:]:
        body.append("#" + line if line.startswith("## ") else line)
    with open(DOCS, "w") as f:
        f.write(head + MARKER + "\n" + "\n".join(body).rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=DATA)
    ap.add_argument("--docs", action="store_true",
                    help="also rewrite the figures in docs/benchmarks.md")
    opts = ap.parse_args()
    lines = report(opts.folder, out=lambda line="": None)
    if not lines[2:]:
        print("bench/report.py: no partN.json in " + opts.folder, file=sys.stderr)
        return 1
    if opts.docs:
        write_docs(lines, opts.folder)
    print("written: %s/results.md, results.png%s" % (
        os.path.relpath(opts.folder, ROOT), ", docs/benchmarks.md" if opts.docs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
