"""The benchmark runs its smallest size to the end (a smoke test; the
figures themselves are not judged here).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess

from gmemtest import BUILD, ROOT, require_gmem_mmap


def test_bench_smoke():
    require_gmem_mmap()
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "run.py"),
                        "--smoke"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:]
    rows = [l for l in p.stdout.splitlines()
            if l.startswith("| 256 MiB | off |") or l.startswith("| 256 MiB | on |")]
    assert len(rows) == 6, p.stdout
    assert "| guest-memfd, prealloc-threads=2 |" in p.stdout, p.stdout
    assert os.path.getsize(os.path.join(BUILD, "bench", "results.png")) > 0
    # Parts 3 and 4 run in the rig (whose own tests say why, if it cannot).
    skipped = [l for l in p.stdout.splitlines() if l.startswith("Skipped (")]
    if skipped:
        return "%d start-up rows, preallocation table, plot; rig parts %s" % (
            len(rows), skipped[0].lower())
    conv = [l for l in p.stdout.splitlines() if l.startswith("| 4 KiB |")]
    assert len(conv) == 2, p.stdout
    foot = [l for l in p.stdout.splitlines()
            if l.startswith("| 256 MiB | shared |") or l.startswith("| 256 MiB | private |")]
    assert len(foot) == 2, p.stdout
    mig = [l for l in p.stdout.splitlines()
           if l.startswith("| 128 MiB | idle |") or l.startswith("| 128 MiB | writing |")]
    assert len(mig) == 4, p.stdout
    return "%d start-up rows, preallocation, conversions, footprint and " \
        "migration tables, plot" % len(rows)
