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
#include "system/ramblock.h"

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

typedef struct GmemBinding {
    RAMBlock *rb;
    uint64_t offset;
    uint64_t size;
} GmemBinding;

/* The guest_memfd ranges of RAM_GUEST_MEMFD_MMAP blocks bound to memslots */
static GArray *gmem_bindings;

bool kvm_guest_memfd_bind_range(RAMBlock *rb, uint64_t offset, uint64_t size)
{
    GmemBinding b = { .rb = rb, .offset = offset, .size = size };
    guint i;

    if (!gmem_bindings) {
        gmem_bindings = g_array_new(false, false, sizeof(GmemBinding));
    }
    for (i = 0; i < gmem_bindings->len; i++) {
        GmemBinding *o = &g_array_index(gmem_bindings, GmemBinding, i);

        if (o->rb == rb && o->offset < offset + size &&
            offset < o->offset + o->size) {
            return false;
        }
    }
    g_array_append_val(gmem_bindings, b);
    return true;
}

void kvm_guest_memfd_unbind_range(RAMBlock *rb, uint64_t offset,
                                  uint64_t size)
{
    guint i;

    for (i = 0; gmem_bindings && i < gmem_bindings->len; i++) {
        GmemBinding *o = &g_array_index(gmem_bindings, GmemBinding, i);

        if (o->rb == rb && o->offset == offset && o->size == size) {
            g_array_remove_index_fast(gmem_bindings, i);
            return;
        }
    }
}
