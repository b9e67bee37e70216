"""The arm64 rig: the project's kernel built for arm64
(kernel-patches/build.sh --arch arm64, Debian's cross compiler) on QEMU's
virt machine with EL2 (virtualization=on, -cpu max), under TCG by the
qemu-system-aarch64 of the project's own build, with KVM inside it.
Linux's KVM selftests for guest_memfd, built for arm64 from that
kernel's tree, run in it (tests/rig/arm64_selftests.sh), each reported
as arm64/kvm-selftests/<name>.  Then memory-backend-guest-memfd on arm64
KVM (tests/rig/arm64_backend.sh), with qemu-system-aarch64 cross-built
for arm64 (scripts/build-qemu.sh --arm64, against Debian's arm64
libraries: scripts/arm64-sysroot.sh) and the arm64 payload
(tests/guest/payload-arm64.S), each reported as arm64/backend/<name>.
`tests/run.py -k arm64` selects them.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from gmemtest import BUILD, QEMU_AARCH64
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
    qemu = sysroot = None
    if not why:
        qemu, why = run_build("scripts/build-qemu.sh",
                              "qemu-system-aarch64 for arm64 hosts", ["--arm64"])
    if not why:
        sysroot, why = run_build("scripts/arm64-sysroot.sh", "the arm64 libraries")
    payload = os.path.join(BUILD, "guest", "payload-arm64.elf")
    if not why and not os.path.exists(payload):
        why = "%s is not built (make -C tests/guest builds it)" % payload
    if why:
        report("FAIL", PREFIX + "/build", why)
        return
    res = run_rig(kernel, initramfs, ["sh", "tests/rig/arm64_rig.sh", selftests,
                                      qemu, sysroot, payload, kernel, initramfs],
                  timeout=1500, arch="arm64")
    report_results(report, PREFIX, res, sub)
