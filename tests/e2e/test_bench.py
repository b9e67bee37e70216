"""The benchmark runs its smallest size to the end (a smoke test; the
figures themselves are not judged here).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess

from gmemtest import ROOT, require_gmem_mmap


def test_bench_smoke():
    require_gmem_mmap()
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "run.py"),
                        "--smoke"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:]
    rows = [l for l in p.stdout.splitlines() if l.startswith("| 256 MiB |")]
    assert len(rows) == 6, p.stdout
    assert "| guest-memfd, prealloc-threads=2 |" in p.stdout, p.stdout
    return "%d start-up rows, preallocation table" % len(rows)
