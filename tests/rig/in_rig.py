#!/usr/bin/python3
"""Runs inside the rig (tests/rig/init): the test_* functions of test
modules of tests/rig/ (rig_tests by default), or of the host's
end-to-end modules in tests/e2e/ (test_backend, ...: their tests are
named <module without test_>/<test>, as tests/run.py names them; a
module's RIG_PREFIX, if it has one, goes before its tests' names), one
line each into results.txt in the results folder ($GM_RIG_RESULTS):
'PASS|FAIL|SKIP name: detail'.

  in_rig.py [--module NAME[:[!]SUBSTRING]]... [SUBSTRING]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import runner  # noqa: E402

# How long one test may take (the longest seen: about 75 s).  A test that
# hangs is stopped where it waits, and FAILs saying where, so that the
# rest of the rig's tests still run: a hang no longer uses up the whole
# rig's time with no word of which test it was.
TEST_LIMIT = int(os.environ.get("GM_RIG_TEST_LIMIT", "300"))


class TestHung(Exception):
    pass


def _stop_hung_test(signum, frame):
    """SIGALRM: stop the test, naming where in the tests' code it waited."""
    tests = os.path.dirname(HERE)
    where = []
    while frame:
        path = frame.f_code.co_filename
        if path.startswith(tests) and os.path.basename(path) not in (
                "runner.py", "in_rig.py"):
            where.append("%s:%d" % (os.path.basename(path), frame.f_lineno))
        frame = frame.f_back
    raise TestHung("no result after %ds: stopped waiting at %s" % (
        TEST_LIMIT, " < ".join(where[:4]) or "?"))


# The results folder the rig's init mounted from the host
OUT = os.path.join(os.environ.get("GM_RIG_RESULTS", "/tmp/rig-results"),
                   "results.txt")


def main():
    """in_rig.py [--module NAME[:[!]SUBSTRING]]... [SUBSTRING]: the tests
    of each module named (rig_tests if none), those whose name holds the
    module's SUBSTRING, or the last argument's; with !SUBSTRING, those
    whose name does not hold it (and holds the last argument)."""
    args = sys.argv[1:]
    specs = []
    while args[:1] == ["--module"]:
        specs.append(args[1])
        args = args[2:]
    tests = runner.chosen(specs, args[0] if args else "")
    signal.signal(signal.SIGALRM, _stop_hung_test)
    with open(OUT, "w") as out:
        for name, func in tests:
            signal.alarm(TEST_LIMIT)
            try:
                status, detail, secs = runner.run(name, func)
                # The rig's TCG, not the test, stopped the guest
                # (gmemtest.RigCorrupted): once more, and said so.
                if status == "FAIL" and detail.startswith("RigCorrupted:"):
                    first = detail[:300]
                    signal.alarm(TEST_LIMIT)
                    status, detail, secs = runner.run(name, func)
                    detail = "%s%srun again after the rig's TCG corrupted a " \
                        "vCPU (%s)" % (detail, "; " if detail else "", first)
            finally:
                signal.alarm(0)
            line = "%s %s (%.1fs)%s" % (status, name, secs,
                                        ": " + detail.replace("\n", " | ") if detail else "")
            print(line, flush=True)
            out.write(line + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
