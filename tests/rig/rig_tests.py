"""Tests that run inside the nested rig (tests/rig/in_rig.py), on the
project's kernel, with the host's QEMU build on the rig's KVM.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import fcntl
import os

from gmemtest import (KIND_GUEST, Qemu, Skip, kvm_caps, payload_args,
                      payload_result, run_qemu, FLAG_HALT, KVM_CREATE_VM,
                      KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES,
                      KVM_CAP_GUEST_MEMFD_FLAGS, GUEST_MEMFD_FLAG_MMAP,
                      GUEST_MEMFD_FLAG_INIT_SHARED)

MiB = 1 << 20
KVM_X86_SW_PROTECTED_VM = 1
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3


def test_kvm():
    """The rig kernel's KVM works (nested SVM under TCG)."""
    caps, why = kvm_caps()
    assert caps, why
    assert caps["guest_memfd"] and caps["user_memory2"], caps
    return "kernel %s; default VM: %r" % (os.uname().release, caps)


def test_sw_protected_vm_type():
    """KVM_X86_SW_PROTECTED_VM exists and can make memory private."""
    kvm = os.open("/dev/kvm", os.O_RDWR)
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM)
        attrs = fcntl.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)
        flags = fcntl.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS)
        os.close(vm)
    finally:
        os.close(kvm)
    assert attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE, "attributes 0x%x" % attrs
    return "memory attributes 0x%x, guest_memfd flags 0x%x" % (attrs, flags)


def boot(ram_args, machine_extra, size):
    blob = payload_args([(MiB, size - MiB, KIND_GUEST, 0)])
    with Qemu(ram_args + ["-m", "%dM" % (size // MiB)], args_blob=blob,
              qmp=False, extra_machine=machine_extra) as vm:
        rc = vm.wait(120)
        result = payload_result(vm.output())
        assert result and result.startswith("RESULT PASS"), (vm.output(), vm.errors())
        assert rc == 1, "exit code %d: %s" % (rc, vm.errors())
        return result


def test_payload_on_rig_kvm():
    return boot(["-object", "memory-backend-ram,id=m0,size=64M"],
                ",memory-backend=m0", 64 * MiB)


def test_payload_in_guest_memfd_shared():
    """mmap=on on the rig kernel (7.2): the default VM type offers
    MMAP|INIT_SHARED.  With SMM on, QEMU maps RAM in a second address space
    and at q35's SMRAM alias, and KVM binds each guest_memfd range to one
    memslot only (hook patch 0006)."""
    caps, _ = kvm_caps()
    want = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED
    if caps["guest_memfd_flags"] & want != want:
        raise Skip("rig kernel's default VM offers guest_memfd flags 0x%x"
                   % caps["guest_memfd_flags"])
    return boot(["-object", "memory-backend-guest-memfd,id=m0,size=64M"],
                ",memory-backend=m0,smm=on", 64 * MiB)


def test_mmap_off_needs_private_memory():
    """The default VM type cannot make memory private: mmap=off says so."""
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "kvm",
                        "-object", "memory-backend-guest-memfd,id=m0,size=64M,mmap=off",
                        "-machine", "q35,memory-backend=m0", "-m", "64M"])
    assert rc == 1 and "cannot make memory private" in out, (rc, out)
