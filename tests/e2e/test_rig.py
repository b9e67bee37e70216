"""The nested rig (tests/rig): builds the project's kernel (or finds it
cached) and the initramfs, boots the rig once under TCG and runs
tests/rig/rig_tests.py in it; once more for Linux's KVM selftests
(tests/rig/kvm_selftests.py); on a host whose own KVM cannot run guests
from guest_memfd, once more for the host's KVM tests (HOST_MODULES).
Each in-rig test is reported as its own
result.  If the project's kernel, initramfs or selftests cannot be built,
or the rig cannot be booted, that is a FAIL with the reason, never a pass
or a skip; only Debian's kernels, when they cannot be downloaded, SKIP.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys

from gmemtest import ROOT, gmem_mmap_lacking
from rig import LINE, build_rig, report_results, run_build, run_rig, wanted
from runner import chosen

# The in-rig modules, for chosen()
sys.path.insert(0, os.path.join(ROOT, "tests", "rig"))



# Debian's own kernels, for what QEMU says on older ones: (name, package,
# version, sha256 of the .deb).
DEBIAN_KERNELS = [
    ("linux-6.1", "linux-image-6.1.0-56-amd64", "6.1.192-2",
     "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"),
    ("linux-6.12", "linux-image-6.12.95+deb12-amd64", "6.12.95-1~bpo12+1",
     "5e524b782be67cb0d6a2e7b51816a2ac519e573ef7324b9a63a4124365653ecc"),
]


# The rig tests (tests/rig/rig_tests.py) that run in the rig-hostile boot,
# on one TCG thread, rather than in the main one: live migration with
# KVM's dirty ring failed once under multi-threaded TCG in a fresh-clone
# run (2026-12-02): the nested guest started over, as after a triple
# fault, then stopped with a rig kernel address as its RIP, the
# disturbance hostile_tests.py describes.  The boot with in-place
# conversion off ran them under multi-threaded TCG still, and CI failed
# so there (2026-12-03, live_migration_dirty_ring: the guest stopped at
# that same RIP during the migration): it runs them on one thread too.
ONE_THREAD = "live_migration"


# Rig boots with one of the kernel series' switches off: (name, kernel
# arguments, in-rig modules with the tests to run of each, and those to
# run in a second boot on one TCG thread, as the rig-hostile and
# kvm-selftests boots do with the switches on).
SWITCHED_OFF = [
    # The host's refusals of live migration too: they need a KVM that
    # does not log guest_memfd's dirty pages, which no host may have.
    ("rig-gmem_dirty_logging=0", "kvm.gmem_dirty_logging=0",
     ["rig_tests:migration", "kvm_selftests:guest_memfd_test",
      "test_migration:live_migration_refused",
      "test_migration:resumed_during_migration"], []),
    # Linux 7.2's VM-wide memory attributes: everything the rig tests
    # and the selftests do still works.
    ("rig-gmem_in_place_conversion=0", "kvm.gmem_in_place_conversion=0",
     ["rig_tests:!" + ONE_THREAD], ["rig_tests:" + ONE_THREAD, "kvm_selftests"]),
]


# The host's end-to-end tests that need KVM with a mappable guest_memfd
# (Linux 6.18+).  On a host whose KVM cannot run them (none at all, as on
# machines that are themselves guests without nested KVM, or too old a
# kernel) they SKIP there and run in a rig boot of their own instead, on
# the rig kernel's KVM, named host-in-rig/<module>/<test>; so do the cases of
# our qtest that need KVM (tests/rig/qtest_kvm.py).
HOST_MODULES = ["test_payload", "test_backend", "test_migration", "test_libvirt",
                "qtest_kvm"]


def build_rig_and_selftests():
    """The rig, and Linux's KVM selftests built from its kernel's tree:
    (kernel, initramfs, None), or a reason as the third if either cannot
    be built."""
    kernel, initramfs, why = build_rig()
    if not why:
        _, why = run_build("tests/rig/build-selftests.sh", "the KVM selftests")
    return kernel, initramfs, why


def rig_group(report, select, prefix, run, selftests=False):
    """Run the rig group prefix if select wants it: build the rig (and
    Linux's KVM selftests, if selftests), then run(sub, kernel, initramfs)
    with the in-rig filter.  The project's own kernel, initramfs and
    selftests must build: if one does not, the group FAILs, naming it."""
    sub = wanted(prefix, select)
    if sub is None:
        return
    kernel, initramfs, why = build_rig_and_selftests() if selftests else build_rig()
    if why:
        report("FAIL", prefix + "/build", why)
    else:
        run(sub, kernel, initramfs)


def run_all(report, select=""):
    def main_rig(sub, kernel, initramfs):
        if sub and ONE_THREAD in sub:
            print("# rig: the %s tests run in the rig-hostile boot: -k "
                  "rig-hostile/%s" % (ONE_THREAD, sub), flush=True)
            return
        # The Linux test guest's initramfs (the rig's root is read-only).
        _, why = run_build("tests/guest/linux/build.sh", "the Linux test guest")
        if why:
            report("FAIL", "rig/linux-guest-build", why)
        run_one(report, "rig", kernel, initramfs, ["rig_tests:!" + ONE_THREAD],
                sub)
    rig_group(report, select, "rig", main_rig)

    _, lacking = gmem_mmap_lacking()
    if lacking:
        def host_rig(sub, kernel, initramfs):
            print("# host-in-rig: this host's KVM cannot run the KVM tests (%s): "
                  "they run in the rig" % lacking, flush=True)
            # test_backend preallocates 4 GiB at run time.
            run_one(report, "host-in-rig", kernel, initramfs, HOST_MODULES, sub,
                    timeout=1800, mem="6G")
        rig_group(report, select, "host-in-rig", host_rig)

    # Two-vCPU guests that run long (tests/rig/hostile_tests.py: the
    # conversion race, the hostile guest), in a boot of its own
    # whose TCG runs the rig's vCPUs on one thread: multi-threaded TCG
    # disturbs a two-vCPU nested guest that long (the module says how).
    # So the rig tests of live migration, whose guest and QEMU threads keep
    # both of the rig's vCPUs busy for a minute: see ONE_THREAD.
    rig_group(report, select, "rig-hostile",
              lambda sub, kernel, initramfs: run_one(
                  report, "rig-hostile", kernel, initramfs,
                  ["hostile_tests", "rig_tests:" + ONE_THREAD], sub,
                  accel="tcg,thread=single", timeout=600))

    # The documented sw-protected-guest command line as the first QEMU in
    # freshly booted rigs (tests/rig/first_qemu.py): once a hang in 4 of
    # 12; 8 boots would show that rate with 96% odds.
    rig_group(report, select, "rig-first-qemu",
              lambda sub, kernel, initramfs: first_qemu(report, kernel, initramfs))

    # Linux's own KVM selftests for guest_memfd and private memory, built
    # from the rig kernel's tree (tests/rig/build-selftests.sh), on one
    # TCG thread too: x86/private_mem_conversions_test's two-vCPU variant
    # once got a triple fault (KVM_EXIT_SHUTDOWN) under multi-threaded
    # TCG in a fresh-clone run, and 40 runs of it in a rig booted for it
    # alone were clean: the same disturbance as the hostile guest's.
    rig_group(report, select, "kvm-selftests",
              lambda sub, kernel, initramfs: run_one(
                  report, "kvm-selftests", kernel, initramfs, "kvm_selftests", sub,
                  accel="tcg,thread=single"),
              selftests=True)

    # The kernel series' switches turned off: what QEMU and the selftests
    # do on a kernel that has the series but does not use it.
    for name, kernel_args, modules, one_thread in SWITCHED_OFF:
        def switched_off(sub, kernel, initramfs, name=name,
                         kernel_args=kernel_args, modules=modules,
                         one_thread=one_thread):
            run_one(report, name, kernel, initramfs, modules, sub,
                    kernel_args=kernel_args)
            if one_thread:
                run_one(report, name, kernel, initramfs, one_thread, sub,
                        kernel_args=kernel_args, accel="tcg,thread=single")
        rig_group(report, select, name, switched_off, selftests=True)

    for name, pkg, version, sha in DEBIAN_KERNELS:
        sub = wanted(name, select)
        if sub is None:
            continue
        p = subprocess.run([os.path.join(ROOT, "tests", "rig", "build-debian-kernel.sh"),
                            pkg, version, sha], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode:
            report("SKIP", name + "/all", "%s %s cannot be had: %s"
                   % (pkg, version, p.stderr.strip()[-300:]))
            continue
        kernel, initramfs = p.stdout.split()[-2:]
        run_one(report, name, kernel, initramfs, "oldkernel_tests", sub)


def first_qemu(report, kernel, initramfs, boots=8):
    name = "rig-first-qemu/documented_command_line_in_%d_fresh_rigs" % boots
    words = ["/usr/bin/python3", "tests/rig/in_rig.py", "--module", "first_qemu"]
    failed, seen, wall = [], [], 0.0
    for boot in range(boots):
        res = run_rig(kernel, initramfs, words)
        wall += res.wall
        lines = [LINE.match(line) for line in
                 res.results.get("results.txt", "").splitlines()]
        lines = [m for m in lines if m]
        if not lines:
            failed.append("boot %d: no result: %s" % (boot, res.console[-300:]))
        elif lines[0].group(1) != "PASS":
            failed.append("boot %d: %s" % (boot, lines[0].group(4)))
        else:
            seen.append(lines[0].group(4))
    if failed:
        report("FAIL", name, "%d of %d: %s" % (len(failed), boots, " || ".join(failed)),
               wall)
    else:
        report("PASS", name, "%d of %d booted; %s" % (boots, boots, seen[0]), wall)


def run_one(report, prefix, kernel, initramfs, modules, select, kernel_args="",
            **rig_args):
    """Boot the rig once and run the tests of modules (a name, or a list of
    'name:substring') in it, each reported as its own result; rig_args go
    to run_rig (accel, timeout)."""
    modules = [modules] if isinstance(modules, str) else modules
    # A boot none of whose tests are chosen (-k) would report nothing,
    # which report_results() counts as a failure: no boot then.
    if not chosen(modules, select):
        return
    words = ["/usr/bin/python3", "tests/rig/in_rig.py"]
    for m in modules:
        words += ["--module", m]
    if select:
        words.append(select)
    res = run_rig(kernel, initramfs, words, kernel_args=kernel_args, **rig_args)
    report_results(report, prefix, res)
