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
from rig import build_rig, report_results, run_build, run_rig, wanted

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
    report_results(report, PREFIX, res, sub)
