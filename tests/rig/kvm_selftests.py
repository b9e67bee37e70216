"""Linux's own KVM selftests for guest_memfd and private memory, run inside
the rig (tests/rig/in_rig.py --module kvm_selftests) on the rig kernel's
KVM.  tests/rig/build-selftests.sh builds them from the rig kernel's
source tree into ~/.cache/gmem (the rig sees the host's root, and HOME).
One test per binary run; each reports the binary's own counts (kselftest
TAP) when it prints them, and fails if the binary fails, counts a
failure or skips itself (the rig kernel is built for them).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import subprocess

from gmemtest import ROOT

TIMEOUT = 300
# kselftest.h's exit codes
KSFT_SKIP = 4

TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) "
                    r"skip:(\d+) error:(\d+)", re.M)
RESULT = re.compile(r"^(ok|not ok) \d+\s*-?\s*(.*?)(?:\s+#\s*(SKIP|XFAIL)\b\s*(.*))?$")
PLAN_SKIP = re.compile(r"^1\.\.0 # SKIP\s*-?\s*(.*)$", re.M)

_where = []


def selftests_dir():
    """Where build-selftests.sh put the binaries (it names the folder
    without building)."""
    if not _where:
        p = subprocess.run([os.path.join(ROOT, "tests", "rig", "build-selftests.sh"),
                            "--print-dir"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        assert p.returncode == 0, "build-selftests.sh --print-dir: " + p.stdout
        _where.append(p.stdout.strip().splitlines()[-1])
    return _where[0]


def counts(out):
    """The binary's own counts: kselftest's Totals line if it printed
    one, else its ok / not ok lines.  None if it printed neither."""
    m = TOTALS.search(out)
    if m:
        keys = ("pass", "fail", "xfail", "xpass", "skip", "error")
        return dict(zip(keys, map(int, m.groups())))
    c = dict.fromkeys(("pass", "fail", "xfail", "xpass", "skip", "error"), 0)
    seen = False
    for line in out.splitlines():
        m = RESULT.match(line)
        if not m:
            continue
        seen = True
        ok, _, directive, _ = m.groups()
        if directive == "SKIP":
            c["skip"] += 1
        elif directive == "XFAIL":
            c["xfail"] += 1
        else:
            c["pass" if ok == "ok" else "fail"] += 1
    return c if seen else None


def run(name, *args, must_say=()):
    exe = os.path.join(selftests_dir(), name)
    # build-selftests.sh builds every binary run here, or fails: one that
    # is missing is a failure, not a reason to skip.
    assert os.access(exe, os.X_OK), \
        "%s was not built (tests/rig/build-selftests.sh)" % exe
    cmd = [exe] + list(args)
    try:
        p = subprocess.run(cmd, cwd=os.environ.get("TMPDIR", "/tmp"),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           errors="replace", timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.output or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        raise AssertionError("%s timed out after %ds: %s"
                             % (" ".join(cmd), TIMEOUT, tail(out)))
    out = p.stdout
    for line in must_say:
        assert line in out, "%s did not say %r: %s" % (name, line, tail(out))
    c = counts(out)
    if p.returncode == KSFT_SKIP and not (c and (c["fail"] or c["error"])):
        # It says it cannot run ("1..0 # SKIP reason").  The rig kernel is
        # built for these tests: that means the kernel lost what they need.
        m = PLAN_SKIP.search(out)
        raise AssertionError("%s skipped itself on the rig kernel: %s" % (
            name, m.group(1).strip() if m else tail(out, 3)))
    assert p.returncode == 0, "%s exited %d: %s" % (" ".join(cmd), p.returncode, tail(out))
    if c is None:
        # In 7.2 these binaries assert rather than count: exit 0 is their
        # pass, even when they leave parts out ("Skipping tests for
        # KVM_MEM_GUEST_MEMFD memory regions", "Skipping tests for vm_type
        # 0x1").  The rig kernel is built for all of it: a part left out
        # is a failure, not a pass.
        said = [line.strip() for line in out.splitlines()
                if re.search(r"\bskip", line, re.I)]
        assert not said, "%s left parts out: %s" % (name, " | ".join(said)[:400])
        return "exit 0 (it prints no kselftest counts; no part left out)"
    assert not c["fail"] and not c["error"], "%s reported failures: %r: %s" % (
        " ".join(cmd), c, tail(out))
    detail = "pass:%d fail:%d skip:%d" % (c["pass"], c["fail"], c["skip"])
    detail += "".join(" %s:%d" % (k, c[k]) for k in ("xfail", "xpass", "error") if c[k])
    skipped = [line.split("# SKIP", 1)[1].strip(" -")
               for line in out.splitlines()
               if RESULT.match(line) and "# SKIP" in line]
    if skipped:
        detail += "; skipped: " + "; ".join(skipped)[:300]
    return detail


def tail(out, n=6):
    """The end of a binary's output, or the start of its assertion
    report (what failed, where) when it has one."""
    lines = out.strip().splitlines()
    for i, line in enumerate(lines):
        if "Test Assertion Failure" in line:
            # Without the backtrace ("  1  0x401234: main at x.c:12").
            said = [l.strip() for l in lines[i + 1:]
                    if not re.match(r"\s*\d+\s+0x[0-9a-f]+:", l)]
            return " | ".join(said[:n])
    return " | ".join(lines[-n:])


def test_guest_memfd_test():
    """guest_memfd on every VM type: flags, fallocate, mmap, a guest
    that reads and writes it; mbind and NUMA placement, which it passes
    over silently on a machine of one node (the rig has two); the faults
    a read through a new mapping takes (fault-around)."""
    nodes = len([n for n in os.listdir("/sys/devices/system/node")
                 if re.match(r"node\d+$", n)])
    # On one node the binary leaves its mbind and NUMA parts out silently.
    assert nodes >= 2, "the rig has %d NUMA node(s); guest_memfd_test's NUMA " \
        "parts need two (tests/lib/rig.py boots it with two)" % nodes
    # Dirty logging of guest_memfd memslots (kernel-patches/gmem-dirty-log),
    # as the kernel's switch has it.
    with open("/sys/module/kvm/parameters/gmem_dirty_logging") as f:
        logging = f.read().strip() == "Y"
    said = ["Dirty logging of guest_memfd: " + s for s in
            (["bitmap ok", "ring ok"] if logging else
             ["off (kvm.gmem_dirty_logging=0), refused"]) +
            ["refused for VMs with private memory"]]
    # A read through a new mapping maps the pages around each fault
    # (kernel-patches/gmem-fault-around).
    said.append("Fault-around: ")
    return run("guest_memfd_test", must_say=said) + "; %d NUMA nodes; " \
        "dirty logging of guest_memfd %s" % (nodes, "on" if logging else "off")


def test_gmem_in_place_conversion_test():
    """kernel-patches/gmem-in-place: KVM_SET_MEMORY_ATTRIBUTES2 on a
    sw-protected VM's guest_memfd: every bad input refused, SIGBUS on a
    private page through any host mapping (fault-around too), -EAGAIN
    on a page a pipe holds, KVM_SET_MEMORY_ATTRIBUTES converting the
    guest_memfd too, a guest reading the same bytes shared and private,
    and KVM taking private/shared from the guest_memfd.  With
    kvm.gmem_in_place_conversion=0: all of it refused, as in Linux 7.2."""
    with open("/sys/module/kvm/parameters/gmem_in_place_conversion") as f:
        on = f.read().strip() == "Y"
    said = ["In-place conversion: none in a VM without private memory"]
    if on:
        said += ["In-place conversion: " + s for s in (
            "bad inputs refused", "host access ok", "fault-around ok",
            "held page ok", "VM attributes ok", "guest in place ok",
            "guest two sides ok")]
    else:
        said.append("In-place conversion is off")
    return run("x86/gmem_in_place_conversion_test", must_say=said) + \
        "; in-place conversion %s" % ("on" if on else "off (refused)")


def test_sw_protected_intent_bit_test():
    """kernel-patches/sw-intent-bit: KVM_CAP_X86_SW_PROTECTED_INTENT_BIT:
    every bad input refused; a guest whose accesses with the bit are
    private exits with KVM_EXIT_MEMORY_FAULT where its intent differs
    from the attributes, both ways, and conversions and holes punched
    reach its mappings at both addresses."""
    return run("x86/sw_protected_intent_bit_test", must_say=(
        "Intent bit: bad inputs refused", "Intent bit: guest accesses ok"))


def test_private_mem_conversions_test():
    """KVM_X86_SW_PROTECTED_VM: the guest converts ranges with
    KVM_HC_MAP_GPA_RANGE, the host sets the attributes and punches holes."""
    return run("x86/private_mem_conversions_test")


def test_private_mem_conversions_test_2vcpus_2slots():
    """The same, a vCPU per rig CPU converting at once, the guest_memfd
    split over two memslots."""
    return run("x86/private_mem_conversions_test", "-n", "2", "-m", "2")


def test_private_mem_conversions_test_thp_2vcpus():
    """The same, the shared side backed by transparent huge pages."""
    return run("x86/private_mem_conversions_test", "-s", "anonymous_thp", "-n", "2")


def test_private_mem_kvm_exits_test():
    """KVM_EXIT_MEMORY_FAULT on private accesses to missing memory."""
    return run("x86/private_mem_kvm_exits_test")


def test_guest_memfd_memcg_test():
    """kernel-patches/gmem-memcg: a guest's guest_memfd page that would
    take the test's memory cgroup above memory.high is not allocated:
    KVM_RUN fails with ENOMEM and a KVM_EXIT_MEMORY_FAULT, nothing is
    OOM-killed, and the vCPU runs on once memory.high is raised.  It
    wants cgroup v2 at /sys/fs/cgroup, as a host's init mounts it."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        subprocess.check_call(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"])
    return run("guest_memfd_memcg_test", must_say=("Guest faulted at page",))


def test_set_memory_region_test():
    """Memslots: zero slots, invalid flags, the most slots KVM allows,
    guest_memfd slots and overlaps, MOVE/DELETE under a running vCPU."""
    return run("set_memory_region_test")


def test_pre_fault_memory_test():
    """KVM_PRE_FAULT_MEMORY, also on a sw-protected VM's private memory."""
    return run("pre_fault_memory_test")
