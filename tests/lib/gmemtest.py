"""Helpers for the project's end-to-end tests: start QEMU, talk QMP,
build the payload's argument file, read KVM's capabilities.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import fcntl
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GM_BUILD", os.path.join(ROOT, "build"))
QEMU = os.path.join(BUILD, "qemu-build", "qemu-system-x86_64")
# The same build's second target, which runs the arm64 rig under TCG
QEMU_AARCH64 = os.path.join(BUILD, "qemu-build", "qemu-system-aarch64")
# The same, built with AddressSanitizer (scripts/build-qemu.sh --asan)
QEMU_ASAN = os.path.join(BUILD, "qemu-asan", "qemu-system-x86_64")
QEMU_NOKVM = os.path.join(BUILD, "qemu-nokvm", "qemu-system-x86_64")
PAYLOAD = os.path.join(BUILD, "guest", "payload.bin")

# <linux/kvm.h>
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_USER_MEMORY2 = 231
KVM_CAP_MEMORY_ATTRIBUTES = 233
KVM_CAP_GUEST_MEMFD = 234
KVM_CAP_GUEST_MEMFD_FLAGS = 244
KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES = 250    # gmem-in-place series
KVM_X86_SW_PROTECTED_VM = 1
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3
GUEST_MEMFD_FLAG_MMAP = 1 << 0
GUEST_MEMFD_FLAG_INIT_SHARED = 1 << 1


def _payload_abi():
    """The numbers of tests/guest/payload-abi.h, the one definition of
    the payload's argument file ("#define NAME number" lines)."""
    abi = {}
    with open(os.path.join(ROOT, "tests", "guest", "payload-abi.h")) as f:
        for m in re.finditer(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b",
                             f.read(), re.M):
            abi[m.group(1)] = int(m.group(2), 0)
    # The layout payload_args() packs
    assert (abi["A_RANGES"], abi["R_SIZE"]) == (16, 24), abi
    return abi


ABI = _payload_abi()
ARGS_MAGIC = ABI["ARGS_MAGIC"]
FLAG_HALT = ABI["FLAG_HALT"]
FLAG_HOTPLUG = ABI["FLAG_HOTPLUG"]
FLAG_HP_PRIVATE = ABI["FLAG_HP_PRIVATE"]
FLAG_COUNTER = ABI["FLAG_COUNTER"]
FLAG_HP_AGAIN = ABI["FLAG_HP_AGAIN"]
FLAG_IN_PLACE = ABI["FLAG_IN_PLACE"]
FLAG_HP_AGAIN_PRIVATE = ABI["FLAG_HP_AGAIN_PRIVATE"]
KIND_GUEST = ABI["KIND_GUEST"]
KIND_HOST = ABI["KIND_HOST"]
KIND_PRIVATE = ABI["KIND_PRIVATE"]
KIND_SHARED = ABI["KIND_SHARED"]
KIND_HCALL = ABI["KIND_HCALL"]
KIND_BENCH = ABI["KIND_BENCH"]
KIND_RACE = ABI["KIND_RACE"]
KIND_WAIT = ABI["KIND_WAIT"]
KIND_FUZZ = ABI["KIND_FUZZ"]
KIND_KEEP = ABI["KIND_KEEP"]
KIND_INTENT = ABI["KIND_INTENT"]
KIND_INTENT_TOUCH = ABI["KIND_INTENT_TOUCH"]
KIND_INTENT_PRIVATE = ABI["KIND_INTENT_PRIVATE"]
MAP_GPA_ENCRYPTED = ABI["MAP_GPA_ENCRYPTED"]
DEFAULT_SEED = ABI["DEFAULT_SEED"]


class Skip(unittest.SkipTest):
    """Raised by a test that cannot run here; the message is the reason."""


class RigCorrupted(Exception):
    """The rig's TCG left a vCPU of the nested guest with a state the
    guest cannot have.  tests/rig/in_rig.py runs a test that fails with
    it once more."""


def guest_hangs(hmp, why):
    """The payload guest hangs: in the rig, raise RigCorrupted if a vCPU
    is where the payload never runs; else AssertionError.  hmp(line) runs
    an HMP command in the guest's QEMU; why, with the vCPUs' RIPs, is the
    message."""
    try:
        regs = hmp("info registers -a")
    except Exception as e:      # QEMU gone: what it said is in why
        raise AssertionError("no registers (%s); %s" % (e, why))
    rips = [int(l.split()[0][4:], 16) for l in regs.splitlines()
            if l.startswith("RIP=")]
    # First: a retried run's message is cut short.
    why = "RIPs %s; %s" % (" ".join("0x%x" % r for r in rips), why)
    # The payload runs from its image just below 4 GiB: a RIP elsewhere
    # but in real mode (a reset, which counts as the guest's) is not the
    # guest's doing (seen in the rig: a Linux kernel address).  On a host
    # without the rig's TCG it would be a real bug: never retried there.
    if os.environ.get("GM_IN_RIG") and any(
            not (0xffff0000 <= r < 1 << 32 or r < 0x10000) for r in rips):
        raise RigCorrupted(why)
    raise AssertionError(why)


def kvm_caps():
    """KVM's VM-level capabilities that the backend depends on, or None
    with a reason when /dev/kvm cannot be used."""
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return None, "/dev/kvm: %s" % e.strerror
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    except OSError as e:
        os.close(kvm)
        return None, "KVM_CREATE_VM: %s" % e.strerror
    try:
        caps = {}
        for name, cap in (("user_memory2", KVM_CAP_USER_MEMORY2),
                          ("memory_attributes", KVM_CAP_MEMORY_ATTRIBUTES),
                          ("guest_memfd", KVM_CAP_GUEST_MEMFD),
                          ("guest_memfd_flags", KVM_CAP_GUEST_MEMFD_FLAGS)):
            try:
                caps[name] = fcntl.ioctl(vm, KVM_CHECK_EXTENSION, cap)
            except OSError:
                caps[name] = 0
        return caps, None
    finally:
        os.close(vm)
        os.close(kvm)


def in_place_supported():
    """Whether KVM converts guest_memfd pages between private and shared
    in place in a software-protected VM: KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES
    offers KVM_MEMORY_ATTRIBUTE_PRIVATE (the gmem-in-place kernel series,
    with kvm.gmem_in_place_conversion=1)."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM)
    except OSError:
        return False
    finally:
        os.close(kvm)
    try:
        return bool(fcntl.ioctl(vm, KVM_CHECK_EXTENSION,
                                KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) &
                    KVM_MEMORY_ATTRIBUTE_PRIVATE)
    except OSError:
        return False
    finally:
        os.close(vm)


# Where a host test that needs KVM runs when this host cannot run it
# (tests/e2e/test_rig.py, HOST_MODULES)
IN_RIG_INSTEAD = "; make check runs it in the nested rig instead (host-in-rig/...)"


def skip_host_kvm_test(why):
    """Skip a test that needs this host's KVM, saying where it runs
    instead (nowhere else if this is the rig)."""
    raise Skip(why + ("" if os.environ.get("GM_IN_RIG") else IN_RIG_INSTEAD))


def require_kvm():
    caps, why = kvm_caps()
    if caps is None:
        skip_host_kvm_test("no usable KVM (%s)" % why)
    return caps


def gmem_mmap_lacking():
    """(caps, None) if this host's KVM runs guests from a guest_memfd
    mapped shared (Linux 6.18+), else (None, why not)."""
    caps, why = kvm_caps()
    want = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED
    if caps is None:
        return None, "no usable KVM (%s)" % why
    if not caps["guest_memfd"] or not caps["user_memory2"]:
        return None, "host KVM has no guest_memfd (Linux 6.8+ needed)"
    if caps["guest_memfd_flags"] & want != want:
        return None, ("host KVM's guest_memfd cannot be mmap()ed shared "
                      "(GUEST_MEMFD_FLAG_MMAP|INIT_SHARED, Linux 6.18+ needed)")
    return caps, None


def require_gmem_mmap():
    caps, why = gmem_mmap_lacking()
    if caps is None:
        skip_host_kvm_test(why)
    return caps


def payload_args(ranges, flags=0, seed=DEFAULT_SEED):
    """The payload's fw_cfg argument file.  ranges: (base, length, kind,
    host_seed) tuples."""
    blob = struct.pack("<IIII", ARGS_MAGIC, flags, seed, len(ranges))
    for base, length, kind, hseed in ranges:
        blob += struct.pack("<QQII", base, length, kind, hseed)
    return blob


def pattern_word(addr, seed):
    """The word the payload writes at the start of the page at addr."""
    return addr ^ ((seed << 32) | seed)


def pattern_mismatches(data, base, seed=DEFAULT_SEED):
    """Offsets of the pages of data (guest memory from base) whose first
    word is not the payload's word for seed."""
    return [off for off in range(0, len(data), 4096)
            if struct.unpack_from("<Q", data, off)[0] !=
            pattern_word(base + off, seed)]


def check_pattern(data, base, seed=DEFAULT_SEED):
    """The payload's word is at the start of every page of data (guest
    memory from base)."""
    bad = pattern_mismatches(data, base, seed)
    assert not bad, "page 0x%x holds 0x%x, want 0x%x (%d pages wrong)" % (
        base + bad[0], struct.unpack_from("<Q", data, bad[0])[0],
        pattern_word(base + bad[0], seed), len(bad))


def counter_passes(data, base, seed=DEFAULT_SEED):
    """The passes of FLAG_COUNTER that data (guest memory of range 0, from
    base) shows: (c_first, c_last), the counter in its first and last page.
    A pass runs from the first page up, so each page holds c_first or
    c_first - 1, never more or less; raises AssertionError if not."""
    pat = (seed << 32) | seed
    counts = [struct.unpack_from("<Q", data, off)[0] ^ (base + off) ^ pat
              for off in range(0, len(data), 4096)]
    first = counts[0]
    for i, c in enumerate(counts):
        assert c in (first, first - 1) and c <= counts[i - 1 if i else 0], \
            "page 0x%x holds counter %d after %d" % (base + i * 4096, c, first)
    return first, counts[-1]


def host_pattern(base, length, seed):
    """Bytes for [base, base+length) with the payload's pattern: one word
    per page, the rest zero."""
    buf = bytearray(length)
    for off in range(0, length, 4096):
        struct.pack_into("<Q", buf, off, pattern_word(base + off, seed))
    return bytes(buf)


def _pinned_python():
    """QEMU's own Python packages (qemu.qmp, qemu.machine) from the pinned
    tree that scripts/qemu-tree.sh unpacks."""
    path = os.path.join(BUILD, "qemu-src", "python")
    if path not in sys.path:
        sys.path.insert(0, path)


def wait_for_socket(path, timeout):
    """Wait until a server listens at the unix socket path."""
    deadline = time.time() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)
        finally:
            sock.close()


class QMP:
    """The QMP side of a Qemu: QEMUMachine's commands and events with what
    the tests need on top (errors as RuntimeError, HMP)."""

    def __init__(self, machine):
        self.machine = machine

    def send(self, cmd, **args):
        """Run a command; return the whole response (with 'return' or
        'error')."""
        return self.machine.qmp(cmd, args_dict=args)

    def cmd(self, cmd, **args):
        resp = self.send(cmd, **args)
        if "error" in resp:
            raise RuntimeError("%s: %s" % (cmd, resp["error"]["desc"]))
        return resp["return"]

    def wait_event(self, name, timeout=30):
        """Wait for an event called name; return it."""
        ev = self.machine.event_wait(name, timeout=timeout)
        if ev is None:
            raise RuntimeError("no %s event in %ds" % (name, timeout))
        return ev

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})


class QtestClient:
    """QEMU's qtest protocol through its own client
    (qemu.machine.qtest.QEMUQtestProtocol, from the pinned tree): read and
    write guest memory as QEMU sees it, next to any accelerator."""

    def __init__(self, path, timeout=30):
        _pinned_python()
        from qemu.machine.qtest import QEMUQtestProtocol
        wait_for_socket(path, timeout)
        self.proto = QEMUQtestProtocol(path)
        self.proto.settimeout(timeout)
        self.proto.connect()

    def _cmd(self, line):
        resp = self.proto.cmd(line)
        if not resp:
            raise EOFError("qtest connection closed")
        if not resp.startswith("OK"):
            raise RuntimeError("qtest %r: %s" % (line[:40], resp.strip()))
        return resp.strip()

    def write(self, addr, data):
        self._cmd("write 0x%x 0x%x 0x%s" % (addr, len(data), data.hex()))

    def read(self, addr, size):
        resp = self._cmd("read 0x%x 0x%x" % (addr, size))
        return bytes.fromhex(resp.split()[1][2:])

    def close(self):
        self.proto.close()


class QemuStuck(Exception):
    """A QEMU process that SIGKILL did not end."""


# AddressSanitizer builds: memory errors only (QEMU leaks at exit by
# design), reported to stderr.  QEMUMachine passes our environment on.
os.environ["ASAN_OPTIONS"] = "detect_leaks=0"


def _machine_class():
    _pinned_python()
    from qemu.machine import QEMUMachine
    return QEMUMachine


class Qemu:
    """qemu-system-x86_64 run by QEMU's own qemu.machine.QEMUMachine (QMP
    over a socket pair, output to a log), with what the tests add: the
    payload as firmware with its argument file, debugcon to a file,
    isa-debug-exit, an optional qtest socket next to the accelerator, and
    a clear failure when SIGKILL cannot end QEMU.  Use as a context
    manager."""

    def __init__(self, args, accel="kvm", payload=PAYLOAD, args_blob=None,
                 qmp=True, machine="q35", extra_machine="", qtest=False,
                 binary=QEMU):
        self.dir = tempfile.mkdtemp(prefix="gmem-")
        self.debugcon = os.path.join(self.dir, "debugcon.txt")
        cpu = {"kvm": "host", "tcg": "max"}.get(accel.split(",")[0])
        cmd = ["-nodefaults", "-accel", accel,
               "-machine", machine + extra_machine,
               "-chardev", "file,id=dc,path=" + self.debugcon,
               "-device", "isa-debugcon,iobase=0xe9,chardev=dc",
               "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
        if cpu:
            cmd += ["-cpu", cpu]
        if payload:
            cmd += ["-bios", payload]
        if args_blob is not None:
            path = os.path.join(self.dir, "args.bin")
            with open(path, "wb") as f:
                f.write(args_blob)
            cmd += ["-fw_cfg", "name=opt/gmem/args,file=" + path]
        # Not QEMUQtestMachine: it adds -accel qtest, and these tests read
        # memory through qtest next to KVM or TCG.
        self.qtest_path = os.path.join(self.dir, "qtest.sock")
        if qtest:
            cmd += ["-qtest", "unix:%s,server=on,wait=off" % self.qtest_path]
        self.cmd = cmd + list(args)
        self.machine = _machine_class()(binary, name="qemu", log_dir=self.dir,
                                        base_temp_dir=self.dir)
        self.machine.set_qmp_monitor(qmp)
        self.use_qmp = qmp
        self.log = os.path.join(self.dir, "qemu.log")
        self.qmp = None
        self.qtest = None
        self.use_qtest = qtest

    @property
    def proc(self):
        """The QEMU process (subprocess.Popen), once started."""
        return self.machine._popen  # pylint: disable=protected-access

    def start(self):
        self.machine.add_args(*self.cmd)
        try:
            self.machine.launch()
        except Exception as e:
            raise RuntimeError("QEMU did not start: %s\n%s" %
                               (e, read_text(self.log))) from e
        if self.use_qmp:
            self.qmp = QMP(self.machine)
        if self.use_qtest:
            self.qtest = QtestClient(self.qtest_path)
        return self

    def wait(self, timeout=60):
        """Wait for QEMU to exit by itself; return its exit status."""
        return self.proc.wait(timeout)

    def errors(self):
        """QEMU's output (stdout and stderr) so far."""
        return read_text(self.log)

    def qom_get(self, path, prop):
        """A QOM property, over QMP."""
        return self.qmp.cmd("qom-get", path=path, property=prop)

    def read_memory(self, base, length):
        """Guest memory as QEMU sees it, through pmemsave."""
        return pmemsave(self.qmp.cmd, self.dir, base, length)

    def output(self):
        return read_text(self.debugcon)

    def wait_output(self, text, timeout=60):
        """Wait until the debug console shows text, and the rest of its
        line (QEMU may be midway through writing it); return the output."""
        def alive(out):
            if self.proc.poll() is not None:
                raise RuntimeError("QEMU exited (%d) before %r; console: %r; "
                                   "stderr: %s" % (self.proc.returncode, text,
                                                   out, self.errors()))
        try:
            return wait_line(self.debugcon, text, timeout, alive)
        except RuntimeError as e:
            # In the rig, a guest that stopped where the payload never
            # runs is the rig's TCG (RigCorrupted, and the test runs again)
            if os.environ.get("GM_IN_RIG") and self.proc.poll() is None:
                try:
                    guest_hangs(self.qmp.hmp, str(e))
                except AssertionError as a:     # with the RIPs now
                    raise RuntimeError(str(a)) from None
            raise

    def stop(self):
        if self.qtest:
            self.qtest.close()
        stuck = None
        try:
            self.machine.kill()
        except subprocess.TimeoutExpired:
            # A thread that never leaves the kernel (seen in the rig, when
            # its TCG corrupted a nested vCPU) outlives SIGKILL: say so
            # rather than wait for ever.
            stuck = "QEMU (pid %d) still runs 60 s after SIGKILL; its " \
                "threads: %s" % (self.proc.pid, thread_states(self.proc.pid))
        subprocess.call(["rm", "-rf", self.dir])
        if stuck:
            raise QemuStuck(stuck)

    def __enter__(self):
        return self if self.proc else self.start()

    def __exit__(self, *exc):
        self.stop()


def pmemsave(qmp_cmd, folder, base, length):
    """Guest memory [base, base+length) as QEMU reads it: QMP's pmemsave,
    run by qmp_cmd(command, **arguments), into a file in folder."""
    path = os.path.join(folder, "pmem.bin")
    qmp_cmd("pmemsave", val=base, size=length, filename=path)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def read_text(path):
    """The file at path (undecodable bytes replaced), or "" while it is
    not there."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_line(path, text, timeout, check=None):
    """Wait until the file at path (a console) shows text and the rest of
    its line (its writer may be midway through it); return the file.
    check(contents), if given, runs while waiting and raises if waiting is
    pointless.  RuntimeError after timeout seconds."""
    deadline = time.time() + timeout
    while True:
        out = read_text(path)
        at = out.find(text)
        if at >= 0 and "\n" in out[at:]:
            return out
        if check:
            check(out)
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for %r; console: %r"
                               % (text, out))
        time.sleep(0.02)


def cgroup_wrapper(cgroup, folder):
    """An executable folder/qemu that moves itself into the cgroup at the
    path cgroup (v1 or v2) and runs QEMU there, so that nothing else (the
    test runner) is charged or can be OOM-killed."""
    path = os.path.join(folder, "qemu")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho $$ >%s/cgroup.procs || exit 99\n"
                "exec %s \"$@\"\n" % (cgroup, QEMU))
    os.chmod(path, 0o755)
    return path


def run_qemu(args, timeout=60):
    """Run QEMU to completion; return (returncode, stderr)."""
    p = subprocess.run([QEMU] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, universal_newlines=True)
    return p.returncode, p.stdout


def payload_result(out):
    """The payload's RESULT line, or None."""
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return line
    return None


def hcall_results(out):
    """What each of the payload's KIND_HCALL hypercalls returned (RAX)."""
    return [int(line.split()[-1], 16) for line in out.splitlines()
            if "hypercall returned" in line]


def proc_status(pid, field):
    """A size field of /proc/PID/status (VmRSS, RssAnon, ...), in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def thread_states(pid):
    """Each thread of process pid: its id, name, state and CPU time (ticks),
    for a failure's message."""
    out = []
    for t in sorted(os.listdir("/proc/%d/task" % pid)):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                st = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                comm = f.read().strip()
        except OSError:
            continue
        out.append("%s %s %s %d" % (t, comm, st[0], int(st[11]) + int(st[12])))
    return "; ".join(out)


def gmem_fds(pid):
    """{fd number: inode} of the guest_memfds that process pid holds."""
    fds = {}
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:
            continue
        # "anon_inode:[kvm-gmem]" up to 6.18, "/[kvm-gmem] (deleted)" in 7.2
        if "[kvm-gmem]" in target:
            fds[int(name)] = os.stat(os.path.join(base, name)).st_ino
    return fds


def mappings(pid):
    """(start, end, perms, inode, path) for each mapping of process pid."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            out.append((start, end, parts[1], int(parts[4]), path))
    return out


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)
