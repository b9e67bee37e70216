/*
 * sw-protected-guest: what QEMU's x86 KVM code calls of it
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef I386_SW_PROTECTED_GUEST_H
#define I386_SW_PROTECTED_GUEST_H

struct kvm_run;

/**
 * sw_protected_guest_map_gpa_range:
 * @run: the vCPU's kvm_run, after a KVM_HC_MAP_GPA_RANGE hypercall exit
 *
 * Carry out a software-protected guest's conversion request and put the
 * result (0 or a negative errno) in the guest's RAX.
 *
 * Returns: 0 when the exit is handled, -ENOSYS if the machine is not a
 * sw-protected-guest.
 */
int sw_protected_guest_map_gpa_range(struct kvm_run *run);

#endif
