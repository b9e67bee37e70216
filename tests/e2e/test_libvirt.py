"""The backend under Debian's libvirtd (9.0): a domain from XML with the
project's QEMU as <emulator> and memory-backend-guest-memfd passed through
<qemu:commandline>, as docs/system/guest-memfd.rst shows it; the counters
and a DIMM hot-plug through `virsh qemu-monitor-command`; destroy.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import time

from gmemtest import (FLAG_HALT, FLAG_HOTPLUG, KIND_GUEST, PAYLOAD, QEMU,
                      guest_hangs,
                      check_pattern, gmem_fds, payload_args, payload_result,
                      pmemsave, proc_status, require_gmem_mmap, wait_line)
from libvirtd import Libvirtd, VirshError

MiB = 1 << 20
SIZE = 256 * MiB
DOMAIN = "gmem-test"

DOMAIN_XML = """\
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader type='rom'>{payload}</loader>
  </os>
  <features><acpi/></features>
  <cpu mode='host-passthrough'/>
  <devices>
    <emulator>{qemu}</emulator>
    <memballoon model='none'/>
    <controller type='usb' model='none'/>
  </devices>
  <qemu:commandline>
{qemu_args}  </qemu:commandline>
</domain>
"""

# What <qemu:commandline> passes: the backend as the machine's RAM, slots
# for a DIMM, and the payload's console and arguments.
QEMU_ARGS = ["-object", "memory-backend-guest-memfd,id=ram0,size={mib}M",
             "-machine", "memory-backend=ram0",
             "-m", "slots=2,maxmem=1G",
             "-chardev", "file,id=dc,path={debugcon}",
             "-device", "isa-debugcon,iobase=0xe9,chardev=dc",
             "-fw_cfg", "name=opt/gmem/args,file={args}"]


def wait_console(lv, path, text):
    """Wait for a whole line with text on the guest's console; on failure
    say where the vCPU is and what QEMU logged: RigCorrupted if the vCPU
    is where the payload never runs."""
    try:
        return wait_line(path, text, 60)
    except RuntimeError as e:
        why = "%s; QEMU's log: %s" % (str(e)[-600:], lv.qemu_log(DOMAIN)[-600:])
        try:
            why += "; memory devices %r" % lv.qmp(DOMAIN, "query-memory-devices")
        except VirshError as v:
            why += "; no QMP (%s)" % v
        guest_hangs(lambda line: lv.hmp(DOMAIN, line), why)


def big_anonymous_rss(pid, at_least):
    """Rss of each anonymous mapping of process pid at least at_least long."""
    out = []
    with open("/proc/%d/smaps" % pid) as f:
        size = None
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                anonymous = len(fields) == 5
                size = end - start if anonymous and end - start >= at_least else None
            elif fields[0] == "Rss:" and size is not None:
                out.append(int(fields[1]) * 1024)
    return out


def test_libvirt_domain_on_guest_memfd():
    """A libvirt domain's RAM is the guest_memfd: the guest's pattern is
    read back by QEMU, the backend's counters say so, libvirt's own pc.ram
    holds nothing, a guest_memfd DIMM hot-plugs, and destroy ends QEMU.

    In the rig, whose TCG now and then leaves a nested vCPU where the
    payload never runs (tests/rig/hostile_tests.py), the guest then hangs
    (seen once: waiting for the DIMM): such a hang is RigCorrupted, and
    the rig's runner does the test once more."""
    require_gmem_mmap()
    with Libvirtd() as lv:
        work = lv.dir
        debugcon = os.path.join(work, "debugcon.txt")
        args = os.path.join(work, "args.bin")
        with open(args, "wb") as f:
            f.write(payload_args([(MiB, SIZE - MiB, KIND_GUEST, 0)],
                                 flags=FLAG_HALT | FLAG_HOTPLUG))
        xml = os.path.join(work, "domain.xml")
        with open(xml, "w") as f:
            fill = dict(mib=SIZE // MiB, debugcon=debugcon, args=args)
            qemu_args = "".join("    <qemu:arg value='%s'/>\n" % a.format(**fill)
                                for a in QEMU_ARGS)
            f.write(DOMAIN_XML.format(name=DOMAIN, payload=PAYLOAD, qemu=QEMU,
                                      qemu_args=qemu_args, **fill))

        lv.virsh("create", xml)

        out = wait_console(lv, debugcon, "waiting for a DIMM")
        result = payload_result(out)
        assert result == "RESULT PASS pages=0x%016x" % ((SIZE - MiB) // 4096), out
        assert "running" in lv.virsh("domstate", DOMAIN)
        pid = lv.qemu_pid(DOMAIN)

        # The machine's RAM is the guest_memfd backend, not libvirt's pc.ram.
        backend = lv.qmp(DOMAIN, "qom-get", path="/machine",
                         property="memory-backend")
        assert backend == "/objects/ram0", "the machine's memory-backend is %r" % backend
        memdevs = {m["id"]: m for m in lv.qmp(DOMAIN, "query-memdev")}
        assert sorted(memdevs) == ["pc.ram", "ram0"], memdevs
        assert len(gmem_fds(pid)) == 1
        check_pattern(pmemsave(lambda cmd, **args: lv.qmp(DOMAIN, cmd, **args),
                               work, MiB, SIZE - MiB), MiB)
        # The counters, read as a libvirt user reads them.
        assert lv.qmp(DOMAIN, "qom-get", path="/objects/ram0",
                      property="shared-bytes") == SIZE
        assert lv.qmp(DOMAIN, "qom-get", path="/objects/ram0",
                      property="private-bytes") == 0
        ramblocks = lv.hmp(DOMAIN, "info ramblock")
        assert "ram0" in ramblocks, ramblocks

        # libvirt's own pc.ram: allocated as <memory> asks, never touched.
        assert memdevs["pc.ram"]["size"] == SIZE, memdevs
        anon = big_anonymous_rss(pid, SIZE)
        assert anon, "no anonymous mapping of pc.ram's size in QEMU"
        assert max(anon) < 2 * MiB, \
            "an anonymous mapping of %d MiB or more holds %d kB" % (
                SIZE // MiB, max(anon) // 1024)
        rss_anon = proc_status(pid, "RssAnon")
        assert rss_anon < SIZE // 2, "QEMU's RssAnon is %d MiB" % (rss_anon // MiB)

        # A guest_memfd DIMM, hot-plugged and unplugged behind libvirt's back.
        lv.qmp(DOMAIN, "object-add", **{"qom-type": "memory-backend-guest-memfd",
                                        "id": "d1", "size": 64 * MiB})
        lv.qmp(DOMAIN, "device_add", driver="pc-dimm", id="dimm1", memdev="d1")
        out = wait_console(lv, debugcon, "DIMM PASS")
        assert "DIMM PASS pages=0x0000000000004000" in out, out
        assert len(gmem_fds(pid)) == 2
        addr = lv.qmp(DOMAIN, "query-memory-devices")[0]["data"]["addr"]
        check_pattern(pmemsave(lambda cmd, **args: lv.qmp(DOMAIN, cmd, **args),
                               work, addr, 64 * MiB), addr)
        # As docs/system/guest-memfd.rst says: libvirt does not track it.
        assert "dimm" not in lv.virsh("dumpxml", DOMAIN)
        assert "tainted: custom-monitor" in lv.qemu_log(DOMAIN), lv.qemu_log(DOMAIN)
        lv.qmp(DOMAIN, "device_del", id="dimm1")
        wait_console(lv, debugcon, "DIMM EJECTED")
        deadline = time.time() + 30
        while lv.qmp(DOMAIN, "query-memory-devices") and time.time() < deadline:
            time.sleep(0.1)
        assert lv.qmp(DOMAIN, "query-memory-devices") == []
        lv.qmp(DOMAIN, "object-del", id="d1")

        lv.virsh("destroy", DOMAIN)
        deadline = time.time() + 30
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists("/proc/%d" % pid), "QEMU still runs after destroy"
        assert DOMAIN not in lv.virsh("list", "--all", "--name").split()
        return "%s; %d MiB of RssAnon in QEMU" % (result, rss_anon // MiB)
