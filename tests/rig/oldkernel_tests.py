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
    # What the message names is what this KVM lacks, as the caps say.
    missing = " and ".join(name for name, cap in
                           (("KVM_CAP_GUEST_MEMFD", "guest_memfd"),
                            ("KVM_CAP_USER_MEMORY2", "user_memory2"))
                           if not caps[cap])
    assert missing, caps
    assert ("this host's KVM cannot back this VM's memory with a guest_memfd "
            "(the VM has no %s)" % missing) in out, out
    assert "KVM offers a guest_memfd to every VM from Linux 6.18 on" in out, out
    return "kernel %s, caps %r" % (os.uname().release, caps)


def test_mmap_off_refused_too():
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "kvm",
                        "-object", GMEM + ",id=m0,size=64M,mmap=off",
                        "-machine", "q35,memory-backend=m0", "-m", "64M"])
    assert rc == 1 and "cannot back this VM's memory with a guest_memfd" in out, out
