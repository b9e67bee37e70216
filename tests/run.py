#!/usr/bin/python3
"""The project's test command: build what the tests need, run the qtest
suites and the end-to-end tests, print PASS/FAIL/SKIP for each and end
with 'N passed, N failed, N skipped'.  Exits non-zero on any failure.

  tests/run.py [-k SUBSTRING] [--no-build]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import gmemtest  # noqa: E402
import runner  # noqa: E402

ROOT = gmemtest.ROOT
QEMU_BUILD = os.path.join(gmemtest.BUILD, "qemu-build")

# qtests: (ninja target, meson test name, whose).  Ours first, then QEMU's
# own suites that cover memory backends, QOM and QMP.  All are registered
# with meson (ours in tests/qtest/meson.build) and run by `meson test`.
QTESTS = [
    ("overlay/tests/qtest/guest-memfd-test", "guest-memfd-test", "ours"),
    # A unit test of QEMU code the backend relies on (hook 0025)
    ("overlay/tests/unit/test-qemu-file-error", "test-qemu-file-error", "ours"),
    ("tests/qtest/qom-test", "qtest-x86_64/qom-test", "QEMU"),
    ("tests/qtest/device-introspect-test", "qtest-x86_64/device-introspect-test", "QEMU"),
    ("tests/qtest/qmp-test", "qtest-x86_64/qmp-test", "QEMU"),
    ("tests/qtest/qmp-cmd-test", "qtest-x86_64/qmp-cmd-test", "QEMU"),
    ("tests/qtest/test-hmp", "qtest-x86_64/test-hmp", "QEMU"),
]

# The rig first: the benchmark's smoke run uses the kernel it builds.
E2E_MODULES = ["test_harness", "test_payload", "test_backend", "test_migration", "test_libvirt",
               "test_rig", "test_arm64", "test_bench"]
# What --quick leaves out: most of a full run's time
SLOW_MODULES = ["test_rig", "test_arm64", "test_bench"]


class Results:
    def __init__(self):
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.failed = []

    def report(self, status, name, detail="", secs=None):
        self.counts[status] += 1
        if status == "FAIL":
            self.failed.append(name)
        t = " (%.1fs)" % secs if secs is not None else ""
        line = "%s %s%s" % (status, name, t)
        if detail:
            detail = detail.replace("\n", " | ")
            if len(detail) > 600:
                detail = detail[:300] + " ... " + detail[-300:]
            line += ": " + detail
        print(line, flush=True)


def build(qtest_targets):
    env = dict(os.environ)
    r = subprocess.call([os.path.join(ROOT, "scripts", "build-qemu.sh")]
                        + qtest_targets, env=env)
    if r:
        return False
    # The tests that look for memory errors run this one.
    r = subprocess.call([os.path.join(ROOT, "scripts", "build-qemu.sh"), "--asan"],
                        env=env)
    if r:
        return False
    # A build without KVM, where the backend's type must still exist
    r = subprocess.call([os.path.join(ROOT, "scripts", "build-qemu.sh"), "--no-kvm"],
                        env=env)
    if r:
        return False
    r = subprocess.call(["make", "-s", "-C", os.path.join(ROOT, "tests", "guest"),
                         "O=" + os.path.join(gmemtest.BUILD, "guest")])
    return r == 0


def test_label(target, name):
    """What the results call a meson test: qtest/NAME or unit/NAME."""
    return ("unit/" if "/unit/" in target else "qtest/") + name.split("/")[-1]


def tap_skip_reason(stdout, case):
    """The reason a qtest's TAP output gives for skipping case ("4
    /x86_64/a/b" in meson's JUnit log: "ok 4 /x86_64/a/b # SKIP reason"),
    which meson's JUnit log leaves out; None if it gives none."""
    path = case.split(" ", 1)[-1]
    for line in stdout.splitlines():
        m = re.match(r"ok \d+ (\S+) # SKIP\s*(.*)", line.strip())
        if m and m.group(1) == path and m.group(2):
            return m.group(2)
    return None


def run_qtests(res, qtests, timeout=1800):
    """Run the qtests with `meson test` and report each TAP case as meson
    reports it (its JUnit log), a test that meson failed without a
    failing case as a failure of its own."""
    missing = [t for t, _, _ in qtests
               if not os.access(os.path.join(QEMU_BUILD, t), os.X_OK)]
    for t in missing:
        res.report("FAIL", test_label(t, t), "%s is not built "
                   "(--no-build skips building the qtests)" % t)
    qtests = [q for q in qtests if q[0] not in missing]
    if not qtests:
        return
    env = dict(os.environ, PAYLOAD=gmemtest.PAYLOAD)
    logs = os.path.join(QEMU_BUILD, "meson-logs")
    for f in ("testlog.json", "testlog.junit.xml"):
        if os.path.exists(os.path.join(logs, f)):
            os.unlink(os.path.join(logs, f))
    start = time.time()
    try:
        subprocess.run(["meson", "test", "-C", QEMU_BUILD, "--no-rebuild",
                        "--num-processes", "1"] + [name for _, name, _ in qtests],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        res.report("FAIL", "qtest/all", "meson test timed out after %ds" % timeout)
        return
    results = {}
    try:
        with open(os.path.join(logs, "testlog.json")) as f:
            for line in f:
                t = json.loads(line)
                results[t["name"].split(" / ")[-1]] = t
        suites = ET.parse(os.path.join(logs, "testlog.junit.xml")).getroot()
    except (OSError, ValueError, ET.ParseError) as e:
        res.report("FAIL", "qtest/all", "meson test left no usable log: %s" % e)
        return
    cases = {}
    for suite in suites.iter("testsuite"):
        cases[suite.get("name").split(" / ")[-1]] = list(suite.iter("testcase"))
    for target, name, origin in qtests:
        label = test_label(target, name)
        t = results.get(name)
        if t is None:
            res.report("FAIL", label, "meson test did not run it")
            continue
        failed = False
        for case in cases.get(name, []):
            cname = label + case.get("name").split(" ", 1)[-1]
            if case.find("skipped") is not None:
                res.report("SKIP", cname, case.find("skipped").get("message") or
                           tap_skip_reason(t.get("stdout") or "", case.get("name")) or
                           "skipped by the test")
            elif case.find("failure") is not None or case.find("error") is not None:
                failed = True
                tail = (t.get("stdout") or "").strip().splitlines()[-5:]
                res.report("FAIL", cname, " | ".join(tail))
            else:
                res.report("PASS", cname)
        if t["result"] not in ("OK", "SKIP") and not failed:
            tail = (t.get("stdout") or "").strip().splitlines()[-8:]
            res.report("FAIL", label, "meson says %s after %d cases: %s"
                       % (t["result"], len(cases.get(name, [])), " | ".join(tail)))
        elif not cases.get(name):
            res.report("FAIL", label, "reported no test")
        print("# %s (%s): %d results in %.1fs" % (
            label, origin, len(cases.get(name, [])), t.get("duration", 0)), flush=True)
    print("# qtests: meson test, %.1fs" % (time.time() - start), flush=True)


def load_module(name):
    path = os.path.join(HERE, "e2e", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_e2e(res, module, select):
    try:
        mod = load_module(module)
    except Exception as e:
        # Its tests cannot be listed: one failure, and the run goes on.
        res.report("FAIL", "e2e/%s/load" % module[5:], "%s: %s" % (type(e).__name__, e))
        return
    if hasattr(mod, "run_all"):
        # The module runs and filters its tests itself (the rig: one boot,
        # many tests).
        try:
            mod.run_all(res.report, select)
        except Exception as e:
            res.report("FAIL", module[5:] + "/all", "%s: %s" % (type(e).__name__, e))
        return
    for short, func in runner.tests_of(mod):
        name = "e2e/%s/%s" % (module[5:], short)
        if select and select not in name:
            continue
        status, detail, secs = runner.run(name, func)
        res.report(status, name, detail, secs if status != "SKIP" else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="select", default="",
                    help="run only tests whose name contains this")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="leave out the nested rig and the benchmark's smoke "
                    "run (everyday runs; make check runs everything)")
    opts = ap.parse_args()

    res = Results()
    qtests = [q for q in QTESTS
              if not opts.select or opts.select in test_label(q[0], q[1])
              or opts.select.startswith(test_label(q[0], q[1]))]
    if not opts.no_build:
        t0 = time.time()
        if not build([t for t, _, _ in QTESTS]):
            res.report("FAIL", "build", "see the messages above")
            print("%d passed, %d failed, %d skipped" % (0, 1, 0))
            return 1
        print("# build: %.1fs" % (time.time() - t0), flush=True)

    for module in E2E_MODULES:
        if opts.quick and module in SLOW_MODULES:
            print("# %s: left out (--quick)" % module, flush=True)
            continue
        run_e2e(res, module, opts.select)
    run_qtests(res, qtests)

    c = res.counts
    if res.failed:
        print("# failed: " + ", ".join(res.failed))
    print("%d passed, %d failed, %d skipped" % (c["PASS"], c["FAIL"], c["SKIP"]))
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
