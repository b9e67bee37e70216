"""The payload guest itself, on ordinary RAM, under KVM and TCG.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from gmemtest import (KIND_GUEST, KIND_HOST, PAYLOAD, Qemu, payload_args,
                      payload_result, require_kvm, run_qemu)

RAM = ["-m", "128M", "-object", "memory-backend-ram,id=ram0,size=128M"]


def boot(accel, args_blob=None):
    with Qemu(RAM, accel=accel, args_blob=args_blob, qmp=False,
              extra_machine=",memory-backend=ram0") as vm:
        rc = vm.wait(60)
        return rc, vm.output(), vm.errors()


def check_pass(rc, out, err):
    result = payload_result(out)
    assert result and result.startswith("RESULT PASS"), \
        "payload said %r; stderr: %s" % (out, err)
    # isa-debug-exit: (0 << 1) | 1
    assert rc == 1, "QEMU exit code %d, want 1; stderr: %s" % (rc, err)
    return result


def test_kvm_ram():
    require_kvm()
    return check_pass(*boot("kvm"))


def test_tcg_ram():
    return check_pass(*boot("tcg"))


def test_payload_detects_bad_host_pattern():
    """A range that should hold a host pattern but does not must fail:
    the payload's check can fail."""
    blob = payload_args([(0x200000, 0x10000, KIND_HOST, 0x1234)])
    rc, out, err = boot("tcg", blob)
    result = payload_result(out)
    assert result and result.startswith("RESULT FAIL addr=0x0000000000200000"), out
    assert rc == 3, "QEMU exit code %d, want 3" % rc


def test_payload_ranges_from_args():
    blob = payload_args([(0x100000, 0x100000, KIND_GUEST, 0),
                         (0x4000000, 0x200000, KIND_GUEST, 0)])
    rc, out, err = boot("tcg", blob)
    result = check_pass(rc, out, err)
    assert result == "RESULT PASS pages=0x0000000000000300", result


def test_bad_payload_path():
    missing = os.path.join(os.path.dirname(PAYLOAD), "no-such-payload.bin")
    rc, out = run_qemu(["-nodefaults", "-display", "none", "-accel", "tcg",
                        "-machine", "q35", "-bios", missing])
    assert rc == 1, "exit code %d, want 1: %s" % (rc, out)
    assert missing in out, "error does not name the file: %r" % out
