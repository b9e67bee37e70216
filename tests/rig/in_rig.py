#!/usr/bin/python3
"""Runs inside the rig (tests/rig/init): the test_* functions of test
modules of tests/rig/ (rig_tests by default), one line each into
results.txt in the results folder ($GM_RIG_RESULTS):
'PASS|FAIL|SKIP name: detail'.

  in_rig.py [--module NAME[:SUBSTRING]]... [SUBSTRING]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import importlib
import inspect
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import gmemtest  # noqa: E402

# The results folder the rig's init mounted from the host
OUT = os.path.join(os.environ.get("GM_RIG_RESULTS", "/tmp/rig-results"),
                   "results.txt")


def main():
    """in_rig.py [--module NAME[:SUBSTRING]]... [SUBSTRING]: the tests of
    each module named (rig_tests if none), those whose name holds the
    module's SUBSTRING, or the last argument's."""
    args = sys.argv[1:]
    specs = []
    while args[:1] == ["--module"]:
        specs.append(args[1])
        args = args[2:]
    default = args[0] if args else ""
    tests = []
    for spec in specs or ["rig_tests"]:
        module, _, select = spec.partition(":")
        mod = importlib.import_module(module)
        found = [(n, f) for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f)]
        found.sort(key=lambda t: t[1].__code__.co_firstlineno)
        select = select or default
        tests += [(n, f) for n, f in found if not select or select in n[5:]]
    with open(OUT, "w") as out:
        for fname, func in tests:
            name = fname[5:]
            t0 = time.time()
            try:
                detail = func() or ""
                status = "PASS"
            except gmemtest.Skip as e:
                status, detail = "SKIP", str(e)
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)
                status = "FAIL"
                detail = "%s: %s (at %s:%d)" % (type(e).__name__, e,
                                                os.path.basename(tb[-1].filename),
                                                tb[-1].lineno)
            line = "%s %s (%.1fs)%s" % (status, name, time.time() - t0,
                                        ": " + detail.replace("\n", " | ") if detail else "")
            print(line, flush=True)
            out.write(line + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
