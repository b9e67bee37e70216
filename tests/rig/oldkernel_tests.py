"""Tests that run inside the rig on Debian's own older kernels
(tests/rig/build-debian-kernel.sh): what memory-backend-guest-memfd says
where KVM cannot give an ordinary VM a guest_memfd.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from gmemtest import kvm_caps, run_qemu

GMEM = "memory-backend-guest-memfd"


def test_no_guest_memfd_for_this_vm():
    """Before Linux 6.18, an ordinary x86 VM has no guest_memfd (6.1 has
    none at all; 6.12 only for VM types with private memory), and no
    GUEST_MEMFD_FLAG_MMAP.  The backend is refused with a message that
    names what is missing; QEMU exits 1, no abort."""
    caps, why = kvm_caps()
    assert caps, why
    assert not caps["guest_memfd"] or not caps["guest_memfd_flags"] & 1, caps
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "kvm",
                        "-object", GMEM + ",id=m0,size=64M",
                        "-machine", "q35,memory-backend=m0", "-m", "64M"])
    assert rc == 1, (rc, out)
    assert ("this host's KVM cannot back guest memory with a guest_memfd "
            "(KVM_CAP_GUEST_MEMFD and KVM_CAP_USER_MEMORY2 need Linux 6.8 "
            "or later)") in out, out
    return "kernel %s, caps %r" % (os.uname().release, caps)


def test_mmap_off_refused_too():
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "kvm",
                        "-object", GMEM + ",id=m0,size=64M,mmap=off",
                        "-machine", "q35,memory-backend=m0", "-m", "64M"])
    assert rc == 1 and "cannot back guest memory with a guest_memfd" in out, out
