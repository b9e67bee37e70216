"""The hostile guest, in a rig boot of its own (tests/e2e/test_rig.py):
the rig's TCG runs its two vCPUs on one host thread there.

With the rig's default multi-threaded TCG, a two-vCPU nested guest that
makes hypercalls for a minute is disturbed in most runs: the guest resets
(a triple fault) or hangs with a rig kernel address as its RIP, and once
a vCPU thread never left the rig kernel, so that the rig timed out.  The
same rig kernel, QEMU and payload under one TCG thread: 12 runs of 12
clean (2026-12-01).  So the rig is not what these runs test, and a reset
here is a failure.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import time

from gmemtest import KIND_FUZZ, Qemu, Skip, meminfo, payload_args, \
    payload_result, thread_states, FLAG_HALT
from rig_tests import MiB, SWP_ARGS, SWP_MACHINE, RigCorrupted, guest_hangs


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def fuzz_run(steps):
    """One KIND_FUZZ run: (the guest's counts per vCPU, QEMU's counters,
    requests per second, growth of QEMU's RSS, the shared side and the
    guest_memfd)."""
    F = 0x400000
    blob = payload_args([(F, 2 * MiB, KIND_FUZZ, steps)], flags=FLAG_HALT)
    with Qemu(SWP_ARGS + ["-smp", "2"], args_blob=blob,
              extra_machine=SWP_MACHINE) as vm:
        rss0 = proc_status(vm.proc.pid, "VmRSS")
        shmem0, unev0 = meminfo("Shmem"), meminfo("Unevictable")
        t0 = time.time()
        vm.qmp.cmd("cont")
        # A run takes 30-60 s.  Requests never pause for long: when the
        # guest's conversions stop for 10 s, it hangs.
        last, moved = -1, time.time()
        while "RESULT " not in vm.output():
            status = vm.qmp.cmd("query-status")["status"]
            assert status == "running", "the VM %s: %s %s" % (
                status, vm.output()[-300:], vm.errors()[-600:])
            # The payload has no IDT: a fault is a triple fault, which
            # resets the machine, and it starts over.
            assert vm.output().count("long mode") <= 1, \
                "the guest started over (reset): %r; events %r" % (
                    vm.output()[-200:], [e["event"] for e in vm.qmp.events])
            now = vm.qom_get("/objects/swp", "conversions-to-private")
            if now != last:
                last, moved = now, time.time()
            if time.time() - moved > 10 or time.time() - t0 > 180:
                guest_hangs(vm, "at %d conversions after %.0f s, none for "
                            "%.0f s: %s; QEMU threads: %s" % (
                                last, time.time() - t0, time.time() - moved,
                                vm.output()[-200:], thread_states(vm.proc.pid)))
            time.sleep(1)
        took = time.time() - t0
        out = vm.wait_output("RESULT ", 10)
        assert payload_result(out).startswith("RESULT PASS"), out
        guest = [dict((k, int(v, 16)) for k, v in (w.split("=") for w in
                                                   line.split()[1:]))
                 for line in out.splitlines() if line.startswith("FUZZ ")]
        counters = {c: vm.qom_get("/objects/swp", c) for c in (
            "conversions-to-private", "conversions-to-shared",
            "conversions-rejected", "conversions-failed", "faults-failed")}
        grown = (proc_status(vm.proc.pid, "VmRSS") - rss0,
                 meminfo("Shmem") - shmem0, meminfo("Unevictable") - unev0)
        assert vm.qmp.cmd("query-status")["status"] == "running"
    requests = sum(g["ok"] + g["einval"] for g in guest)
    return guest, counters, requests / took, grown


def test_hostile_guest():
    """A hostile guest: two vCPUs at once make random
    KVM_HC_MAP_GPA_RANGE requests, at least 100,000 in all: conversions
    of random runs of pages (overlapping, now private, now shared, with
    random page-size hints), and bad requests of every kind (not
    page-aligned, no pages, overflowing, across the end of RAM, MMIO, the
    PCI hole, unknown attribute bits, far above RAM), among writes and
    checks of its pages against a model of what each must hold: every
    conversion succeeds and zeroes the pages whose state changed, every
    bad request gets -EINVAL and changes nothing, no page ever holds what
    the model does not say.  QEMU never stops, counts every request the
    guest made (the rig's nested SVM now and then runs a hypercall twice:
    at least as many), and its RSS, the shared side and the guest_memfd
    do not grow beyond the 2 MiB the guest uses."""
    STEPS = 90000           # per vCPU: 5 in 8 steps are requests
    # This rig boot's single-threaded TCG has not been seen to corrupt the
    # guest (module docstring).  Should it still leave a vCPU at an address
    # the payload never runs (proof of the rig's doing), the run is done
    # again, up to 3 times in all, and each is said; a reset or any other
    # hang fails.
    again = []
    for attempt in range(3):
        try:
            guest, counters, rate, grown = fuzz_run(STEPS)
            break
        except RigCorrupted as e:
            again.append(str(e)[:200])
            if attempt == 2:
                # What cannot run here is said so, not passed: the rig's
                # TCG, not QEMU, stopped every run.
                raise Skip("the rig's TCG corrupted the two-vCPU guest in "
                           "all 3 runs: " + " || ".join(again))
    again = "; runs done again after the rig's TCG corrupted a vCPU: %d (%s)" % (
        len(again), " || ".join(again)) if again else ""
    assert len(guest) == 2 and all(g["bad"] == 0 for g in guest), guest
    ok = sum(g["ok"] for g in guest)
    einval = sum(g["einval"] for g in guest)
    assert ok + einval >= 100000, (ok, einval)
    assert counters["conversions-to-private"] + \
        counters["conversions-to-shared"] >= ok, (counters, ok)
    # KVM answers the malformed ones itself (unaligned, no pages): QEMU
    # sees the rest.
    assert 0 < counters["conversions-rejected"] <= einval * 1.05 + 10, (counters, einval)
    assert counters["conversions-failed"] == 0 and \
        counters["faults-failed"] == 0, counters
    limit = 8 * MiB         # the 2 MiB used, both sides, and slack
    assert all(g < limit for g in grown), \
        "grew: RSS %d KiB, shared side %d KiB, guest_memfd %d KiB" % tuple(
            g >> 10 for g in grown)
    return ("%d requests (%d conversions, %d bad) at %.0f/s, 0 crashes, "
            "0 mismatches; grew: RSS %d KiB, shared side %d KiB, "
            "guest_memfd %d KiB; %r%s" % (
                ok + einval, ok, einval, rate, grown[0] >> 10, grown[1] >> 10,
                grown[2] >> 10, counters, again))
