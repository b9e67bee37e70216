#!/usr/bin/python3
"""The project's test command: build what the tests need, run the qtest
suites and the end-to-end tests, print PASS/FAIL/SKIP for each and end
with 'N passed, N failed, N skipped'.  Exits non-zero on any failure.

  tests/run.py [-k SUBSTRING] [--no-build]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import gmemtest  # noqa: E402

ROOT = gmemtest.ROOT
QEMU_BUILD = os.path.join(gmemtest.BUILD, "qemu-build")

# qtest executables: (ninja target, description).  Ours first, then QEMU's
# own suites that cover memory backends, QOM and QMP.
QTESTS = [
    ("overlay/tests/qtest/guest-memfd-test", "ours"),
    ("tests/qtest/qom-test", "QEMU"),
    ("tests/qtest/device-introspect-test", "QEMU"),
    ("tests/qtest/qmp-test", "QEMU"),
    ("tests/qtest/qmp-cmd-test", "QEMU"),
    ("tests/qtest/test-hmp", "QEMU"),
]

# The rig first: the benchmark's smoke run uses the kernel it builds.
E2E_MODULES = ["test_payload", "test_backend", "test_migration", "test_libvirt", "test_rig",
               "test_bench"]
# What --quick leaves out: most of a full run's time
SLOW_MODULES = ["test_rig", "test_bench"]


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


TAP_RE = re.compile(r"^(not ok|ok)\s+\d+\s*-?\s*(.*?)(?:\s+#\s*(SKIP|TODO)\b\s*(.*))?$")


def run_qtest(res, target, origin, timeout=900):
    exe = os.path.join(QEMU_BUILD, target)
    name = os.path.basename(target)
    env = dict(os.environ)
    env["QTEST_QEMU_BINARY"] = os.path.join(QEMU_BUILD, "qemu-system-x86_64")
    env["PAYLOAD"] = gmemtest.PAYLOAD
    start = time.time()
    if not os.access(exe, os.X_OK):
        res.report("FAIL", "qtest/%s" % name, "%s is not built (--no-build skips "
                   "building the qtests)" % os.path.relpath(exe, ROOT))
        return
    try:
        p = subprocess.run([exe, "--tap", "-k"], cwd=QEMU_BUILD, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        res.report("FAIL", "qtest/%s" % name, "timed out after %ds" % timeout)
        return
    seen_fail = False
    n = 0
    last_lines = []
    for line in p.stdout.splitlines():
        m = TAP_RE.match(line)
        if not m:
            if not line.startswith("#") and line.strip():
                last_lines.append(line)
                last_lines = last_lines[-15:]
            continue
        n += 1
        ok, path, directive, reason = m.groups()
        tname = "qtest/%s%s" % (name, path if path.startswith("/") else "/" + path)
        if directive == "SKIP":
            res.report("SKIP", tname, reason or "skipped by the test")
        elif ok == "ok":
            res.report("PASS", tname)
        else:
            seen_fail = True
            res.report("FAIL", tname, " | ".join(last_lines[-5:]))
        last_lines = []
    if p.returncode != 0 and not seen_fail:
        res.report("FAIL", "qtest/%s" % name,
                   "exited %d after %d results: %s" % (p.returncode, n,
                                                      " | ".join(last_lines[-8:])))
    elif n == 0:
        res.report("FAIL", "qtest/%s" % name, "reported no test")
    print("# qtest/%s (%s): %d results in %.1fs" % (name, origin, n, time.time() - start),
          flush=True)


def load_module(name):
    path = os.path.join(HERE, "e2e", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_e2e(res, module, select):
    mod = load_module(module)
    if hasattr(mod, "run_all"):
        # The module runs and filters its tests itself (the rig: one boot,
        # many tests).
        try:
            mod.run_all(res.report, select)
        except Exception as e:
            res.report("FAIL", module[5:] + "/all", "%s: %s" % (type(e).__name__, e))
        return
    tests = [(n, f) for n, f in vars(mod).items()
             if n.startswith("test_") and inspect.isfunction(f)]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    for fname, func in tests:
        name = "e2e/%s/%s" % (module[5:], fname[5:])
        if select and select not in name:
            continue
        start = time.time()
        try:
            detail = func()
            res.report("PASS", name, detail or "", time.time() - start)
        except gmemtest.Skip as e:
            res.report("SKIP", name, str(e))
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)
            where = "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno)
            res.report("FAIL", name, "%s: %s (at %s)" % (type(e).__name__, e, where),
                       time.time() - start)


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
    qtests = [(t, o) for t, o in QTESTS
              if not opts.select or opts.select in "qtest/" + os.path.basename(t)
              or opts.select.startswith("qtest/" + os.path.basename(t))]
    if not opts.no_build:
        t0 = time.time()
        if not build([t for t, _ in QTESTS]):
            res.report("FAIL", "build", "see the messages above")
            print("%d passed, %d failed, %d skipped" % (0, 1, 0))
            return 1
        print("# build: %.1fs" % (time.time() - t0), flush=True)

    for module in E2E_MODULES:
        if opts.quick and module in SLOW_MODULES:
            print("# %s: left out (--quick)" % module, flush=True)
            continue
        run_e2e(res, module, opts.select)
    for target, origin in qtests:
        run_qtest(res, target, origin)

    c = res.counts
    if res.failed:
        print("# failed: " + ", ".join(res.failed))
    print("%d passed, %d failed, %d skipped" % (c["PASS"], c["FAIL"], c["SKIP"]))
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
