"""The cases of our qtest (tests/qtest/guest-memfd-test.c) that need KVM
with a mappable guest_memfd, run in the rig on a host whose own KVM
cannot run them (tests/e2e/test_rig.py, HOST_MODULES): the same binary
meson runs on the host, one case at a time, its TAP line read back.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import subprocess

from gmemtest import BUILD, PAYLOAD, QEMU, Skip

# Named as tests/run.py names the qtest's cases on the host
RIG_PREFIX = "qtest/guest-memfd-test/x86_64/guest-memfd/kvm/"

BINARY = os.path.join(BUILD, "qemu-build", "overlay", "tests", "qtest",
                      "guest-memfd-test")
TAP = re.compile(r"^(ok|not ok) \d+ (\S+)(?: # SKIP(.*))?$")


def run_case(path):
    """Run one case of the qtest; fail with its output if it fails."""
    assert os.access(BINARY, os.X_OK), "%s is not built" % BINARY
    env = dict(os.environ, QTEST_QEMU_BINARY=QEMU, PAYLOAD=PAYLOAD)
    p = subprocess.run([BINARY, "--tap", "-p", "/x86_64" + path], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=300)
    lines = [TAP.match(line) for line in p.stdout.splitlines()]
    lines = [m for m in lines if m and m.group(2).endswith(path)]
    tail = " | ".join(p.stdout.strip().splitlines()[-6:])
    assert len(lines) == 1, "no TAP line for %s (exit %d): %s" % (
        path, p.returncode, tail)
    if lines[0].group(3) is not None:
        raise Skip(lines[0].group(3).strip())
    assert lines[0].group(1) == "ok" and p.returncode == 0, \
        "exit %d: %s" % (p.returncode, tail)


def test_bad_input():
    run_case("/guest-memfd/kvm/bad-input")


def test_readback():
    run_case("/guest-memfd/kvm/readback")


def test_cgs_refusals():
    run_case("/guest-memfd/kvm/cgs-refusals")
