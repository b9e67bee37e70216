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
And the rig once more on Debian's arm64 6.12 kernel, whose KVM has no
guest_memfd: what QEMU says there (arm64-linux-6.12/...).
`tests/run.py -k arm64` selects them.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from gmemtest import BUILD, QEMU_AARCH64
from rig import build_rig, report_results, run_build, run_rig, wanted

PREFIX = "arm64"

# Debian's own arm64 kernel before 6.18 (arm64 KVM without guest_memfd),
# for what QEMU says there: (name, package, version, sha256 of the .deb,
# as Debian's package index gives it)
DEBIAN_KERNELS = [
    ("arm64-linux-6.12", "linux-image-6.12.95+deb12-arm64", "6.12.95-1~bpo12+1",
     "08f6c01d4c68c5136106f51302d1b564f40325be2b6bfada71269929e9b5b336"),
]


def build_qemu_arm64():
    """(qemu, sysroot, None): the cross-built QEMU and its arm64
    libraries, or (None, None, reason)."""
    qemu, why = run_build("scripts/build-qemu.sh",
                          "qemu-system-aarch64 for arm64 hosts", ["--arm64"])
    sysroot = None
    if not why:
        sysroot, why = run_build("scripts/arm64-sysroot.sh", "the arm64 libraries")
    return qemu, sysroot, why


def run_all(report, select=""):
    groups = [wanted(PREFIX, select)] + [wanted(k[0], select) for k in DEBIAN_KERNELS]
    if all(sub is None for sub in groups):
        return
    if not os.access(QEMU_AARCH64, os.X_OK):
        report("FAIL", PREFIX + "/build", "%s is not built (scripts/build-qemu.sh "
               "builds it beside qemu-system-x86_64)" % QEMU_AARCH64)
        return
    # Without the cross-built QEMU the selftests still run; the backend's
    # tests then fail, saying what was not built.
    qemu, sysroot, why = build_qemu_arm64()
    if why:
        report("FAIL", PREFIX + "/build-qemu-arm64", why)
    if groups[0] is not None:
        run_main(report, groups[0], qemu, sysroot)
    for (name, pkg, version, sha), sub in zip(DEBIAN_KERNELS, groups[1:]):
        if sub is None or not qemu:
            continue
        kernel, why = run_build("tests/rig/build-debian-kernel.sh", "%s %s" % (pkg, version),
                                ["--arch", "arm64", pkg, version, sha])
        if why:
            report("SKIP", name + "/all", "%s %s cannot be had: %s" % (pkg, version, why))
            continue
        # It prints the kernel's path, then the initramfs's, beside it
        initramfs = kernel
        kernel = os.path.join(os.path.dirname(initramfs), "vmlinuz")
        res = run_rig(kernel, initramfs, ["sh", "tests/rig/arm64_backend.sh",
                                          "--old-kernel", qemu, sysroot],
                      timeout=900, arch="arm64")
        report_results(report, name, res, sub)


def run_main(report, sub, qemu, sysroot):
    kernel, initramfs, why = build_rig("arm64")
    selftests = None
    if not why:
        selftests, why = run_build("tests/rig/build-selftests.sh",
                                   "the arm64 KVM selftests", ["--arch", "arm64"])
    if why:
        report("FAIL", PREFIX + "/build", why)
        return
    payload = os.path.join(BUILD, "guest", "payload-arm64.elf")
    res = run_rig(kernel, initramfs, ["sh", "tests/rig/arm64_rig.sh", selftests,
                                      qemu or "/not-built", sysroot or "/not-built",
                                      payload, kernel, initramfs],
                  timeout=1500, arch="arm64")
    report_results(report, PREFIX, res, sub)
