"""The arm64 rig: the project's kernel built for arm64
(kernel-patches/build.sh --arch arm64, Debian's cross compiler) on QEMU's
virt machine with EL2 (virtualization=on, -cpu max), under TCG by the
qemu-system-aarch64 of the project's own build, with KVM inside it.
Linux's KVM selftests for guest_memfd, built for arm64 from that
kernel's tree, run in it (tests/rig/arm64_selftests.sh), each reported
as arm64/kvm-selftests/<name>.  `tests/run.py -k arm64` selects them.

What is not here yet (issue #14): QEMU itself inside the arm64 rig (a
cross-built qemu-system-aarch64 and its arm64 libraries), an arm64
payload and the backend's tests on arm64 KVM.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from gmemtest import QEMU_AARCH64
from rig import LINE, build_rig, run_build, run_rig, wanted

PREFIX = "arm64"


def run_all(report, select=""):
    sub = wanted(PREFIX, select)
    if sub is None:
        return
    if not os.access(QEMU_AARCH64, os.X_OK):
        report("FAIL", PREFIX + "/build", "%s is not built (scripts/build-qemu.sh "
               "builds it beside qemu-system-x86_64)" % QEMU_AARCH64)
        return
    kernel, initramfs, why = build_rig("arm64")
    selftests = None
    if not why:
        selftests, why = run_build("tests/rig/build-selftests.sh",
                                   "the arm64 KVM selftests", ["--arch", "arm64"])
    if why:
        report("FAIL", PREFIX + "/build", why)
        return
    res = run_rig(kernel, initramfs, ["sh", "tests/rig/arm64_selftests.sh", selftests],
                  timeout=1500, arch="arm64")
    seen = 0
    for line in res.results.get("results.txt", "").splitlines():
        m = LINE.match(line)
        if not m:
            continue
        status, name, secs, detail = m.groups()
        if sub and sub not in name:
            continue
        seen += 1
        report(status, PREFIX + "/" + name, detail or "", float(secs) if secs else None)
    tail = " | ".join(res.console.strip().splitlines()[-8:])
    if res.exit_code is None:
        report("FAIL", PREFIX + "/boot", "the arm64 rig did not run its tests (%.0fs): %s"
               % (res.wall, tail))
    elif res.exit_code != 0:
        report("FAIL", PREFIX + "/runner", "the in-rig script exited %d: %s"
               % (res.exit_code, tail))
    elif not seen:
        report("FAIL", PREFIX + "/runner", "no arm64 test reported: " + tail)
    else:
        print("# %s: %d in-rig results, %.1fs wall for the whole rig run"
              % (PREFIX, seen, res.wall), flush=True)
