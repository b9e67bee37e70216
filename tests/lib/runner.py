"""How the project's Python tests run, the same on the host (tests/run.py)
and in the rig (tests/rig/in_rig.py): the test_* functions of a module, in
the order they are written, each run as a unittest case
(unittest.FunctionTestCase); gmemtest.Skip is unittest's SkipTest.  A
test's return value, if any, is its detail: what it measured.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import importlib
import inspect
import os
import time
import unittest


def tests_of(module):
    """(name without test_, function) of each test of module, in order."""
    found = [(n[5:], f) for n, f in vars(module).items()
             if n.startswith("test_") and inspect.isfunction(f)]
    found.sort(key=lambda t: t[1].__code__.co_firstlineno)
    return found


def chosen(specs, default=""):
    """The tests the rig's runner (tests/rig/in_rig.py) runs for its
    arguments: (name, function) of each test of each module spec, 'NAME',
    'NAME:SUBSTRING' or 'NAME:!SUBSTRING' (rig_tests if there is none):
    those whose name holds the spec's SUBSTRING, or default; with
    !SUBSTRING, those whose name does not hold it (and holds default).  A
    module's tests are named with its RIG_PREFIX, if it has one, else its
    name without test_ (the host's end-to-end modules) or nothing."""
    tests = []
    for spec in specs or ["rig_tests"]:
        module, _, select = spec.partition(":")
        mod = importlib.import_module(module)
        exclude = select[1:] if select.startswith("!") else None
        select = default if exclude else select or default
        prefix = getattr(mod, "RIG_PREFIX",
                         module[5:] + "/" if module.startswith("test_") else "")
        tests += [(prefix + n, f) for n, f in tests_of(mod)
                  if (not select or select in prefix + n) and
                  not (exclude and exclude in prefix + n)]
    return tests


class _Result(unittest.TestResult):
    """Keeps the first error's exception, for a one-line report."""

    def __init__(self):
        super().__init__()
        self.exc = None

    def addError(self, test, err):
        super().addError(test, err)
        self.exc = self.exc or err

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.exc = self.exc or err


def run(name, func):
    """Run one test function: (PASS|FAIL|SKIP, detail, seconds)."""
    said = {}

    def body():
        said["detail"] = func()

    result = _Result()
    start = time.time()
    unittest.FunctionTestCase(body, description=name).run(result)
    secs = time.time() - start
    if result.skipped:
        return "SKIP", result.skipped[0][1], secs
    if result.exc:
        etype, value, tb = result.exc
        last = None
        while tb:
            last, tb = tb, tb.tb_next
        where = "%s:%d" % (os.path.basename(last.tb_frame.f_code.co_filename),
                           last.tb_lineno) if last else "?"
        return "FAIL", "%s: %s (at %s)" % (etype.__name__, value, where), secs
    return "PASS", said.get("detail") or "", secs
