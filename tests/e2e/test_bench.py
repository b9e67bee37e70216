"""The benchmark runs its smallest size to the end (a smoke test; the
figures themselves are not judged here).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import os
import subprocess
import time

from gmemtest import BUILD, ROOT


OUTPUTS = ["results.png", "results.md"] + ["part%d.json" % n for n in range(1, 6)]


def assert_written(folder, names, start):
    """Each of names in folder was written since start (time.time()): a
    file left by an earlier run, or empty, does not count."""
    for name in names:
        path = os.path.join(folder, name)
        assert os.path.exists(path) and os.path.getsize(path) > 0 and \
            os.path.getmtime(path) >= start, \
            "this run did not write %s (missing, empty or older)" % path


def test_bench_smoke():
    # No skip on a host without KVM: the benchmark runs parts 1 and 2 in
    # the rig then, as it runs parts 3 to 5 anyway.
    start = time.time()
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "run.py"),
                        "--smoke"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:]
    rows = [l for l in p.stdout.splitlines()
            if l.startswith("| 256 MiB | off |") or l.startswith("| 256 MiB | on |")]
    assert len(rows) == 6, p.stdout
    assert "| guest-memfd, prealloc-threads=2 |" in p.stdout, p.stdout
    out = os.path.join(BUILD, "bench-smoke")
    assert_written(out, OUTPUTS, start)
    # Traceable: each part's raw data says where it came from.
    for n in range(1, 6):
        with open(os.path.join(out, "part%d.json" % n)) as f:
            meta = json.load(f)["meta"]
        assert meta["commit"] and meta["machine"] and "--smoke" in meta["args"], meta
    # Parts 3 and 4 run in the rig, which the project builds: their being
    # left out is a failure here, not a pass of the rest.
    skipped = [l for l in p.stdout.splitlines() if l.startswith("Skipped")]
    assert not skipped, "the benchmark left parts out: %s" % " | ".join(skipped)
    # Part 3: --smoke's two passes per launch, each a figure of its own
    with open(os.path.join(out, "part3.json")) as f:
        c = json.load(f)["data"]["conversions"][0]
    assert c["passes"] == 2, c
    for k in ("ours", "in_place", "floor", "vmm", "vmm_in_place"):
        assert len(c[k]) == 2 and all(len(x) == 2 and min(x) > 0 for x in c[k]), \
            (k, c[k])
    conv = [l for l in p.stdout.splitlines() if l.startswith("| 4 KiB |")]
    assert len(conv) == 2, p.stdout
    # Both models through QEMU and both of the VMM floor's, every column
    assert not [l for l in conv if "| - |" in l], conv
    foot = [l for l in p.stdout.splitlines()
            if l.startswith("| 256 MiB | shared |") or l.startswith("| 256 MiB | private |")]
    assert len(foot) == 2, p.stdout
    mig = [l for l in p.stdout.splitlines()
           if l.startswith("| 128 MiB | idle |") or l.startswith("| 128 MiB | writing |")]
    assert len(mig) == 4, p.stdout
    return "%d start-up rows, preallocation, conversions, footprint and " \
        "migration tables, plot" % len(rows)
