"""Snapshots and migration of guest_memfd VMs on this host's KVM.

With mmap=on QEMU reads and writes all of the guest's RAM through its
mapping, so a stopped guest can be saved, restored and migrated, onto
guest_memfd and off it.  A running guest can be migrated only where KVM
logs the pages it dirties in guest_memfd memslots; Linux 6.18 cannot, so
QEMU refuses there, and the rig tests the kernel that can
(tests/rig/rig_tests.py).

The guest bumps a counter in every page of its RAM, pass after pass, and
checks each page before it bumps it: a page restored or migrated wrong
makes the guest fail.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import shutil
import struct
import tempfile
import time

from gmemtest import (DEFAULT_SEED, Skip, pattern_word, require_gmem_mmap)
from migration import (BASE, GMEM, MiB, assert_no_failure, counter_vm,
                       counters, kvm_logs_gmem_dirty_pages, snapshot,
                       wait_counter, wait_migration)

SIZE = 32 * MiB
COUNTED = SIZE - BASE
# Two of the guest's prints: at least one whole pass over every page.
PASSES = 32


def started(vm):
    vm.start()
    try:
        wait_counter(vm, 0)
    except Exception:
        vm.stop()
        raise
    return vm


def stopped_state(vm):
    """Stop the guest; return what QEMU reads of its RAM and its counter."""
    vm.qmp.cmd("stop")
    return snapshot(vm, COUNTED)


def goes_on(vm, data, counter):
    """vm holds the state saved as (data, counter) and is stopped: QEMU
    reads the same RAM, and the guest runs on from there until it has
    checked every page again."""
    assert vm.qmp.cmd("query-status")["status"] != "running"
    got = vm.read_memory(BASE, COUNTED)
    assert got == data, "RAM differs from the saved RAM (counter %d in the " \
        "first page, want %d)" % (snapshot_counter(got), counter)
    # Only what the guest prints from now on: a snapshot loaded into the
    # same QEMU follows output of the guest's earlier life.
    since = len(vm.output())
    vm.qmp.cmd("cont")
    return wait_counter(vm, counter + PASSES, since=since)


def snapshot_counter(data):
    return struct.unpack_from("<Q", data, 0)[0] ^ pattern_word(BASE, DEFAULT_SEED)


def add_qcow2(vm, size=16 * MiB):
    """A qcow2 image for savevm's snapshots, created over QMP
    (blockdev-create: the build has no qemu-img) as node d0."""
    path = os.path.join(vm.dir, "snap.qcow2")
    open(path, "wb").close()
    vm.qmp.cmd("blockdev-add", driver="file", filename=path,
               **{"node-name": "f0"})
    vm.qmp.cmd("blockdev-create", **{"job-id": "mk", "options": {
        "driver": "qcow2", "file": "f0", "size": size}})
    deadline = time.time() + 30
    while True:
        jobs = {j["id"]: j for j in vm.qmp.cmd("query-jobs")}
        if jobs["mk"]["status"] == "concluded":
            break
        assert time.time() < deadline, jobs
        time.sleep(0.05)
    assert "error" not in jobs["mk"], jobs["mk"]
    vm.qmp.cmd("job-dismiss", id="mk")
    vm.qmp.cmd("blockdev-add", driver="qcow2", file="f0",
               **{"node-name": "d0"})


def snapshot_job(vm, job, **args):
    """Run a snapshot-save/-load job over QMP to its end."""
    vm.qmp.cmd(job, **{"job-id": job, "tag": "s3", "vmstate": "d0",
                       "devices": ["d0"]}, **args)
    deadline = time.time() + 60
    while True:
        jobs = {j["id"]: j for j in vm.qmp.cmd("query-jobs")}
        if jobs[job]["status"] == "concluded":
            break
        assert time.time() < deadline, jobs
        time.sleep(0.05)
    assert "error" not in jobs[job], jobs[job]
    vm.qmp.cmd("job-dismiss", id=job)


def test_savevm_loadvm():
    """savevm of a stopped guest, and of a running one (savevm stops it
    while it saves); loadvm in the same QEMU; snapshot-save and
    snapshot-load, the QMP jobs: RAM is as saved each time and the guest
    runs on from the snapshot."""
    require_gmem_mmap()
    with started(counter_vm("gmem", SIZE)) as vm:
        add_qcow2(vm)
        data, counter = stopped_state(vm)
        out = vm.qmp.hmp("savevm s1")
        assert out == "", "savevm: " + out
        vm.qmp.cmd("cont")
        later = wait_counter(vm, counter + PASSES)

        # While it runs: savevm stops it for the time it saves.
        out = vm.qmp.hmp("savevm s2")
        assert out == "", "savevm of a running guest: " + out
        assert vm.qmp.cmd("query-status")["status"] == "running"
        wait_counter(vm, later)

        vm.qmp.cmd("stop")
        out = vm.qmp.hmp("loadvm s1")
        assert out == "", "loadvm: " + out
        after = goes_on(vm, data, counter)

        data3, counter3 = stopped_state(vm)
        snapshot_job(vm, "snapshot-save")
        vm.qmp.cmd("cont")
        wait_counter(vm, counter3 + PASSES)
        vm.qmp.cmd("stop")
        snapshot_job(vm, "snapshot-load")
        goes_on(vm, data3, counter3)
        return "counter %d saved, %d after loadvm; snapshot-save at %d" % (
            counter, after, counter3)


def test_savevm_restored_into_new_qemu():
    """A snapshot that savevm took of a guest on guest_memfd RAM, loaded
    by a new QEMU (-loadvm) whose RAM is guest_memfd, memfd or anonymous
    memory: RAM is as saved and the guest runs on."""
    require_gmem_mmap()
    with started(counter_vm("gmem", SIZE)) as vm:
        add_qcow2(vm)
        data, counter = stopped_state(vm)
        out = vm.qmp.hmp("savevm s1")
        assert out == "", "savevm: " + out
        # The QEMU's folder goes with it: keep the image.
        kept = os.path.join(tempfile.gettempdir(), "gmem-snap-%d.qcow2" % os.getpid())
        shutil.copyfile(os.path.join(vm.dir, "snap.qcow2"), kept)
    try:
        done = []
        for kind in ("gmem", "memfd", "ram"):
            new = counter_vm(kind, SIZE, paused=True, extra=[
                "-blockdev", "driver=file,filename=%s,node-name=f0" % kept,
                "-blockdev", "driver=qcow2,file=f0,node-name=d0",
                "-loadvm", "s1"])
            with new.start():
                done.append("%s: %d" % (kind, goes_on(new, data, counter)))
        return "saved at %d; after: %s" % (counter, ", ".join(done))
    finally:
        os.unlink(kept)


def migrate_stopped(src_kind, dst_kind, transport):
    """Stop a guest on src_kind RAM, migrate it to a new QEMU on dst_kind
    RAM (file: or unix: socket), and let it run on there."""
    require_gmem_mmap()
    with started(counter_vm(src_kind, SIZE)) as src:
        data, counter = stopped_state(src)
        if transport == "file":
            uri = "file:" + os.path.join(src.dir, "state")
            src.qmp.cmd("migrate", uri=uri)
            info = wait_migration(src)
            assert info["status"] == "completed", info
            dst = counter_vm(dst_kind, SIZE, incoming=uri)
        else:
            uri = "unix:" + os.path.join(src.dir, "migrate.sock")
            dst = counter_vm(dst_kind, SIZE, incoming=uri)
        with dst.start():
            if transport != "file":
                src.qmp.cmd("migrate", uri=uri)
                info = wait_migration(src)
                assert info["status"] == "completed", info
            assert wait_migration(dst)["status"] == "completed"
            assert src.qmp.cmd("query-status")["status"] == "postmigrate"
            after = goes_on(dst, data, counter)
            assert_no_failure(src)
            return "%s -> %s over %s: counter %d at the switch, %d after" % (
                src_kind, dst_kind, transport, counter, after)


def test_migrate_stopped_to_file_gmem_to_gmem():
    return migrate_stopped("gmem", "gmem", "file")


def test_migrate_stopped_to_file_gmem_to_memfd():
    """Off guest_memfd: the destination's RAM is a memfd."""
    return migrate_stopped("gmem", "memfd", "file")


def test_migrate_stopped_over_socket_gmem_to_gmem():
    return migrate_stopped("gmem", "gmem", "socket")


def test_migrate_stopped_to_file_gmem_to_ram():
    """Off guest_memfd onto anonymous memory (memory-backend-ram)."""
    return migrate_stopped("gmem", "ram", "file")


def test_migrate_stopped_over_socket_memfd_to_gmem():
    """Onto guest_memfd: a VM whose RAM was a memfd moves to one."""
    return migrate_stopped("memfd", "gmem", "socket")


def test_migrate_stopped_over_socket_ram_to_gmem():
    """Onto guest_memfd from anonymous memory (memory-backend-ram)."""
    return migrate_stopped("ram", "gmem", "socket")


def require_no_gmem_dirty_log():
    require_gmem_mmap()
    if kvm_logs_gmem_dirty_pages():
        raise Skip("this host's KVM logs dirty pages of guest_memfd memory: "
                   "there is nothing to refuse (the rig tests the refusal "
                   "with kvm.gmem_dirty_logging=0)")


def failed_with(vm, needle):
    info = wait_migration(vm)
    assert info["status"] == "failed", info
    assert needle in info.get("error-desc", ""), info
    return info["error-desc"]


def test_live_migration_refused():
    """KVM cannot log the guest's writes to guest_memfd memory here: a
    migration of the running guest fails at once, with a message that
    names the backend, says what KVM lacks and that stopping the VM
    works, and the guest keeps running.  So does HMP's migrate."""
    require_no_gmem_dirty_log()
    with started(counter_vm("gmem", SIZE)) as vm:
        vm.qmp.cmd("migrate", uri="file:" + os.path.join(vm.dir, "state"))
        desc = failed_with(vm, GMEM + " 'm0' cannot be migrated while the "
                           "guest runs")
        assert "cannot log dirty pages of guest_memfd" in desc, desc
        assert "stop the VM first" in desc, desc
        assert vm.qmp.cmd("query-status")["status"] == "running"
        c = wait_counter(vm, counters(vm)[-1])

        # HMP's migrate goes on detached when it cannot hold the monitor.
        vm.qmp.hmp("migrate file:" + os.path.join(vm.dir, "state2"))
        failed_with(vm, "cannot be migrated while the guest runs")
        wait_counter(vm, c)
        return desc


def test_resumed_during_migration_fails_it():
    """A guest resumed while its stopped VM migrates would write pages
    nobody logs: the migration fails, the guest runs on."""
    require_no_gmem_dirty_log()
    with started(counter_vm("gmem", SIZE)) as vm:
        vm.qmp.cmd("stop")
        # Slow enough that the migration is still going when the guest
        # resumes: 1 MiB/s for 32 MiB.
        vm.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": MiB})
        vm.qmp.cmd("migrate", uri="file:" + os.path.join(vm.dir, "state"))
        # Resumed once RAM is being sent: a resume during setup fails the
        # migration too, but QEMU then reports "ram_save_setup failed:
        # Device or resource busy" instead of the backend's message.
        deadline = time.time() + 10
        while vm.qmp.cmd("query-migrate")["status"] == "setup":
            assert time.time() < deadline, "migration setup takes over 10 s"
            time.sleep(0.01)
        assert vm.qmp.cmd("query-migrate")["status"] == "active"
        c = counters(vm)[-1]
        vm.qmp.cmd("cont")
        desc = failed_with(vm, "the guest was resumed during migration")
        assert vm.qmp.cmd("query-status")["status"] == "running"
        wait_counter(vm, c)
        return desc


def test_migration_refusals():
    """What no kernel makes possible: x-ignore-shared (the destination
    cannot share the guest_memfd), background-snapshot (QEMU cannot track
    writes to the mapping), cpr-transfer (a guest_memfd belongs to its
    VM): each refused with a message, the guest running on."""
    require_gmem_mmap()
    vm = counter_vm("gmem", SIZE, machine=",aux-ram-share=on")
    with started(vm):
        uri = "file:" + os.path.join(vm.dir, "state")
        vm.qmp.cmd("stop")
        caps = [{"capability": "x-ignore-shared", "state": True}]
        vm.qmp.cmd("migrate-set-capabilities", capabilities=caps)
        vm.qmp.cmd("migrate", uri=uri)
        failed_with(vm, GMEM + " 'm0' cannot be migrated with x-ignore-shared")
        caps[0]["state"] = False
        vm.qmp.cmd("migrate-set-capabilities", capabilities=caps)

        vm.qmp.cmd("cont")
        # QEMU's own check: it cannot track writes to guest_memfd's mapping.
        caps = [{"capability": "background-snapshot", "state": True}]
        resp = vm.qmp.send("migrate-set-capabilities", capabilities=caps)
        assert "error" in resp and "not compatible with guest memory" in \
            resp["error"]["desc"], resp

        vm.qmp.cmd("migrate-set-parameters", mode="cpr-transfer")
        channels = [{"channel-type": t, "addr": {
            "transport": "socket", "type": "unix",
            "path": os.path.join(vm.dir, t + ".sock")}} for t in ("main", "cpr")]
        resp = vm.qmp.send("migrate", channels=channels)
        assert "error" in resp, resp
        assert GMEM + " 'm0' cannot be migrated with cpr-transfer" in \
            resp["error"]["desc"], resp
        assert vm.qmp.cmd("query-status")["status"] == "running"
        wait_counter(vm, counters(vm)[-1])


def test_only_migratable():
    """-only-migratable admits an mmap=on backend: it can be migrated."""
    require_gmem_mmap()
    vm = counter_vm("gmem", SIZE, extra=["-only-migratable"])
    with started(vm):
        assert vm.qmp.cmd("query-status")["status"] == "running"
