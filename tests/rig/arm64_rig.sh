#!/bin/sh
# The command of the arm64 rig (tests/e2e/test_arm64.py): Linux's KVM
# selftests, then the backend's tests on arm64 KVM.
#   arm64_rig.sh SELFTESTS QEMU SYSROOT PAYLOAD KERNEL INITRAMFS
# (the host's paths)
#
# SPDX-License-Identifier: GPL-2.0-or-later
sh tests/rig/arm64_selftests.sh "$1"
shift
sh tests/rig/arm64_backend.sh "$@"
