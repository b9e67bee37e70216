"""Debian's libvirtd, run for one test without touching the host's own
libvirt: the daemon runs in a private mount namespace where its fixed
directories (/etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/log/libvirt, /var/cache/libvirt) are empty temporary ones, with a
qemu.conf of our own; virsh reaches it through its socket's path.

No systemd is needed: the daemon itself is started.  scripts/setup-deps.sh
installs the packages.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

# What a container without systemd, cgroup delegation or a security
# module needs: libvirt's private /dev for QEMU lacks /dev/kvm here, and
# QEMU runs as root as the project's tests do.  QEMU's stderr goes to a
# file libvirt writes itself (no virtlogd).
QEMU_CONF = """\
namespaces = [ ]
security_driver = "none"
cgroup_controllers = [ ]
user = "root"
group = "root"
stdio_handler = "file"
remember_owner = 0
"""

DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
        "log": "/var/log/libvirt", "cache": "/var/cache/libvirt"}


class VirshError(Exception):
    pass


class Libvirtd:
    """A context manager: a running libvirtd of our own, and virsh for it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gmem-libvirt-")
        self.proc = None
        self.socket = os.path.join(self.dir, "run", "libvirt-sock")
        self.uri = "qemu:///system?socket=" + self.socket

    def start(self, timeout=60):
        for missing in ("libvirtd", "virsh", "unshare"):
            if not shutil.which(missing):
                raise AssertionError("%s is not installed (scripts/setup-deps.sh "
                                     "installs Debian's libvirt)" % missing)
        for sub in DIRS:
            os.makedirs(os.path.join(self.dir, sub))
        os.makedirs(os.path.join(self.dir, "etc", "qemu"))
        with open(os.path.join(self.dir, "etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        with open(os.path.join(self.dir, "etc", "libvirtd.conf"), "w") as f:
            f.write('unix_sock_group = "root"\n')
        # A folder the daemon needs that this root lacks (/run/libvirt,
        # made at run time) on a root that is read-only (the rig's): a
        # tmpfs on its parent, in the daemon's mount namespace only.
        binds = "".join("{ mkdir -p %s 2>/dev/null || { mount -t tmpfs tmpfs %s && "
                        "mkdir %s; }; } && mount --bind %s %s && " %
                        (target, os.path.dirname(target), target,
                         os.path.join(self.dir, sub), target)
                        for sub, target in DIRS.items())
        script = binds + "exec libvirtd --pid-file %s" % os.path.join(
            self.dir, "libvirtd.pid")
        self.log = open(os.path.join(self.dir, "libvirtd.log"), "w+")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private",
                                      "sh", "-c", script],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("libvirtd exited (%d): %s" % (
                    self.proc.returncode, self.daemon_log()))
            if os.path.exists(self.socket):
                try:
                    self.virsh("list", "--name")
                    return self
                except VirshError:
                    pass
            if time.time() > deadline:
                raise AssertionError("libvirtd did not answer within %d s: %s"
                                     % (timeout, self.daemon_log()))
            time.sleep(0.2)

    def daemon_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def virsh(self, *args, timeout=120):
        """Run virsh against our daemon; its stdout, or VirshError."""
        p = subprocess.run(["virsh", "-c", self.uri] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=timeout)
        if p.returncode != 0:
            raise VirshError("virsh %s: %s" % (" ".join(args),
                                               (p.stderr + p.stdout).strip()))
        return p.stdout

    def qmp(self, domain, cmd, **args):
        """A QMP command through `virsh qemu-monitor-command`; its return
        value, or VirshError with QEMU's error."""
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        reply = json.loads(self.virsh("qemu-monitor-command", domain,
                                      json.dumps(msg)))
        if "error" in reply:
            raise VirshError("%s: %s" % (cmd, reply["error"]["desc"]))
        return reply["return"]

    def hmp(self, domain, line):
        return self.virsh("qemu-monitor-command", domain, "--hmp", line)

    def qemu_pid(self, domain):
        """The domain's QEMU process, from the pid file libvirt keeps."""
        with open(os.path.join(self.dir, "run", "qemu", domain + ".pid")) as f:
            return int(f.read().strip())

    def qemu_log(self, domain):
        try:
            with open(os.path.join(self.dir, "log", "qemu", domain + ".log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # Any domain left running goes first; libvirtd leaves QEMU
            # running on exit otherwise.
            try:
                for name in self.virsh("list", "--name").split():
                    self.virsh("destroy", name)
            except (VirshError, subprocess.TimeoutExpired):
                pass
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self.proc:
            self.log.close()
        subprocess.call(["rm", "-rf", self.dir])

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
