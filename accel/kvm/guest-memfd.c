/*
 * guest_memfd: what KVM offers, for the guest_memfd memory backend
 *
 * The backend is target-independent code, like QEMU's other memory
 * backends; KVM's capability checks are per-target, so they live here.
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <linux/kvm.h>
#include "system/kvm.h"
#include "system/guest-memfd.h"

int64_t kvm_guest_memfd_supported_flags(void)
{
    int flags;

    if (!kvm_state ||
        kvm_vm_check_extension(kvm_state, KVM_CAP_GUEST_MEMFD) <= 0 ||
        kvm_vm_check_extension(kvm_state, KVM_CAP_USER_MEMORY2) <= 0) {
        return -1;
    }
    flags = kvm_vm_check_extension(kvm_state, KVM_CAP_GUEST_MEMFD_FLAGS);
    return flags > 0 ? flags : 0;
}

bool kvm_private_memory_supported(void)
{
    int attrs;

    if (!kvm_state) {
        return false;
    }
    attrs = kvm_vm_check_extension(kvm_state, KVM_CAP_MEMORY_ATTRIBUTES);
    return attrs > 0 && (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE);
}
