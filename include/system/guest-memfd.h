/*
 * guest_memfd: what KVM offers, for the guest_memfd memory backend
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_GUEST_MEMFD_H
#define SYSTEM_GUEST_MEMFD_H

#define TYPE_MEMORY_BACKEND_GUEST_MEMFD "memory-backend-guest-memfd"

/**
 * kvm_guest_memfd_supported_flags:
 *
 * Returns: -1 if this VM cannot back memslots with a guest_memfd
 * (KVM_CAP_GUEST_MEMFD and KVM_CAP_USER_MEMORY2), else the flags
 * KVM_CREATE_GUEST_MEMFD accepts (KVM_CAP_GUEST_MEMFD_FLAGS), 0 for none.
 */
int64_t kvm_guest_memfd_supported_flags(void);

/**
 * kvm_private_memory_supported:
 *
 * Returns: whether this VM can make guest memory private
 * (KVM_MEMORY_ATTRIBUTE_PRIVATE in KVM_CAP_MEMORY_ATTRIBUTES).
 */
bool kvm_private_memory_supported(void);

/**
 * kvm_guest_memfd_bind_range:
 * @rb: a RAM block whose host memory maps its guest_memfd
 *      (RAM_GUEST_MEMFD_MMAP)
 * @offset: offset of the range in the guest_memfd
 * @size: size of the range
 *
 * KVM binds each range of a guest_memfd to at most one memslot.  Record
 * that [@offset, @offset + @size) is about to be bound, unless some of it
 * is bound already.  Called with KVM's slots lock held.
 *
 * Returns: true if the range was free and is now recorded as bound; false
 * if some of it is bound, in which case the memslot must map the memory
 * through QEMU's mapping instead.
 */
bool kvm_guest_memfd_bind_range(RAMBlock *rb, uint64_t offset, uint64_t size);

/**
 * kvm_guest_memfd_unbind_range:
 *
 * Forget a range recorded by kvm_guest_memfd_bind_range(), once its
 * memslot is gone.  Ranges that were never recorded are ignored.
 */
void kvm_guest_memfd_unbind_range(RAMBlock *rb, uint64_t offset,
                                  uint64_t size);

#endif
