"""The bad-input table: what a user, a management tool or a guest can get
wrong with memory-backend-guest-memfd and sw-protected-guest, and what
QEMU answers.  Each row is run by a test (host rows: e2e/backend/
bad_inputs; rig rows, which need a kernel with private memory:
rig/bad_inputs_in_the_rig), and docs/system/guest-memfd-errors.rst is
made from it:

  python3 tests/lib/bad_inputs.py > docs/system/guest-memfd-errors.rst

(e2e/backend/bad_inputs checks that the page is up to date).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import sys

GMEM = "memory-backend-guest-memfd"
MiB = 1 << 20
EINVAL = (1 << 64) - 22

# What the QMP/HMP rows and the guest's requests run against: a VM with
# 64 MiB of guest_memfd RAM (mmap=on on the host; mmap=off in a
# sw-protected VM in the rig) and room for DIMMs: (arguments, what is
# added to -machine).
HOST_VM = (["-object", GMEM + ",id=ram0,size=64M", "-m", "64M,slots=2,maxmem=1G"],
           ",memory-backend=ram0")
RIG_VM = (["-object", "sw-protected-guest,id=swp",
           "-object", GMEM + ",id=ram0,size=64M,mmap=off",
           "-m", "64M,slots=2,maxmem=1G"],
          ",memory-backend=ram0,confidential-guest-support=swp")


class Case:
    """One bad input.  via: 'command line', 'QMP', 'HMP' or 'hypercall';
    env: 'host' or 'rig'; what: the input, for the docs; answer: what QEMU
    says (a part of the message; for hypercalls, RAX)."""

    def __init__(self, via, what, answer, env="host", args=None,
                 accel="kvm", cmd=None, hcall=None):
        self.via, self.what, self.answer, self.env = via, what, answer, env
        self.args, self.accel, self.cmd, self.hcall = args, accel, cmd, hcall


M = ["-machine", "q35,memory-backend=m0", "-m", "64M"]


def gobj(extra, size="64M", id="m0"):
    return ["-object", "%s,id=%s,size=%s%s" % (GMEM, id, size, extra)]


def swp(backend, machine="", swp_props=""):
    return (["-object", "sw-protected-guest,id=swp" + swp_props] + backend +
            ["-machine", "q35,memory-backend=m0,confidential-guest-support=swp"
             + machine, "-m", "64M"])


def cgs(qom_type, backend):
    """A confidential guest of another type, with its RAM from backend."""
    return (["-object", qom_type + ",id=cgs0"] + backend +
            ["-machine", "q35,memory-backend=m0,confidential-guest-support=cgs0",
             "-m", "64M"])


def obj_add(**props):
    return ("object-add", dict({"qom-type": GMEM, "id": "x0", "size": MiB}, **props))


CASES = [
    # -- the command line ---------------------------------------------------
    Case("command line", "the backend with ``-accel tcg``",
         "needs the KVM accelerator", args=gobj("") + M, accel="tcg"),
    Case("command line", "the backend with ``-accel qtest``",
         "needs the KVM accelerator", args=gobj("") + M, accel="qtest"),
    Case("command line", "no ``size``", "'size' is missing",
         args=["-object", GMEM + ",id=m0"] + M),
    Case("command line", "``size=0``", "doesn't take value '0'",
         args=gobj("", size="0") + M),
    Case("command line", "a size that is not a multiple of the page size",
         "not a non-zero multiple of the host page size",
         args=gobj("", size=str(64 * MiB + 100)) + M),
    Case("command line", "``share=off``", "share=off is not supported",
         args=gobj(",share=off") + M),
    Case("command line", "``reserve=off``", "reserve=off is not supported",
         args=gobj(",reserve=off") + M),
    Case("command line", "``merge=on``", "merge=on is not supported",
         args=gobj(",merge=on") + M),
    Case("command line", "``host-nodes`` naming a node the host lacks",
         "host NUMA node 9 does not exist",
         args=gobj(",policy=bind,host-nodes=9") + M),
    Case("command line", "``mmap=off`` in a VM that cannot make memory "
         "private (no confidential guest)", "cannot make memory private",
         args=gobj(",mmap=off") + M),
    Case("command line", "``prealloc=on`` of more than the host has",
         "cannot preallocate",
         args=gobj(",prealloc=on", size="1P") +
         ["-machine", "q35,memory-backend=m0", "-m", "1P"]),
    Case("command line", "one backend for two NUMA nodes",
         "can't be used multiple times",
         args=gobj("") + ["-machine", "q35", "-m", "128M",
                          "-numa", "node,memdev=m0", "-numa", "node,memdev=m0"]),
    Case("command line", "one backend for two DIMMs",
         "can't use already busy memdev: d0",
         args=gobj("") + gobj("", id="d0") + M[:2] +
         ["-m", "64M,slots=2,maxmem=1G", "-device", "pc-dimm,id=a,memdev=d0",
          "-device", "pc-dimm,id=b,memdev=d0"]),
    Case("command line", "sw-protected-guest where KVM has no "
         "software-protected VM type (Debian's kernels, for one)",
         "has no software-protected VM type",
         args=swp(gobj(",mmap=off"))),
    Case("command line", "sw-protected-guest with RAM from "
         "memory-backend-ram", "needs the machine's RAM from a " + GMEM,
         env="rig", args=swp(["-object", "memory-backend-ram,id=m0,size=64M"])),
    Case("command line", "sw-protected-guest with an ``mmap=on`` backend, "
         "where KVM cannot convert guest_memfd pages in place (Linux 7.2, "
         "or ``kvm.gmem_in_place_conversion=0``)",
         "cannot convert guest_memfd pages between private and shared in "
         "place", env="rig", args=swp(gobj(""))),
    Case("command line", "sw-protected-guest with ``smm=on``",
         "cannot be used with SMM", env="rig",
         args=swp(gobj(",mmap=off"), ",smm=on")),
    Case("command line", "sw-protected-guest and ``--only-migratable``",
         "cannot be migrated or snapshotted", env="rig",
         args=swp(gobj(",mmap=off")) + ["--only-migratable"]),
    Case("command line", "tdx-guest on a host without TDX (here: an AMD "
         "CPU)", "TDX needs an Intel Xeon CPU with TDX", env="rig",
         args=cgs("tdx-guest", gobj(",mmap=off"))),
    Case("command line", "sev-snp-guest on a host whose KVM has no SEV "
         "support (here: built without ``CONFIG_KVM_AMD_SEV``)",
         "SEV-SNP needs a host kernel whose kvm_amd has SEV-SNP support",
         env="rig", args=cgs("sev-snp-guest,cbitpos=51,reduced-phys-bits=1",
                             gobj(",mmap=off"))),
    Case("command line", "sw-protected-guest with ``intent-bit=31``",
         "must be 0 (none) or a GPA bit from 32 to 63",
         args=swp(gobj(",mmap=off"), swp_props=",intent-bit=31")),
    Case("command line", "sw-protected-guest with an ``intent-bit`` at or "
         "above the host's physical address width",
         "is not below", env="rig",
         args=swp(gobj(",mmap=off"), swp_props=",intent-bit=63")),
    Case("command line", "sw-protected-guest with an ``intent-bit`` the "
         "guest's CPU does not have (``phys-bits``)",
         "is not a physical address bit of the guest's CPU", env="rig",
         args=swp(gobj(",mmap=off"), swp_props=",intent-bit=39") +
         ["-cpu", "qemu64,phys-bits=39"]),
    Case("command line", "sw-protected-guest with an ``intent-bit`` below "
         "the end of RAM (here 3 GiB, 1 GiB of it above 4 GiB)",
         "is below the end of RAM 'm0' at [0x100000000", env="rig",
         args=swp(gobj(",mmap=off", size="3G"),
                  swp_props=",intent-bit=32")[:-2] + ["-m", "3G"]),
    Case("command line", "sw-protected-guest with an ``intent-bit`` below "
         "the end of guest memory (here the DIMM range up to ``maxmem``)",
         "is below the end of guest memory", env="rig",
         args=swp(gobj(",mmap=off"), swp_props=",intent-bit=33")[:-2] +
         ["-m", "64M,slots=1,maxmem=8G"]),
    Case("command line", "sw-protected-guest with an ``intent-bit`` below "
         "the end of q35's 64-bit PCI window (32 GiB above RAM by default)",
         "and the 64-bit PCI window", env="rig",
         args=swp(gobj(",mmap=off"), swp_props=",intent-bit=35")),

    # -- QMP, against a running QEMU ----------------------------------------
    Case("QMP", "``object-add`` without ``size``", "'size' is missing",
         cmd=("object-add", {"qom-type": GMEM, "id": "x0"})),
    Case("QMP", "``object-add`` with ``size`` 0", "doesn't take value '0'",
         cmd=obj_add(size=0)),
    Case("QMP", "``object-add`` with a size that is not a multiple of the "
         "page size", "not a non-zero multiple", cmd=obj_add(size=MiB + 1)),
    Case("QMP", "``object-add`` with ``share`` false",
         "share=off is not supported", cmd=obj_add(share=False)),
    Case("QMP", "``object-add`` with ``merge`` true",
         "merge=on is not supported", cmd=obj_add(merge=True)),
    Case("QMP", "``object-add`` with ``mmap`` false where the VM cannot make "
         "memory private", "cannot make memory private",
         cmd=obj_add(mmap=False)),
    Case("QMP", "``object-add`` with ``host-nodes`` the host lacks",
         "host NUMA node 9 does not exist",
         cmd=obj_add(policy="bind", **{"host-nodes": [9]})),
    Case("QMP", "``object-add`` with ``prealloc`` of more than the host has",
         "cannot preallocate", cmd=obj_add(size=1 << 50, prealloc=True)),
    Case("QMP", "``object-add`` of an ``id`` in use",
         "attempt to add duplicate property 'ram0'",
         cmd=("object-add", {"qom-type": GMEM, "id": "ram0", "size": MiB})),
    Case("QMP", "``qom-set`` of ``merge`` to true", "merge=on is not supported",
         cmd=("qom-set", {"path": "/objects/ram0", "property": "merge",
                          "value": True})),
    Case("QMP", "``qom-set`` of ``mmap``", "cannot change property 'mmap'",
         cmd=("qom-set", {"path": "/objects/ram0", "property": "mmap",
                          "value": False})),
    Case("QMP", "``qom-set`` of ``size`` while in use",
         "cannot change property size",
         cmd=("qom-set", {"path": "/objects/ram0", "property": "size",
                          "value": 2 * MiB})),
    Case("QMP", "``object-del`` of the machine's RAM", "is in use",
         cmd=("object-del", {"id": "ram0"})),
    Case("QMP", "``device_add`` of a DIMM on the machine's RAM",
         "can't use already busy memdev: ram0",
         cmd=("device_add", {"driver": "pc-dimm", "id": "d9", "memdev": "ram0"})),
    Case("QMP", "``device_add`` of a DIMM whose backend does not exist",
         "Device 'nope' not found",
         cmd=("device_add", {"driver": "pc-dimm", "id": "d9", "memdev": "nope"})),
    Case("QMP", "``migrate`` of a VM with ``mmap=off`` memory",
         "cannot be migrated or snapshotted",
         env="rig", cmd=("migrate", {"uri": "file:/dev/null"})),
    Case("QMP", "``qom-set`` of ``merge`` to true on ``mmap=off`` memory",
         "merge=on is not supported", env="rig",
         cmd=("qom-set", {"path": "/objects/ram0", "property": "merge",
                          "value": True})),

    # -- HMP ------------------------------------------------------------------
    Case("HMP", "``object_add`` with ``share=off``", "share=off is not supported",
         cmd="object_add %s,id=x1,size=1M,share=off" % GMEM),
    Case("HMP", "``object_add`` with a size that is not a multiple of the "
         "page size", "not a non-zero multiple",
         cmd="object_add %s,id=x1,size=1000" % GMEM),
    Case("HMP", "``object_del`` of the machine's RAM", "is in use",
         cmd="object_del ram0"),
    Case("HMP", "``device_add`` of a DIMM on the machine's RAM",
         "can't use already busy memdev: ram0",
         cmd="device_add pc-dimm,id=d9,memdev=ram0"),
    Case("HMP", "``savevm`` of a VM with ``mmap=off`` memory",
         "cannot be migrated or snapshotted", env="rig", cmd="savevm s1"),

    # -- the guest: KVM_HC_MAP_GPA_RANGE -------------------------------------
    Case("hypercall", "the local APIC's page (MMIO, not RAM)", "-EINVAL",
         env="rig", hcall=(0xfee00000, 1, 0x10)),
    Case("hypercall", "a range that runs past the end of RAM", "-EINVAL",
         env="rig", hcall=(64 * MiB - 4096, 2, 0x10)),
    Case("hypercall", "a range wholly in the hole above RAM", "-EINVAL",
         env="rig", hcall=(0x80000000, 16, 0x10)),
    Case("hypercall", "unknown attribute bits", "-EINVAL",
         env="rig", hcall=(0x400000, 1, 0x100)),
    Case("hypercall", "zero pages", "-EINVAL",
         env="rig", hcall=(0x400000, 0, 0x10)),
    Case("hypercall", "a page count that overflows", "-EINVAL",
         env="rig", hcall=(0x400000, 1 << 60, 0x10)),
    Case("hypercall", "an address that is not page-aligned", "-EINVAL",
         env="rig", hcall=(0x400800, 1, 0x10)),
    Case("hypercall", "an address past the guest's physical address width",
         "-EINVAL", env="rig", hcall=(1 << 52, 1, 0x10)),
]


def check(env):
    """Run the rows of env ('host' or 'rig'); returns a summary."""
    import fcntl
    import os
    from gmemtest import (Qemu, run_qemu, payload_args, hcall_results,
                          FLAG_HALT, KIND_HCALL, KVM_CREATE_VM,
                          in_place_supported)
    rows = [c for c in CASES if c.env == env]
    skipped = []
    for c in (c for c in rows if c.via == "command line"):
        if "no software-protected VM type" in c.answer:
            kvm = os.open("/dev/kvm", os.O_RDWR)
            try:
                os.close(fcntl.ioctl(kvm, KVM_CREATE_VM, 1))
                skipped.append(c.what)      # this KVM has the type
                continue
            except OSError:
                pass
            finally:
                os.close(kvm)
        if "in place" in c.answer and in_place_supported():
            skipped.append(c.what)          # this KVM converts in place
            continue
        rc, out = run_qemu(["-nodefaults", "-display", "none",
                            "-accel", c.accel] + c.args)
        assert rc == 1, "%s: exit code %d, want 1: %s" % (c.what, rc, out)
        assert c.answer in out, "%s: %r not in: %s" % (c.what, c.answer, out)
        assert "core dumped" not in out and "Aborted" not in out, out
    args, machine = HOST_VM if env == "host" else RIG_VM
    monitor = [c for c in rows if c.via in ("QMP", "HMP")]
    hcalls = [c for c in rows if c.via == "hypercall"]
    blob = None
    if hcalls:
        blob = payload_args([(c.hcall[0], c.hcall[1], KIND_HCALL, c.hcall[2])
                             for c in hcalls], flags=FLAG_HALT)
    if monitor or hcalls:
        with Qemu(args + ["-S"], args_blob=blob, extra_machine=machine) as vm:
            for c in monitor:
                if c.via == "QMP":
                    resp = vm.qmp.send(c.cmd[0], **c.cmd[1])
                    assert "error" in resp, "%s: accepted: %r" % (c.what, resp)
                    got = resp["error"]["desc"]
                else:
                    got = vm.qmp.hmp(c.cmd)
                assert c.answer in got, "%s: %r not in %r" % (c.what, c.answer, got)
                assert vm.proc.poll() is None, "%s: QEMU exited: %s" % (
                    c.what, vm.errors())
            assert vm.qmp.cmd("query-status")["status"] == "prelaunch"
            if hcalls:
                vm.qmp.cmd("cont")
                out = vm.wait_output("RESULT ", 120)
                got = hcall_results(out)
                assert got == [EINVAL] * len(hcalls), (got, out)
                assert vm.qmp.cmd("query-status")["status"] == "running"
                for prop in ("conversions-to-private", "conversions-to-shared",
                             "conversions-failed"):
                    assert vm.qom_get("/objects/swp", prop) == 0, prop
                # KVM itself answers those it finds malformed.
                rejected = vm.qom_get("/objects/swp", "conversions-rejected")
                assert 0 < rejected <= len(hcalls), rejected
    return "%d bad inputs answered as documented%s" % (
        len(rows) - len(skipped),
        "; not run: %s" % ", ".join(skipped) if skipped else "")


def rst():
    """docs/system/guest-memfd-errors.rst"""
    out = ["..",
           "   Made by tests/lib/bad_inputs.py from its table, which the tests",
           "   run; do not edit by hand.",
           "",
           "Bad inputs and what QEMU answers",
           "================================",
           "",
           "Each row below is run by the test command: the host's rows by",
           "``e2e/backend/bad_inputs``, the rows marked *rig* (which need a",
           "kernel with private memory) by ``rig/bad_inputs_in_the_rig``.  A",
           "command line exits with status 1 and prints the message; a QMP",
           "command gets it as its error, an HMP command prints it, and QEMU",
           "keeps running; a guest's ``KVM_HC_MAP_GPA_RANGE`` hypercall gets",
           "the error in RAX, nothing is converted, and the VM keeps running",
           "(``conversions-rejected`` counts it).  The message column holds",
           "the part of the message the test looks for.",
           ""]
    for via in ("command line", "QMP", "HMP", "hypercall"):
        rows = [c for c in CASES if c.via == via]
        title = {"hypercall": "The guest (KVM_HC_MAP_GPA_RANGE)"}.get(via, via)
        title = title[0].upper() + title[1:]
        out += [title, "-" * len(title), "",
                ".. list-table::", "   :header-rows: 1", "   :widths: 60 40", "",
                "   * - input", "     - answer"]
        for c in rows:
            what = c.what + (" (*rig*)" if c.env == "rig" else "")
            out += ["   * - " + what, "     - " + ("``%s``" % c.answer)]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(rst())
