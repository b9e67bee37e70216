"""The test machinery's own judgement, shown failing where no kernel at
hand would make it fail: what the rig's runner of Linux's KVM selftests
(tests/rig/kvm_selftests.py run()) counts as a pass, what the
benchmark's smoke test (test_bench.py) counts as written by its run, and
what the test command does with a test module it cannot load, and when
the rig's runner blames the rig and runs a test again.

Linux 7.2's KVM selftests print no kselftest counts; they exit 0 after
leaving parts of themselves out ("Skipping tests for KVM_MEM_GUEST_MEMFD
memory regions" where the kernel has no software-protected VM type), or
exit 4 (KSFT_SKIP) when they cannot run at all.  On the rig kernel,
built for all of it, either means the kernel lost what the tests are
for, and must be a failure.  The rig kernel never does that, and a 7.2
selftest on Debian's 6.12 kernel (no KVM_SW_PROTECTED_VM) hangs in the
rig instead of skipping; so these run run() on stand-ins that print what
7.2's set_memory_region_test prints, and exit as it does.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import contextlib
import importlib.util
import io
import os
import sys
import tempfile
import time

from gmemtest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "rig"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import kvm_selftests  # noqa: E402
from test_bench import assert_written  # noqa: E402

NAME = "set_memory_region_test"
SEED = "Random seed: 0x6b8b4567\nTesting KVM_RUN with zero added memory regions\n"


def run_stand_in(output, status):
    """kvm_selftests.run(NAME) on a script that prints output and exits
    with status, in place of the built binary."""
    with tempfile.TemporaryDirectory() as folder:
        exe = os.path.join(folder, NAME)
        with open(exe, "w") as f:
            f.write("#!/bin/sh\ncat <<'EOF'\n%sEOF\nexit %d\n" % (output, status))
        os.chmod(exe, 0o755)
        saved = kvm_selftests._where[:]
        kvm_selftests._where[:] = [folder]
        try:
            return kvm_selftests.run(NAME)
        finally:
            kvm_selftests._where[:] = saved


def test_selftest_run_whole_is_a_pass():
    """The control: the same stand-in, leaving nothing out, passes."""
    said = run_stand_in(SEED + "Testing KVM_MEM_GUEST_MEMFD memory regions\n", 0)
    assert said.startswith("exit 0"), said
    return said


def test_selftest_leaving_its_guest_memfd_part_out_is_a_failure():
    try:
        said = run_stand_in(
            SEED + "Skipping tests for KVM_MEM_GUEST_MEMFD memory regions\n", 0)
    except AssertionError as e:
        assert "left parts out" in str(e) and "KVM_MEM_GUEST_MEMFD" in str(e), e
        return "failed as it should: %s" % e
    raise AssertionError("exit 0 after leaving the guest_memfd part out "
                         "counted as a pass: %s" % said)


def test_selftest_skipping_itself_is_a_failure():
    try:
        said = run_stand_in("1..0 # SKIP KVM_X86_SW_PROTECTED_VM not supported\n",
                            kvm_selftests.KSFT_SKIP)
    except AssertionError as e:
        assert "skipped itself" in str(e) and "SW_PROTECTED_VM" in str(e), e
        return "failed as it should: %s" % e
    raise AssertionError("a selftest that skipped itself counted as a pass: %s"
                         % said)


def written_fails(folder, start):
    """Whether assert_written() fails on folder's results.png."""
    try:
        assert_written(folder, ["results.png"], start)
    except AssertionError as e:
        assert "did not write" in str(e), e
        return True
    return False


def test_bench_output_left_by_an_earlier_run_is_a_failure():
    """test_bench's check that the run wrote its plot and tables: a file
    there from before the run (the plot of an earlier run, say) fails it,
    as does an empty or missing one; a fresh one passes."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "results.png")
        start = time.time()
        with open(path, "wb") as f:
            f.write(b"\x89PNG")
        os.utime(path, (start - 60, start - 60))
        assert written_fails(folder, start), "a plot older than the run passed"
        open(path, "wb").close()
        os.utime(path, (start + 1, start + 1))
        assert written_fails(folder, start), "an empty plot passed"
        os.unlink(path)
        assert written_fails(folder, start), "a missing plot passed"
        with open(path, "wb") as f:
            f.write(b"\x89PNG")
        assert not written_fails(folder, start), "a fresh plot failed"
    return "failed as it should for a file older than the run, empty, missing"


def test_module_that_cannot_load_is_a_failure():
    """tests/run.py reports a test module it cannot load as a failure of
    its own and goes on with the rest, rather than ending the run with a
    traceback and no summary line (as it did when a module imported a
    name its library no longer had)."""
    spec = importlib.util.spec_from_file_location(
        "gm_run", os.path.join(ROOT, "tests", "run.py"))
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    res = run.Results()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run.run_e2e(res, "test_no_such_module", "")
    assert res.counts == {"PASS": 0, "FAIL": 1, "SKIP": 0}, res.counts
    assert res.failed == ["e2e/no_such_module/load"], res.failed
    return out.getvalue().strip().split(": ", 1)[0]


REGS = "RIP=%016x RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"


def test_guest_hangs_blames_the_rig_only_in_the_rig():
    """gmemtest.guest_hangs(): a vCPU at a Linux kernel address is the
    rig's TCG (RigCorrupted, run again) only inside the rig; on a host it
    is a failure, and so is a reset (real mode) or a RIP in the payload,
    anywhere."""
    import gmemtest
    saved = os.environ.pop("GM_IN_RIG", None)
    seen = []
    try:
        for in_rig, rip in ((True, 0xffffffff81651a0c), (False, 0xffffffff81651a0c),
                            (True, 0xfff0), (True, 0xffff1234)):
            if in_rig:
                os.environ["GM_IN_RIG"] = "1"
            else:
                os.environ.pop("GM_IN_RIG", None)
            try:
                gmemtest.guest_hangs(lambda line: REGS % rip, "stuck")
            except Exception as e:
                seen.append(type(e).__name__)
    finally:
        os.environ.pop("GM_IN_RIG", None)
        if saved is not None:
            os.environ["GM_IN_RIG"] = saved
    assert seen == ["RigCorrupted", "AssertionError", "AssertionError",
                    "AssertionError"], seen
    return " ".join(seen)


class _StuckVm:
    """What migration.wait_counter() asks of a Qemu, for a guest that
    printed one counter and stopped with its vCPU at rip."""

    def __init__(self, rip):
        self.rip = rip
        self.proc = self
        self.qmp = self

    def poll(self):
        return None

    def output(self):
        return "COUNTER 0x0000000000000060\n"

    def errors(self):
        return ""

    def cmd(self, name, **args):
        return {"status": "running"}

    def hmp(self, line):
        return REGS % self.rip


def test_migration_wait_blames_the_rig_only_in_the_rig():
    """migration.wait_counter(), where the migration tests wait for the
    guest: a guest stopped at the rig kernel's RIP after VMRUN (CI,
    2026-12-03) is RigCorrupted in the rig, so that its test runs again;
    on a host, or at a RIP in the payload, it fails."""
    import migration
    saved = os.environ.pop("GM_IN_RIG", None)
    seen = []
    try:
        for in_rig, rip in ((True, 0xffffffff81651a0c), (False, 0xffffffff81651a0c),
                            (True, 0xffff1234)):
            if in_rig:
                os.environ["GM_IN_RIG"] = "1"
            else:
                os.environ.pop("GM_IN_RIG", None)
            try:
                migration.wait_counter(_StuckVm(rip), 0x60, timeout=0)
            except Exception as e:
                seen.append("%s(%s)" % (type(e).__name__, "stayed at [96]" in str(e)))
    finally:
        os.environ.pop("GM_IN_RIG", None)
        if saved is not None:
            os.environ["GM_IN_RIG"] = saved
    assert seen == ["RigCorrupted(True)", "AssertionError(True)",
                    "AssertionError(True)"], seen
    return " ".join(seen)


STAND_IN_TESTS = '''
import gmemtest
runs = []

def test_corrupted_once():
    runs.append("once")
    if runs.count("once") == 1:
        raise gmemtest.RigCorrupted("RIPs 0xffffffff81000000")
    return "second run"

def test_corrupted_twice():
    raise gmemtest.RigCorrupted("RIPs 0xffffffff81000000")

def test_plain_failure():
    runs.append("plain")
    assert False, "a real failure"
'''


def test_rig_runner_runs_a_rig_corrupted_test_again():
    """tests/rig/in_rig.py runs a test that failed with RigCorrupted once
    more and says so; a second RigCorrupted fails, and any other failure
    is not run again."""
    import in_rig
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "gm_stand_in_tests.py"), "w") as f:
            f.write(STAND_IN_TESTS)
        sys.path.insert(0, folder)
        saved = in_rig.OUT, sys.argv
        in_rig.OUT = os.path.join(folder, "results.txt")
        sys.argv = ["in_rig.py", "--module", "gm_stand_in_tests"]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                in_rig.main()
            with open(in_rig.OUT) as f:
                lines = f.read().splitlines()
            runs = sys.modules["gm_stand_in_tests"].runs
        finally:
            in_rig.OUT, sys.argv = saved
            sys.path.remove(folder)
            sys.modules.pop("gm_stand_in_tests", None)
    status = [l.split()[0] for l in lines]
    assert status == ["PASS", "FAIL", "FAIL"], lines
    assert "second run; run again after the rig's TCG corrupted" in lines[0], lines
    assert "RigCorrupted" in lines[1], lines
    assert runs.count("plain") == 1, runs
    return " | ".join(l[:60] for l in lines)
