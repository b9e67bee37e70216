/*
 * guest_memfd and KVM: what the memory backend and the confidential
 * guests need of the accelerator
 *
 * What KVM offers (guest_memfd flags, private memory, dirty logging of
 * guest_memfd memslots); which memslot each range of a mapped guest_memfd
 * is bound to; the conversion engine, which turns "make this range
 * private/shared" into KVM_SET_MEMORY_ATTRIBUTES and discards through
 * RamBlockAttributes; the record of what is private; and the hand-off of
 * KVM_EXIT_MEMORY_FAULT to the confidential guest.  The backend is
 * target-independent code, like QEMU's other memory backends; all of this
 * is per-target, so it lives here.
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include "qemu/atomic.h"
#include <linux/kvm.h>
#include "system/kvm.h"
#include "system/guest-memfd.h"
#include "system/ramblock.h"
#include "system/memory.h"
#include "system/address-spaces.h"
#include "system/kvm_int.h"

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

/*
 * No capability tells whether KVM logs dirty pages of guest_memfd
 * memslots, so ask: bind a one-page guest_memfd, mapped shared, to a
 * memslot with dirty logging on, in a scratch VM of the default type
 * (which is what this VM is when it has no private memory).
 */
static bool gmem_probe_dirty_log(void)
{
    const uint64_t gmem_flags = GUEST_MEMFD_FLAG_MMAP |
                                GUEST_MEMFD_FLAG_INIT_SHARED;
    size_t size = qemu_real_host_page_size();
    struct kvm_create_guest_memfd create = {
        .size = size,
        .flags = gmem_flags,
    };
    struct kvm_userspace_memory_region2 region = {
        .flags = KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES,
        .memory_size = size,
    };
    bool ok = false;
    void *host = MAP_FAILED;
    int vm, gmem = -1;

    if ((kvm_guest_memfd_supported_flags() & gmem_flags) != gmem_flags ||
        kvm_private_memory_supported()) {
        return false;
    }
    vm = ioctl(kvm_state->fd, KVM_CREATE_VM, 0);
    if (vm < 0) {
        return false;
    }
    gmem = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &create);
    if (gmem >= 0) {
        host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gmem, 0);
    }
    if (host != MAP_FAILED) {
        region.userspace_addr = (uintptr_t)host;
        region.guest_memfd = gmem;
        ok = ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) == 0;
        munmap(host, size);
    }
    if (gmem >= 0) {
        close(gmem);
    }
    close(vm);
    return ok;
}

bool kvm_guest_memfd_dirty_log_supported(void)
{
    static int supported = -1;

    if (!kvm_state) {
        return false;
    }
    if (supported < 0) {
        supported = gmem_probe_dirty_log();
    }
    return supported;
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

bool kvm_guest_memfd_private_capable(const RAMBlock *rb)
{
    return rb && rb->guest_memfd >= 0 && !(rb->flags & RAM_GUEST_MEMFD_MMAP);
}

/*
 * The private-capable guest_memfd RAM section at @gpa, up to @size bytes;
 * 0 if none.  Its RAM block and the offset in it go to @rb and @offset,
 * if given.
 */
static uint64_t gmem_private_section(hwaddr gpa, uint64_t size,
                                     RAMBlock **rb, ram_addr_t *offset)
{
    MemoryRegionSection section;
    uint64_t len = 0;

    section = memory_region_find(get_system_memory(), gpa, size);
    if (!section.mr) {
        return 0;
    }
    if (section.offset_within_address_space == gpa &&
        kvm_guest_memfd_private_capable(section.mr->ram_block)) {
        len = int128_get64(section.size);
        if (rb) {
            *rb = section.mr->ram_block;
            *offset = section.offset_within_region;
        }
    }
    memory_region_unref(section.mr);
    return len;
}

/* Page-aligned, not empty, not wrapping around */
static bool gmem_range_valid(hwaddr gpa, uint64_t size)
{
    uint64_t page = qemu_real_host_page_size();

    return size && QEMU_IS_ALIGNED(gpa, page) && QEMU_IS_ALIGNED(size, page) &&
           gpa + size > gpa;
}

int kvm_guest_memfd_convert(hwaddr gpa, uint64_t size, bool to_private)
{
    uint64_t done, len;

    if (!gmem_range_valid(gpa, size)) {
        return -EINVAL;
    }
    /* All or nothing: check the whole range before changing any of it. */
    for (done = 0; done < size; done += len) {
        len = gmem_private_section(gpa + done, size - done, NULL, NULL);
        if (!len) {
            return -EINVAL;
        }
    }
    kvm_guest_memfd_attributes_changing();
    for (done = 0; done < size; done += len) {
        len = gmem_private_section(gpa + done, size - done, NULL, NULL);
        if (kvm_convert_memory(gpa + done, len, to_private)) {
            return -EIO;
        }
    }
    return 0;
}

int kvm_guest_memfd_range_state(hwaddr gpa, uint64_t size)
{
    uint64_t page = qemu_real_host_page_size();
    uint64_t done, len;
    int state = -1;

    if (!gmem_range_valid(gpa, size)) {
        return -EINVAL;
    }
    for (done = 0; done < size; done += len) {
        RAMBlock *rb;
        ram_addr_t offset;
        unsigned long first, last, shared, *bitmap;
        KvmGuestMemfdRangeState this;

        len = gmem_private_section(gpa + done, size - done, &rb, &offset);
        if (!len || !rb->attributes) {
            return -EINVAL;
        }
        first = offset / page;
        last = first + len / page;
        bitmap = rb->attributes->bitmap;
        shared = find_next_zero_bit(bitmap, last, first) == last;
        if (!shared && find_next_bit(bitmap, last, first) != last) {
            return KVM_GUEST_MEMFD_RANGE_MIXED;
        }
        this = shared ? KVM_GUEST_MEMFD_RANGE_SHARED :
                        KVM_GUEST_MEMFD_RANGE_PRIVATE;
        if (state >= 0 && state != this) {
            return KVM_GUEST_MEMFD_RANGE_MIXED;
        }
        state = this;
    }
    return state;
}

int kvm_guest_memfd_set_slot_attributes(RAMBlock *rb, uint64_t offset,
                                        hwaddr gpa, uint64_t size)
{
    RamBlockAttributes *attrs = rb->attributes;
    uint64_t page = qemu_real_host_page_size();
    unsigned long first = offset / page, last = (offset + size) / page;
    unsigned long i, next;
    int ret;

    kvm_guest_memfd_attributes_changing();
    if (!attrs) {
        return kvm_set_memory_attributes_private(gpa, size);
    }
    for (i = first; i < last; i = next) {
        hwaddr start = gpa + (i - first) * page;

        if (test_bit(i, attrs->bitmap)) {
            next = find_next_zero_bit(attrs->bitmap, last, i);
            ret = kvm_set_memory_attributes_shared(start, (next - i) * page);
        } else {
            next = find_next_bit(attrs->bitmap, last, i);
            ret = kvm_set_memory_attributes_private(start, (next - i) * page);
        }
        if (ret) {
            return ret;
        }
    }
    return 0;
}

/*
 * Changes of memory attributes so far, and what this vCPU thread had seen
 * when it last entered KVM_RUN.  32 bits: a false match would take 2^32
 * changes during one KVM_RUN.
 */
static uint32_t gmem_changes;
static __thread uint32_t gmem_changes_at_run;

void kvm_guest_memfd_attributes_changing(void)
{
    qatomic_inc(&gmem_changes);
}

void kvm_guest_memfd_enter_run(void)
{
    gmem_changes_at_run = qatomic_read(&gmem_changes);
}

bool kvm_guest_memfd_changed_since_run(void)
{
    return qatomic_read(&gmem_changes) != gmem_changes_at_run;
}

static KvmGuestMemfdFaultHandler *gmem_fault_handler;

void kvm_guest_memfd_set_fault_handler(KvmGuestMemfdFaultHandler *handler)
{
    gmem_fault_handler = handler;
}

int kvm_guest_memfd_memory_fault(hwaddr gpa, uint64_t size, bool private)
{
    if (!gmem_fault_handler) {
        return -ENOSYS;
    }
    return gmem_fault_handler(gpa, size, private);
}

bool kvm_guest_memfd_range_has_ram(hwaddr gpa, uint64_t size)
{
    MemoryRegionSection section;
    bool ram = false;

    section = memory_region_find(get_system_memory(), gpa, size);
    if (section.mr) {
        ram = memory_region_is_ram(section.mr) ||
              memory_region_is_ram_device(section.mr) ||
              memory_region_is_romd(section.mr);
        memory_region_unref(section.mr);
    }
    return ram;
}
