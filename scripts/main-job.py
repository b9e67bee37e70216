#!/usr/bin/python3
"""The main job: boot the payload guest under KVM with all of its RAM in a
memory-backend-guest-memfd, and show what that looks like from the host:
the guest's result, the guest_memfd QEMU holds, how much memory it holds,
and the guest's bytes read back through QEMU.

On a host whose own KVM cannot run guests from a guest_memfd (no
/dev/kvm, as on a machine that is itself a guest without nested KVM, or a
kernel older than 6.18) it runs in the nested rig instead: the project's
kernel under TCG, this QEMU on the rig kernel's KVM (docs/devel/rig.rst).

  scripts/main-job.py [--size MiB]      (make run builds first)

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "lib"))
from gmemtest import (FLAG_HALT, KIND_GUEST, Qemu,  # noqa: E402
                      gmem_fds, gmem_mmap_lacking, mappings, meminfo,
                      payload_args, payload_result, pattern_mismatches)

MiB = 1 << 20


def mapping_rss(pid, start):
    """Rss of the mapping at start, from /proc/pid/smaps, in bytes."""
    found = False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if not found:
                found = line.split("-", 1)[0] == "%x" % start
            elif line.startswith("Rss:"):
                return int(line.split()[1]) * 1024
    return 0


def in_rig(opts, lacking):
    """Run the main job in the nested rig (the project's kernel under TCG,
    with KVM inside it: tests/lib/rig.py), on a host whose own KVM cannot
    run it, and print what it printed there."""
    from rig import build_rig, run_rig
    print("main job: this host's KVM cannot run it (%s); running it in the "
          "nested rig: the project's kernel under TCG, this QEMU on its KVM"
          % lacking, flush=True)
    t0 = time.time()
    kernel, initramfs, why = build_rig()
    if why:
        print("main job: the rig cannot be built: %s" % why)
        return 1
    res = run_rig(kernel, initramfs, ["/usr/bin/python3", "scripts/main-job.py",
                                      "--size", str(opts.size)], timeout=600)
    out = res.results.get(OUT_NAME)
    if out is None:
        tail = "\n".join(res.console.strip().splitlines()[-15:])
        print("main job: no output from the rig (%.0fs); its console ends:\n%s"
              % (res.wall, tail))
        return 1
    sys.stdout.write(out)
    print("rig: built or found cached, booted, ran the job and powered off "
          "in %.0fs" % (time.time() - t0))
    return res.exit_code if res.exit_code is not None else 1


# In the rig, the job's output also goes to this file of the results
# folder, for in_rig() to print on the host.
OUT_NAME = "main-job.txt"


class Tee:
    def __init__(self, *files):
        self.files = files

    def write(self, text):
        for f in self.files:
            f.write(text)
            f.flush()

    def flush(self):
        for f in self.files:
            f.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="guest RAM in MiB")
    opts = ap.parse_args()
    size = opts.size * MiB

    caps, lacking = gmem_mmap_lacking()
    if caps is None:
        if os.environ.get("GM_IN_RIG"):
            print("main job: cannot run here: %s" % lacking)
            return 1
        return in_rig(opts, lacking)
    print("host%s: Linux %s; KVM guest_memfd flags 0x%x (MMAP|INIT_SHARED), "
          "memory attributes 0x%x" % (" (the nested rig)" if os.environ.get("GM_IN_RIG")
                                      else "", os.uname().release,
                                      caps["guest_memfd_flags"],
                                      caps["memory_attributes"]))

    args = ["-object", "memory-backend-guest-memfd,id=ram0,size=%d" % size,
            "-m", "%dM" % opts.size]
    blob = payload_args([(MiB, size - MiB, KIND_GUEST, 0)], flags=FLAG_HALT)
    before = meminfo("Unevictable")
    t0 = time.time()
    with Qemu(args, args_blob=blob, extra_machine=",memory-backend=ram0") as vm:
        print("qemu: %s" % " ".join(os.path.relpath(a) if a.startswith("/work")
                                    else a for a in vm.cmd))
        out = vm.wait_output("RESULT ", 120)
        took = time.time() - t0
        for line in out.splitlines():
            print("guest: %s" % line)
        result = payload_result(out)
        ok = bool(result and result.startswith("RESULT PASS"))
        print("guest result: %s (%.2fs from QEMU's start)" % (
            "PASS" if ok else "FAIL", took))

        pid = vm.proc.pid
        fds = gmem_fds(pid)
        held = meminfo("Unevictable") - before
        for fd, ino in sorted(fds.items()):
            st = os.stat("/proc/%d/fd/%d" % (pid, fd))
            maps = [m for m in mappings(pid) if m[3] == ino]
            print("guest_memfd: fd %d of QEMU (pid %d), %s inode %d, size %d MiB"
                  % (fd, pid, os.readlink("/proc/%d/fd/%d" % (pid, fd)), ino,
                     st.st_size // MiB))
            for start, end, perms, _, path in maps:
                print("  mapped %s at 0x%x-0x%x (%d MiB), %d MiB resident in "
                      "that mapping" % (perms, start, end, (end - start) // MiB,
                                        mapping_rss(pid, start) // MiB))
        anon = [m for m in mappings(pid) if not m[4] and m[1] - m[0] >= size]
        print("bytes in the guest_memfd: %d MiB held by the host for it "
              "(unevictable memory grew by that much; guest_memfd does not "
              "report st_blocks)" % (held // MiB))
        print("anonymous mappings of RAM's size in QEMU: %d" % len(anon))

        data = vm.read_memory(MiB, size - MiB)
        bad = pattern_mismatches(data, MiB)
        print("host read-back through QEMU: %d of %d pages hold the guest's "
              "pattern" % (len(data) // 4096 - len(bad), len(data) // 4096))
        ok = ok and not bad and len(fds) == 1 and not anon

    print("main job: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    if os.environ.get("GM_RIG_RESULTS"):
        sys.stdout = Tee(sys.stdout, open(os.path.join(
            os.environ["GM_RIG_RESULTS"], OUT_NAME), "w"))
    sys.exit(main())
