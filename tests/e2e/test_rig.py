"""The nested rig (tests/rig): builds the project's kernel (or finds it
cached) and the initramfs, boots the rig once under TCG and runs
tests/rig/rig_tests.py in it.  Each in-rig test is reported as its own
result.  If the kernel or the rig cannot be built or booted, the rig
tests are reported as SKIP or FAIL with the reason, never as passed.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import re

from rig import build_initramfs, build_kernel, run_rig

LINE = re.compile(r"^(PASS|FAIL|SKIP) (\S+)(?: \(([\d.]+)s\))?(?:: (.*))?$")


def run_all(report, select=""):
    kernel, why = build_kernel()
    if not kernel:
        report("SKIP", "rig/all", why)
        return
    initramfs, why = build_initramfs()
    if not initramfs:
        report("SKIP", "rig/all", why)
        return
    words = ["/usr/bin/python3", "tests/rig/in_rig.py"]
    if select:
        words.append(select)
    res = run_rig(kernel, initramfs, words)
    lines = res.results.get("results.txt", "").splitlines()
    seen = 0
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        seen += 1
        status, name, secs, detail = m.groups()
        report(status, "rig/" + name, detail or "", float(secs) if secs else None)
    tail = " | ".join(res.console.strip().splitlines()[-8:])
    if res.exit_code is None:
        report("FAIL", "rig/boot", "the rig did not run its tests (%.0fs): %s"
               % (res.wall, tail))
    elif res.exit_code != 0:
        report("FAIL", "rig/runner", "in-rig runner exited %d: %s"
               % (res.exit_code, tail))
    elif not seen:
        report("FAIL", "rig/runner", "no in-rig test reported: " + tail)
    else:
        print("# rig: %d in-rig results, %.1fs wall for the whole rig run"
              % (seen, res.wall), flush=True)
