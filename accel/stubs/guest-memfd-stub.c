/*
 * guest_memfd without KVM: what memory-backend-guest-memfd asks of the
 * accelerator, in builds without KVM.  The backend's type exists in every
 * Linux build, as the QAPI schema declares it; creating one fails with a
 * clear error before any of these is called (kvm_enabled() is false).
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "system/guest-memfd.h"

int64_t kvm_guest_memfd_supported_flags(void)
{
    return -1;
}

const char *kvm_guest_memfd_missing_caps(void)
{
    return "KVM_CAP_GUEST_MEMFD and KVM_CAP_USER_MEMORY2";
}

bool kvm_private_memory_supported(void)
{
    return false;
}

bool kvm_guest_memfd_dirty_log_supported(void)
{
    return false;
}

bool kvm_guest_memfd_in_place_supported(void)
{
    return false;
}

bool kvm_guest_memfd_in_place_host_supported(void)
{
    return false;
}

bool kvm_guest_memfd_memcg_high_supported(void)
{
    return false;
}

bool kvm_guest_memfd_stop_at_memory_high(void)
{
    return false;
}
