"""Helpers for the migration and snapshot tests, on this host and in the
rig: a guest that keeps bumping a counter in every page of its first
range (the payload's FLAG_COUNTER), so that a page a migration or a
restore got wrong makes the guest itself fail.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import ctypes
import fcntl
import mmap
import os
import re
import struct
import time

from gmemtest import (DEFAULT_SEED, FLAG_COUNTER, FLAG_HALT, KIND_GUEST,
                      KVM_CREATE_VM, Qemu, counter_passes, guest_hangs,
                      payload_args)

MiB = 1 << 20
GMEM = "memory-backend-guest-memfd"
BASE = MiB                       # the counter range starts here
COUNTER = re.compile(r"^COUNTER 0x([0-9a-f]{16})$", re.M)

# <linux/kvm.h>
KVM_CREATE_GUEST_MEMFD = 0xC040AED4
KVM_SET_USER_MEMORY_REGION2 = 0x40A0AE49
KVM_MEM_LOG_DIRTY_PAGES = 1
KVM_MEM_GUEST_MEMFD = 1 << 2
GUEST_MEMFD_FLAGS = 3            # MMAP | INIT_SHARED


def ram_args(kind, size, mem_id="m0"):
    """The -object for the guest's RAM: kind is 'gmem', 'memfd' or 'ram'."""
    backend = {"gmem": GMEM, "memfd": "memory-backend-memfd",
               "ram": "memory-backend-ram"}[kind]
    return ["-object", "%s,id=%s,size=%d" % (backend, mem_id, size),
            "-m", "%dM" % (size // MiB)]


def counter_vm(kind, size, counted=None, incoming=None, extra=(),
               accel="kvm", paused=False, machine=""):
    """A QEMU whose guest bumps the counter over [BASE, BASE + counted)
    (all of RAM above 1 MiB by default) and halts if a page is wrong.
    incoming: QEMU's -incoming URI, for a destination."""
    counted = counted or size - BASE
    blob = payload_args([(BASE, counted, KIND_GUEST, 0)],
                        flags=FLAG_COUNTER | FLAG_HALT)
    args = ram_args(kind, size) + list(extra)
    if incoming:
        args += ["-incoming", incoming]
    if paused:
        args += ["-S"]
    return Qemu(args, accel=accel, args_blob=blob,
                extra_machine=",memory-backend=m0" + machine)


def counters(vm, since=0):
    """The counters the guest printed so far (after the first `since`
    characters of its output), in order."""
    return [int(x, 16) for x in COUNTER.findall(vm.output()[since:])]


def assert_no_failure(vm):
    out = vm.output()
    assert "RESULT FAIL" not in out, "the guest found a wrong page: " + \
        [line for line in out.splitlines() if "RESULT FAIL" in line][0]


def wait_counter(vm, above, timeout=120, since=0):
    """Wait until the guest prints a counter above `above` (after the first
    `since` characters of its output); return it."""
    deadline = time.time() + timeout
    while True:
        assert_no_failure(vm)
        seen = counters(vm, since)
        if seen and seen[-1] > above:
            return seen[-1]
        if vm.proc.poll() is not None:
            raise RuntimeError("QEMU exited (%d): %s" % (vm.proc.returncode,
                                                         vm.errors()))
        if time.time() > deadline:
            # In the rig, a vCPU stopped where the payload never runs is
            # the rig's TCG (RigCorrupted: in_rig.py runs the test again).
            guest_hangs(vm.qmp.hmp, "the guest's counter stayed at %r for "
                        "%ds; console tail: %r; %s" % (
                            seen[-1:], timeout, vm.output()[-300:],
                            vm_state(vm)))
        time.sleep(0.05)


def vm_state(vm):
    """What QEMU says of the VM, for a failure's message (guest_hangs()
    adds the vCPUs' RIPs)."""
    try:
        return "status %s; stderr: %s" % (
            vm.qmp.cmd("query-status")["status"],
            " | ".join(vm.errors().strip().splitlines()[:6]))
    except Exception as e:
        return "QEMU does not answer (%s)" % e


def wait_migration(vm, timeout=300):
    """Wait until the migration on vm ends, outgoing or incoming (a
    destination reports its load through query-migrate too); return
    query-migrate."""
    deadline = time.time() + timeout
    while True:
        info = vm.qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        assert time.time() < deadline, "migration still %r after %ds" % (
            info.get("status"), timeout)
        time.sleep(0.05)


def snapshot(vm, counted):
    """The counter range as QEMU reads it (pmemsave), checked to be what
    the guest's passes leave: (bytes, counter of its first page)."""
    data = vm.read_memory(BASE, counted)
    first, _ = counter_passes(data, BASE, DEFAULT_SEED)
    return data, first


def kvm_logs_gmem_dirty_pages():
    """Whether this kernel's KVM logs dirty pages of guest_memfd memslots
    in a VM of the default type (what QEMU asks a scratch VM too), or None
    if it cannot even map a guest_memfd."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    finally:
        os.close(kvm)
    try:
        try:
            gmem = fcntl.ioctl(vm, KVM_CREATE_GUEST_MEMFD, bytearray(
                struct.pack("<QQ48x", 4096, GUEST_MEMFD_FLAGS)), True)
        except OSError:
            return None
        try:
            m = mmap.mmap(gmem, 4096, mmap.MAP_SHARED)
        except OSError:
            os.close(gmem)
            return None
        view = ctypes.c_char.from_buffer(m)
        addr = ctypes.addressof(view)
        del view                    # m cannot close while it is exported
        region = bytearray(struct.pack("<IIQQQQII112x", 0,
                             KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES,
                             0, 4096, addr, 0, gmem, 0))
        try:
            fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION2, region, True)
            ok = True
        except OSError:
            ok = False
        m.close()
        os.close(gmem)
        return ok
    finally:
        os.close(vm)
