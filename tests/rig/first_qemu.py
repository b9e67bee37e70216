"""Run as the first QEMU in a freshly booted rig (tests/e2e/test_rig.py
boots the rig several times for it): the command line that
docs/system/sw-protected-guest.rst tells users to type, with its defaults
(CPU model, machine type, SeaBIOS).  An earlier session saw such a QEMU
hang in 4 of 12 fresh rigs, its vCPU at the reset vector, asleep, while
QMP said "running"; with -cpu host, never.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import time

from gmemtest import Qemu, thread_states


def test_documented_command_line_first():
    """The documented sw-protected-guest command line, default CPU, as
    the first QEMU since the rig booted: SeaBIOS runs (its log on the
    debug port grows, the vCPU leaves the reset vector)."""
    args = ["-object", "sw-protected-guest,id=swp",
            "-object", "memory-backend-guest-memfd,id=ram0,size=4G,mmap=off",
            "-m", "4G"]
    vm = Qemu(args, payload=None, machine="q35",
              extra_machine=",memory-backend=ram0,confidential-guest-support=swp")
    # Qemu() passes -cpu host for KVM and its payload's debug ports: take
    # out the CPU model (the documented line has none), and read SeaBIOS's
    # log port (0x402) instead of the payload's.
    at = vm.cmd.index("-cpu")
    del vm.cmd[at:at + 2]
    vm.cmd = [w.replace("iobase=0xe9", "iobase=0x402") for w in vm.cmd]
    with vm:
        deadline = time.time() + 60
        while "SeaBIOS" not in vm.output() or "Booting from" not in vm.output():
            if time.time() > deadline:
                regs = vm.qmp.hmp("info registers")
                status = vm.qmp.cmd("query-status")["status"]
                raise AssertionError(
                    "SeaBIOS did not boot in 60 s (status %s): %s | %s | %s" % (
                        status, vm.output()[-200:],
                        " ".join(l for l in regs.splitlines()
                                 if l.startswith(("EIP=", "RIP=", "CS ="))),
                        thread_states(vm.proc.pid)))
            time.sleep(0.2)
        out = vm.output()
    return "SeaBIOS booted: " + [line for line in out.splitlines()
                                 if "Booting from" in line][0].strip()
