"""memory-backend-guest-memfd end to end: the payload guest on this
host's KVM with its RAM, NUMA nodes and DIMMs in guest_memfd.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import struct
import tempfile
import time

from gmemtest import (FLAG_HALT, FLAG_HOTPLUG, KIND_GUEST, PAYLOAD, Qemu, Skip, gmem_fds, mappings,
                      meminfo, payload_args, proc_status, check_pattern, cgroup_wrapper,
                      pattern_word, payload_result,
                      require_gmem_mmap, run_qemu, DEFAULT_SEED, ROOT)

MiB = 1 << 20
GMEM = "memory-backend-guest-memfd"


def gmem_obj(id, size, extra=""):
    return ["-object", "%s,id=%s,size=%d%s" % (GMEM, id, size, extra)]


def halted_run(args, ranges, extra_machine="", **kw):
    blob = payload_args(ranges, flags=FLAG_HALT)
    vm = Qemu(args, args_blob=blob, extra_machine=extra_machine, **kw)
    vm.start()
    try:
        out = vm.wait_output("RESULT ", 60)
    except Exception:
        vm.stop()
        raise
    return vm, out


def assert_pass(out):
    result = payload_result(out)
    assert result and result.startswith("RESULT PASS"), out
    return result


def test_ram_in_guest_memfd():
    """-machine memory-backend=: the guest runs from guest_memfd, the host
    reads the guest's pattern back, and QEMU holds no other copy."""
    require_gmem_mmap()
    size = 128 * MiB
    vm, out = halted_run(gmem_obj("m0", size) + ["-m", "128M"],
                         [(MiB, size - MiB, KIND_GUEST, 0)],
                         ",memory-backend=m0")
    with vm:
        result = assert_pass(out)
        check_pattern(vm.read_memory(MiB, size - MiB), MiB)

        pid = vm.proc.pid
        fds = gmem_fds(pid)
        assert len(fds) == 1, "guest_memfds held: %r" % fds
        ino = list(fds.values())[0]
        maps = mappings(pid)
        ram = [m for m in maps if m[3] == ino]
        assert len(ram) == 1, "mappings of the guest_memfd: %r" % ram
        start, end, perms, _, path = ram[0]
        assert end - start == size and perms == "rw-s", ram[0]
        # As gmem_fds() finds it: up to 6.18 an anonymous inode's name, in
        # 7.2 a file of KVM's own pseudo file system, unlinked.
        assert path in ("anon_inode:[kvm-gmem]", "/[kvm-gmem] (deleted)"), path
        anon = [m for m in maps if not m[4] and m[1] - m[0] >= size]
        assert not anon, "anonymous mappings as large as RAM: %r" % anon
        # Nor a copy in smaller pieces: the guest wrote (and the host read
        # back) all of RAM, and QEMU's anonymous and shmem memory together
        # stay far below it.
        other = proc_status(pid, "RssAnon") + proc_status(pid, "RssShmem")
        assert other < size // 2, "QEMU holds %d MiB of anonymous and shmem " \
            "memory besides %d MiB of guest RAM" % (other // MiB, size // MiB)

        memdev = vm.qmp.cmd("query-memdev")
        assert len(memdev) == 1 and memdev[0]["id"] == "m0", memdev
        assert memdev[0]["size"] == size and memdev[0]["share"], memdev
        assert not memdev[0]["merge"], memdev
        info = vm.qmp.hmp("info memdev")
        assert "memory backend: m0" in info, info
        assert vm.qom_get("/objects/m0", "mmap")
        return "%s; fd ino %d mapped rw-s, no anonymous copy (RssAnon+RssShmem " \
            "%d MiB)" % (result, ino, other // MiB)


def test_numa_two_nodes():
    """-numa node,memdev= with two guest_memfd backends, one bound to a host
    node; the guest tests the RAM of both nodes."""
    require_gmem_mmap()
    half = 64 * MiB
    args = (gmem_obj("n0", half, ",policy=bind,host-nodes=0") +
            gmem_obj("n1", half) +
            ["-m", "128M", "-numa", "node,nodeid=0,memdev=n0",
             "-numa", "node,nodeid=1,memdev=n1"])
    vm, out = halted_run(args, [(MiB, 2 * half - MiB, KIND_GUEST, 0)])
    with vm:
        assert_pass(out)
        check_pattern(vm.read_memory(half - 4096, 8192), half - 4096)
        pid = vm.proc.pid
        fds = gmem_fds(pid)
        assert len(fds) == 2, fds
        assert sorted(m["id"] for m in vm.qmp.cmd("query-memdev")) == ["n0", "n1"]
        numa = vm.qmp.hmp("info numa")
        assert "node 0 size: 64 MB" in numa and "node 1 size: 64 MB" in numa, numa
        # The bound one carries its policy on the mapping of the guest_memfd.
        inos = set(fds.values())
        starts = {m[0] for m in mappings(pid) if m[3] in inos}
        policies = []
        with open("/proc/%d/numa_maps" % pid) as f:
            for line in f:
                addr, policy = line.split()[:2]
                if int(addr, 16) in starts:
                    policies.append(policy)
        assert sorted(policies) == ["bind:0", "default"], policies


def test_prealloc_fallocates_the_guest_memfd():
    """prealloc=on allocates the guest_memfd's pages before the guest runs
    (they are unevictable, so /proc/meminfo shows them)."""
    require_gmem_mmap()
    size = 256 * MiB
    before = meminfo("Unevictable")
    args = gmem_obj("m0", size, ",prealloc=on,prealloc-threads=2") + ["-m", "256M", "-S"]
    with Qemu(args, extra_machine=",memory-backend=m0") as vm:
        vm.qmp.cmd("query-status")
        grown = meminfo("Unevictable") - before
        assert grown >= size * 0.95, "unevictable memory grew by %d, want %d" % (
            grown, size)
        assert vm.qmp.cmd("query-memdev")[0]["prealloc"]
        return "%d MiB allocated before the guest ran" % (grown // MiB)


def v1_memory_cgroup():
    """The cgroup v1 memory controller's folder of this process, or None."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            base = "/sys/fs/cgroup/memory" + path
            if "memory" in controllers.split(",") and \
                    os.path.exists(os.path.join(base, "memory.limit_in_bytes")):
                return base
    return None


def test_prealloc_under_a_cgroup_v1_limit():
    """QEMU in a cgroup v1 memory controller whose limit is less than the
    backend: preallocation is refused, naming the cgroup and its limit
    file (past the limit the kernel kills QEMU instead of failing the
    allocation); without prealloc QEMU warns and runs.  (cgroup v2 is
    tested in the rig: rig/preallocation_under_memory_max.)"""
    require_gmem_mmap()
    base = v1_memory_cgroup()
    if not base:
        raise Skip("this host runs QEMU under no cgroup v1 memory controller "
                   "(cgroup v2 is tested in the rig)")
    cg = os.path.join(base, "gmem-test-%d" % os.getpid())
    os.mkdir(cg)
    tmp = tempfile.mkdtemp(prefix="gmem-cg-")
    try:
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write(str(128 * MiB))
        wrapper = cgroup_wrapper(cg, tmp)
        name = cg[len("/sys/fs/cgroup/memory"):]
        p = subprocess.run([wrapper, "-nodefaults", "-display", "none", "-accel", "kvm",
                            "-object", GMEM + ",id=m0,size=256M,prealloc=on",
                            "-m", "256M", "-machine", "q35,memory-backend=m0"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=60)
        want = "cannot preallocate 256 MiB: QEMU's memory cgroup %s allows " % name
        assert p.returncode == 1 and want in p.stdout and \
            "(memory.limit_in_bytes)" in p.stdout, (p.returncode, p.stdout)
        with Qemu(gmem_obj("m0", 256 * MiB) + ["-m", "256M", "-S"],
                  extra_machine=",memory-backend=m0", binary=wrapper) as vm:
            assert vm.qmp.cmd("query-status")["status"] == "prelaunch"
            warned = vm.errors()
        assert "warning: " + GMEM + ": the guest can use 256 MiB, but QEMU's " \
            "memory cgroup %s allows" % name in warned, warned
        return p.stdout.strip().splitlines()[-1]
    finally:
        subprocess.call(["rm", "-rf", tmp])
        deadline = time.time() + 10
        while True:
            try:
                os.rmdir(cg)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)


def test_dimm_coldplug():
    require_gmem_mmap()
    dimm_addr = 0x100000000
    args = (gmem_obj("m0", 128 * MiB) + gmem_obj("d0", 64 * MiB) +
            ["-m", "128M,slots=2,maxmem=1G",
             "-device", "pc-dimm,id=dimm0,memdev=d0,addr=0x%x" % dimm_addr])
    vm, out = halted_run(args, [(MiB, 127 * MiB, KIND_GUEST, 0),
                                (dimm_addr, 64 * MiB, KIND_GUEST, 0)],
                         ",memory-backend=m0")
    with vm:
        result = assert_pass(out)
        assert result == "RESULT PASS pages=0x0000000000007f00" .replace(
            "7f00", "%x" % (127 * 256 + 64 * 256)), result
        devs = vm.qmp.cmd("query-memory-devices")
        assert devs[0]["data"]["memdev"] == "/objects/d0", devs
        assert devs[0]["data"]["addr"] == dimm_addr, devs
        check_pattern(vm.read_memory(dimm_addr, 64 * MiB), dimm_addr)
        assert len(gmem_fds(vm.proc.pid)) == 2


def test_dimm_hotplug_and_unplug():
    """object-add + device_add while the guest runs; the guest tests the
    DIMM; object-del is refused while it is plugged; device_del and the
    guest's eject unplug it, and object-del then closes the guest_memfd."""
    require_gmem_mmap()
    blob = payload_args([(MiB, 127 * MiB, KIND_GUEST, 0)],
                        flags=FLAG_HALT | FLAG_HOTPLUG)
    args = gmem_obj("m0", 128 * MiB) + ["-m", "128M,slots=2,maxmem=1G"]
    with Qemu(args, args_blob=blob, extra_machine=",memory-backend=m0") as vm:
        vm.wait_output("waiting for a DIMM", 60)
        pid = vm.proc.pid
        assert len(gmem_fds(pid)) == 1
        vm.qmp.cmd("object-add", **{"qom-type": GMEM, "id": "d1",
                                    "size": 64 * MiB})
        assert len(gmem_fds(pid)) == 2
        vm.qmp.cmd("device_add", driver="pc-dimm", id="dimm1", memdev="d1")
        out = vm.wait_output("DIMM PASS", 60)
        assert "DIMM PASS pages=0x0000000000004000" in out, out
        addr = vm.qmp.cmd("query-memory-devices")[0]["data"]["addr"]
        check_pattern(vm.read_memory(addr, 64 * MiB), addr)

        resp = vm.qmp.send("object-del", id="d1")
        assert "error" in resp and "in use" in resp["error"]["desc"], resp

        vm.qmp.cmd("device_del", id="dimm1")
        vm.wait_output("DIMM EJECTED", 60)
        vm.qmp.wait_event("DEVICE_DELETED")
        assert vm.qmp.cmd("query-memory-devices") == []
        vm.qmp.cmd("object-del", id="d1")
        # The RAM block, which owns the fd, is freed after an RCU period.
        deadline = time.time() + 10
        while len(gmem_fds(pid)) != 1 and time.time() < deadline:
            time.sleep(0.05)
        assert len(gmem_fds(pid)) == 1, "the DIMM's guest_memfd is still open"


def test_dump_and_dirty_rate():
    """What reads RAM through the mapping works: dump-guest-memory carries
    the guest's pattern; calc-dirty-rate, which turns dirty logging on,
    does not bring QEMU down where KVM cannot log guest_memfd memslots.
    (Migration and snapshots: test_migration.py.)"""
    require_gmem_mmap()
    size = 64 * MiB
    args = gmem_obj("m0", size) + ["-m", "64M"]
    vm, out = halted_run(args, [(MiB, size - MiB, KIND_GUEST, 0)],
                         ",memory-backend=m0")
    with vm:
        assert_pass(out)
        vm.qmp.cmd("calc-dirty-rate", **{"calc-time": 1, "mode": "dirty-bitmap"})
        deadline = time.time() + 30
        while vm.qmp.cmd("query-dirty-rate")["status"] == "measuring":
            assert time.time() < deadline, "calc-dirty-rate did not finish"
            time.sleep(0.1)
        assert vm.qmp.cmd("query-status")["status"] == "running"

        dump = os.path.join(vm.dir, "dump.elf")
        vm.qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + dump)
        with open(dump, "rb") as f:
            data = f.read()
        assert data[:4] == b"\x7fELF", data[:4]
        for addr in (MiB, 32 * MiB, size - 4096):
            word = struct.pack("<Q", pattern_word(addr, DEFAULT_SEED))
            assert word in data, "page 0x%x's word is not in the dump" % addr
        return "dump of %d MiB" % (len(data) // MiB)


def test_default_machine_is_q35():
    """The lean device set has no i440fx machine: q35 is the default
    (hook 0014), so the documented command lines work without a machine
    type: the payload runs from guest_memfd and exits through
    isa-debug-exit with its pass code (1)."""
    rc, out = run_qemu(["-machine", "help"])
    default = [l for l in out.splitlines() if "(default)" in l]
    assert rc == 0 and len(default) == 1 and default[0].startswith("pc-q35-"), out
    require_gmem_mmap()
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "kvm"] +
                       gmem_obj("m0", 64 * MiB) +
                       ["-machine", "memory-backend=m0", "-m", "64M",
                        "-bios", PAYLOAD,
                        "-device", "isa-debug-exit,iobase=0xf4,iosize=1"])
    assert rc == 1, "exit code %d (1 is the payload's pass): %s" % (rc, out)
    return default[0].strip()


def prealloc_threads_seen(pid, stop):
    """Poll pid's threads until stop is set: the most 'gmem-prealloc'
    threads seen at once, and the CPUs each was allowed on."""
    most, cpus = 0, set()
    while not stop.is_set():
        seen = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if f.read().strip() != "gmem-prealloc":
                        continue
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    cpus.update(l.split()[1] for l in f
                                if l.startswith("Cpus_allowed_list:"))
            except OSError:
                continue            # the thread ended meanwhile
            seen += 1
        most = max(most, seen)
        time.sleep(0.002)
    return most, cpus


def test_run_time_property_changes():
    """Properties set while QEMU runs: merge=on is refused as it is at
    creation; preallocation at object-add and at qom-set prealloc=true
    allocates the guest_memfd in no more threads than the host has CPUs
    (prealloc-threads=16 asks for more), created in the prealloc-context
    given (a thread-context bound to one CPU)."""
    require_gmem_mmap()
    import threading
    ncpus = os.cpu_count()
    if ncpus < 2:
        raise Skip("one host CPU: no thread count to cap")
    # debug-threads: QEMU names its threads only when asked to.
    with Qemu(gmem_obj("m0", 64 * MiB) + ["-m", "64M", "-S",
                                          "-name", "debug-threads=on"],
              extra_machine=",memory-backend=m0") as vm:
        try:
            vm.qmp.cmd("qom-set", path="/objects/m0", property="merge", value=True)
            raise AssertionError("qom-set merge=true was accepted")
        except RuntimeError as e:
            assert "merge=on is not supported" in str(e), e
        assert vm.qom_get("/objects/m0", "merge") is False
        last = ncpus - 1
        vm.qmp.cmd("object-add", **{"qom-type": "thread-context", "id": "tc1",
                                    "cpu-affinity": [last]})
        results = {}
        for how in ("object-add", "qom-set"):
            size = 4 << 30
            unev0 = meminfo("Unevictable")
            stop = threading.Event()
            seen = []
            poll = threading.Thread(target=lambda: seen.extend(
                prealloc_threads_seen(vm.proc.pid, stop)))
            poll.start()
            try:
                props = {"qom-type": GMEM, "id": "p0", "size": size,
                         "prealloc-threads": 16, "prealloc-context": "tc1"}
                if how == "object-add":
                    vm.qmp.cmd("object-add", prealloc=True, **props)
                else:
                    vm.qmp.cmd("object-add", **props)
                    vm.qmp.cmd("qom-set", path="/objects/p0",
                               property="prealloc", value=True)
            finally:
                stop.set()
                poll.join()
            grown = meminfo("Unevictable") - unev0
            vm.qmp.cmd("object-del", id="p0")
            # Its memory goes once QEMU reclaims the RAM block (RCU).
            deadline = time.time() + 30
            while meminfo("Unevictable") > unev0 + 64 * MiB:
                assert time.time() < deadline, "p0's memory was not freed"
                time.sleep(0.1)
            most, cpus = seen
            assert grown >= size * 0.95, "%s: %d MiB allocated of %d" % (
                how, grown // MiB, size // MiB)
            # The calling thread allocates a piece too.
            assert 1 <= most <= ncpus - 1, \
                "%s: %d prealloc threads at once, host CPUs %d" % (how, most, ncpus)
            assert cpus == {str(last)}, "%s: threads ran on CPUs %r, not %d" % (
                how, cpus, last)
            results[how] = most
    return "merge=on refused; prealloc threads besides QEMU's own: %r, on CPU %d" % (
        results, last)


def test_built_without_kvm():
    """QEMU built without KVM (scripts/build-qemu.sh --no-kvm): the QAPI
    schema declares memory-backend-guest-memfd on every Linux host, so
    the type exists there too, and creating one says that it needs KVM.
    (Before, the backend was built only with KVM, and its header did not
    build on its own.)"""
    from gmemtest import QEMU_NOKVM
    assert os.path.exists(QEMU_NOKVM), "no build without KVM at " + QEMU_NOKVM
    p = subprocess.run([QEMU_NOKVM, "-object", "help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert GMEM in p.stdout.split(), p.stdout
    p = subprocess.run([QEMU_NOKVM, "-accel", "kvm", "-display", "none"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    assert p.returncode == 1 and "kvm" in p.stdout.lower(), p.stdout
    p = subprocess.run([QEMU_NOKVM, "-nodefaults", "-display", "none",
                        "-accel", "tcg"] + gmem_obj("m0", 64 * MiB) +
                       ["-machine", "q35,memory-backend=m0", "-m", "64M"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=30)
    assert p.returncode == 1 and "needs the KVM accelerator" in p.stdout, p.stdout
    return p.stdout.splitlines()[0]


def test_bad_inputs():
    """The host's rows of the bad-input table (tests/lib/bad_inputs.py):
    each command line exits 1 with its message, each QMP and HMP command
    gets its error and QEMU runs on.  docs/system/guest-memfd-errors.rst
    is made from the same table and must be up to date."""
    require_gmem_mmap()
    import bad_inputs
    path = os.path.join(ROOT, "docs", "system", "guest-memfd-errors.rst")
    with open(path) as f:
        assert f.read() == bad_inputs.rst(), \
            "%s is out of date: python3 tests/lib/bad_inputs.py > it" % path
    return bad_inputs.check("host")

