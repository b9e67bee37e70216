"""The nested test rig: the project's kernel under TCG (-cpu max gives it
SVM and NPT), with this host's root shared read-only over 9p, running a
command of ours in a chroot of that root on the rig kernel's KVM.  The
arm64 rig (arch="arm64") is the project's arm64 kernel on QEMU's virt
machine with EL2 (virtualization=on), its command run by the arm64
initramfs's busybox with the host's root under /host
(tests/rig/init-arm64).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

from gmemtest import BUILD, QEMU, QEMU_AARCH64, ROOT


# A result line of the in-rig runners (tests/rig/in_rig.py,
# tests/rig/arm64_selftests.sh)
LINE = re.compile(r"^(PASS|FAIL|SKIP) (\S+)(?: \(([\d.]+)s\))?(?:: (.*))?$")


def wanted(prefix, select):
    """None if the tests under prefix are not selected, else the filter to
    pass on to the in-rig runner."""
    if not select or select in prefix:
        return ""
    if select.startswith(prefix + "/"):
        return select[len(prefix) + 1:]
    return None


def run_build(script, what, args=()):
    """Run a build script of the project's (a path under the repository)
    that prints what it built on its last line: (that line, None), or
    (None, reason) if it failed."""
    p = subprocess.run([os.path.join(ROOT, script)] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode:
        return None, "%s did not build: %s" % (what, p.stderr.strip()[-400:])
    return p.stdout.strip().splitlines()[-1], None


def build_kernel(arch="x86"):
    """(bzImage or Image path, None), or (None, reason) if it cannot be
    built."""
    return run_build("kernel-patches/build.sh", "the %s rig kernel" % arch,
                     ["--arch", arch])


def build_initramfs(arch="x86"):
    return run_build("tests/rig/build-initramfs.sh", "the %s rig initramfs" % arch,
                     ["--arch", arch])


def build_rig(arch="x86"):
    """(kernel, initramfs, None), or (None, None, reason) if the rig cannot
    be built."""
    kernel, why = build_kernel(arch)
    initramfs = None
    if kernel:
        initramfs, why = build_initramfs(arch)
    if not initramfs:
        return None, None, why
    return kernel, initramfs, None


class RigResult:
    def __init__(self, exit_code, console, results, wall):
        self.exit_code = exit_code      # the command's, None if it never ran
        self.console = console          # the rig's serial console
        self.results = results          # the results folder's files
        self.wall = wall


def run_rig(kernel, initramfs, words, timeout=900, mem="2G", kernel_args="",
            accel="tcg", arch="x86"):
    """Boot the rig, run words (a command, from the repository's root, in a
    chroot of this host's root) and power off.  The command can write
    files to $GM_RIG_RESULTS, which come back in RigResult.results; its
    scratch space is $TMPDIR.  kernel_args go on the rig kernel's command
    line (e.g. "kvm.gmem_dirty_logging=0"); accel is the rig's own (e.g.
    "tcg,thread=single": one host thread for both of its vCPUs)."""
    for w in words:
        assert "," not in w and " " not in w, "rig commands cannot hold ',' or ' '"
    tmp = tempfile.mkdtemp(prefix="gmem-rig-")
    results = os.path.join(tmp, "results")
    os.mkdir(results)
    console = os.path.join(tmp, "console.txt")
    append = "console=%s panic=-1 quiet gm.root=%s gm.home=%s gm.cmd=%s %s" % (
        "ttyAMA0" if arch == "arm64" else "ttyS0",
        ROOT, os.environ.get("HOME", "/root"), ",".join(words), kernel_args)
    # Two NUMA nodes, a CPU and half the memory each, so that what tests
    # NUMA placement (guest_memfd's mbind) has nodes to place on.
    half = "%dM" % (int(mem[:-1]) * {"M": 1, "G": 1024}[mem[-1]] // 2)
    cmd = [QEMU_AARCH64 if arch == "arm64" else QEMU,
           "-accel", accel, "-cpu", "max", "-smp", "2", "-m", mem,
           "-object", "memory-backend-ram,id=rn0,size=" + half,
           "-object", "memory-backend-ram,id=rn1,size=" + half,
           "-numa", "node,nodeid=0,cpus=0,memdev=rn0",
           "-numa", "node,nodeid=1,cpus=1,memdev=rn1",
           "-machine", "virt,virtualization=on,gic-version=3" if arch == "arm64"
           else "q35", "-nodefaults", "-display", "none", "-no-reboot",
           "-kernel", kernel, "-initrd", initramfs, "-append", append,
           "-serial", "file:" + console,
           "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on",
           "-virtfs", "local,path=%s,mount_tag=results,security_model=none" % results]
    t0 = time.time()
    retried = ""
    for attempt in (1, 2):
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True,
                               timeout=timeout)
            qemu_out = p.stdout
        except subprocess.TimeoutExpired:
            qemu_out = "rig timed out after %ds" % timeout
            break
        with open(console, errors="replace") as f:
            started = "running " in f.read()
        # TCG itself, with two vCPUs, has been seen to abort while the
        # rig kernel boots ("iotlb_to_section: Assertion `section_index <
        # d->map.sections_nb' failed"), before our command starts: boot
        # once more, and say so.  A crash once the command runs counts.
        if p.returncode >= 0 or started or attempt == 2:
            break
        retried = "rig: booted again: the rig's QEMU died (%d) before the " \
            "command started: %s\n" % (p.returncode, qemu_out.strip()[-300:])
        print("# " + retried.strip(), flush=True)
    wall = time.time() - t0
    with open(console, errors="replace") as f:
        log = retried + f.read() + qemu_out
    files = {}
    for name in os.listdir(results):
        with open(os.path.join(results, name), errors="replace") as f:
            files[name] = f.read()
    shutil.rmtree(tmp)
    code = files.get("exit-code")
    return RigResult(int(code) if code is not None else None, log, files, wall)


def report_results(report, prefix, res, select=""):
    """Report each result line a rig run (res, a RigResult) left in
    results.txt as prefix/<name> (those whose name holds select), then a
    FAIL if the command never ran, failed, or reported nothing."""
    seen = 0
    for line in res.results.get("results.txt", "").splitlines():
        m = LINE.match(line)
        if not m or select not in m.group(2):
            continue
        seen += 1
        status, name, secs, detail = m.groups()
        report(status, prefix + "/" + name, detail or "", float(secs) if secs else None)
    tail = " | ".join(res.console.strip().splitlines()[-8:])
    if res.exit_code is None:
        report("FAIL", prefix + "/boot", "the rig did not run its tests (%.0fs): %s"
               % (res.wall, tail))
    elif res.exit_code != 0:
        report("FAIL", prefix + "/runner", "in-rig runner exited %d: %s"
               % (res.exit_code, tail))
    elif not seen:
        report("FAIL", prefix + "/runner", "no in-rig test reported: " + tail)
    else:
        print("# %s: %d in-rig results, %.1fs wall for the whole rig run"
              % (prefix, seen, res.wall), flush=True)
