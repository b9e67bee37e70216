/*
 * guest_memfd: the memory backend's type name, and what the backend and
 * the confidential guests use of KVM (accel/kvm/guest-memfd.c): its
 * capabilities, the memslot bindings of mapped guest_memfds, the
 * conversion engine and the hand-off of memory-fault exits
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_GUEST_MEMFD_H
#define SYSTEM_GUEST_MEMFD_H

#include "exec/hwaddr.h"
#include "exec/cpu-common.h"

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
 * kvm_guest_memfd_missing_caps:
 *
 * Returns: what this VM lacks of KVM_CAP_GUEST_MEMFD and
 * KVM_CAP_USER_MEMORY2, for a message: "KVM_CAP_GUEST_MEMFD",
 * "KVM_CAP_USER_MEMORY2", both joined by "and", or NULL if it has both.
 */
const char *kvm_guest_memfd_missing_caps(void);

/**
 * kvm_private_memory_supported:
 *
 * Returns: whether this VM can make guest memory private
 * (KVM_MEMORY_ATTRIBUTE_PRIVATE in KVM_CAP_MEMORY_ATTRIBUTES).
 */
bool kvm_private_memory_supported(void);

/**
 * kvm_guest_memfd_in_place_supported:
 *
 * Returns: whether KVM keeps the private/shared state of this VM's memory
 * in its guest_memfds and converts their pages in place
 * (KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd, which
 * KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES announces with
 * KVM_MEMORY_ATTRIBUTE_PRIVATE): the project's gmem-in-place kernel series
 * with kvm.gmem_in_place_conversion=1, in a software-protected VM.  A
 * mapped, shared guest_memfd can then hold private pages too.
 */
bool kvm_guest_memfd_in_place_supported(void);

/**
 * kvm_guest_memfd_in_place_host_supported:
 *
 * Returns: whether this host's KVM converts guest_memfd pages in place in
 * VMs of some type (KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES on /dev/kvm),
 * though maybe not in this VM: KVM does it only where a conversion changes
 * nothing in hardware, not for SEV-SNP or TDX.
 */
bool kvm_guest_memfd_in_place_host_supported(void);

/**
 * kvm_guest_memfd_dirty_log_supported:
 *
 * Returns: whether KVM logs dirty pages of guest_memfd memslots of this
 * VM (KVM_MEM_LOG_DIRTY_PAGES with KVM_MEM_GUEST_MEMFD), which migrating
 * a running guest needs.  Linux up to 7.2 refuses it for every VM; the
 * project's gmem-dirty-log kernel series allows it for VMs without private
 * memory.  Found out once, on a scratch VM, and remembered.
 */
bool kvm_guest_memfd_dirty_log_supported(void);

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

/**
 * kvm_guest_memfd_private_capable:
 * @rb: a RAM block, or NULL
 *
 * Returns: whether @rb's pages can be private (RAM_GUEST_MEMFD, with
 * RamBlockAttributes): its guest_memfd holds private pages, beside shared
 * memory of its own (mmap=off), or holds both kinds in place (mmap=on in a
 * VM with private memory, kvm_guest_memfd_in_place()).  A mapped
 * guest_memfd of a VM without private memory is not.
 */
bool kvm_guest_memfd_private_capable(const RAMBlock *rb);

/**
 * kvm_guest_memfd_in_place:
 * @rb: a RAM block, or NULL
 *
 * Returns: whether @rb is private-capable memory whose pages change state
 * in place: one guest_memfd, which QEMU maps, holds them shared and
 * private (RAM_GUEST_MEMFD | RAM_GUEST_MEMFD_MMAP).
 */
bool kvm_guest_memfd_in_place(const RAMBlock *rb);

/**
 * kvm_guest_memfd_convert:
 * @gpa: start of the range, page-aligned
 * @size: size of the range, a non-zero multiple of the page size
 * @to_private: convert to private (true) or to shared (false)
 *
 * Convert guest memory for a guest's request.  Every page of the range
 * must be private-capable guest_memfd RAM (not shared-only mmap=on memory,
 * not a hole, not MMIO); the range may span several RAM blocks.  Pages
 * already in the state asked for are left as they are.  In place
 * (kvm_guest_memfd_in_place()) a page keeps its contents; otherwise pages
 * that change state read as zero in their new state, and the side they
 * leave is freed.  Sets KVM's memory attributes (on the guest_memfd where
 * KVM keeps them there) and the RAM blocks' RamBlockAttributes, whose
 * listeners hear of each change.
 *
 * Called without the BQL: conversions are serialized by a lock of their
 * own and take the BQL for a bounded piece of work at a time, so that a
 * large range stalls neither the monitor nor other vCPUs.
 *
 * Returns: 0 when the whole range was converted; -EINVAL, with nothing
 * changed, if the range is not valid (or stops being so during the
 * conversion: memory unplugged); -EIO if the host failed (reported with
 * error_report()): nothing changed, or, if freeing the old side failed,
 * the range converted with some of its old side still allocated.
 */
int kvm_guest_memfd_convert(hwaddr gpa, uint64_t size, bool to_private);

/**
 * KvmGuestMemfdFaultHandler:
 * @gpa: start of the range the guest accessed
 * @size: its size
 * @private: whether the guest accessed it as private
 *
 * Returns: 0 when handled and the vCPU can run on, a negative errno to
 * stop it.
 */
typedef int KvmGuestMemfdFaultHandler(hwaddr gpa, uint64_t size, bool private);

/**
 * kvm_guest_memfd_set_fault_handler:
 * @handler: what handles KVM_EXIT_MEMORY_FAULT, NULL for QEMU's own
 *
 * Let a confidential guest object handle KVM_EXIT_MEMORY_FAULT exits
 * itself (sw-protected-guest does).
 */
void kvm_guest_memfd_set_fault_handler(KvmGuestMemfdFaultHandler *handler);

/**
 * kvm_guest_memfd_memory_fault:
 * @gpa, @size, @private: as KVM_EXIT_MEMORY_FAULT gives them
 *
 * Returns: what the registered handler returns, or -ENOSYS if there is
 * none (QEMU's own handling then applies).
 */
int kvm_guest_memfd_memory_fault(hwaddr gpa, uint64_t size, bool private);

/**
 * guest_memfd_cgroup_room:
 * @limited: set to the cgroup that sets the limit (NULL if none), to free
 * @limit_file: set to the file that does (memory.max, memory.high, or
 * cgroup v1's memory.limit_in_bytes)
 *
 * How much more QEMU's memory cgroup and its ancestors let it charge:
 * cgroup v2 (/sys/fs/cgroup) or v1's memory controller
 * (/sys/fs/cgroup/memory), as /proc/self/cgroup names them.
 *
 * Returns: the least room left, in bytes; UINT64_MAX if no limit applies
 * or none can be read.
 */
uint64_t guest_memfd_cgroup_room(char **limited, const char **limit_file);

/**
 * kvm_guest_memfd_accel_class_init:
 * @oc: the KVM accelerator's class
 *
 * Add the accelerator's guest_memfd properties: stop-at-memory-high.
 */
void kvm_guest_memfd_accel_class_init(ObjectClass *oc);

/**
 * kvm_guest_memfd_stop_at_memory_high:
 *
 * Whether -accel kvm,stop-at-memory-high=on asks that a guest's new
 * guest_memfd page above memory.high stop the VM.
 */
bool kvm_guest_memfd_stop_at_memory_high(void);

/**
 * kvm_guest_memfd_memcg_high_supported:
 *
 * Whether KVM can refuse a guest's guest_memfd page above memory.high
 * (GUEST_MEMFD_FLAG_MEMCG_HIGH, kernel-patches/gmem-memcg).
 */
bool kvm_guest_memfd_memcg_high_supported(void);

/**
 * kvm_guest_memfd_create_flags:
 * @flags: the flags a guest_memfd is to be created with
 *
 * Returns: @flags, plus GUEST_MEMFD_FLAG_MEMCG_HIGH with
 * stop-at-memory-high=on where KVM offers it (QEMU then handles what it
 * brings: kvm_guest_memfd_out_of_memory()).
 */
uint64_t kvm_guest_memfd_create_flags(uint64_t flags);

/**
 * kvm_guest_memfd_out_of_memory:
 * @cpu_index: the vCPU whose KVM_RUN failed
 * @gpa, @size: the page KVM_EXIT_MEMORY_FAULT names
 *
 * KVM_RUN failed with ENOMEM and a KVM_EXIT_MEMORY_FAULT: the host did not
 * allocate the guest_memfd page the guest accessed, because it would have
 * taken QEMU's memory cgroup above memory.high (GUEST_MEMFD_FLAG_MEMCG_HIGH)
 * or it had no memory.  Say so and stop the VM (io-error); 'cont' runs the
 * vCPU again, which retries the access.  Called without the BQL, from the
 * vCPU thread.
 *
 * Returns: EXCP_INTERRUPT, for kvm_cpu_exec() to return.
 */
int kvm_guest_memfd_out_of_memory(int cpu_index, hwaddr gpa, uint64_t size);

/**
 * kvm_guest_memfd_attributes_changing:
 *
 * Count a change of memory attributes: every conversion, and any other
 * change to private-capable memory's state.  Called before the change is
 * made and again after it, so that a vCPU that enters KVM_RUN while it is
 * being made, and faults on the old state, sees that it changed.
 */
void kvm_guest_memfd_attributes_changing(void);

/**
 * kvm_guest_memfd_enter_run:
 *
 * Note, in the calling vCPU thread, the changes counted so far; called
 * before each KVM_RUN.
 */
void kvm_guest_memfd_enter_run(void);

/**
 * kvm_guest_memfd_changed_since_run:
 *
 * Returns: whether memory attributes changed since the calling vCPU
 * thread last entered KVM_RUN, so that a KVM_EXIT_MEMORY_FAULT whose
 * range now matches the access may have raced with conversions.
 */
bool kvm_guest_memfd_changed_since_run(void);

/**
 * kvm_guest_memfd_fault_convert:
 * @gpa, @size: the range of a KVM_EXIT_MEMORY_FAULT
 * @to_private: whether the guest accessed it as private
 *
 * Convert a range implicitly, as the guest's access asks (its intent
 * differs from the range's state, as on SEV-SNP and TDX), unless a
 * conversion may have overtaken the fault.  Looks and converts under the
 * lock that orders conversions, from a vCPU thread without the BQL.
 *
 * Returns: 0 when converted; -EAGAIN when memory attributes changed since
 * the vCPU entered KVM_RUN (it must only retry, and faults again if it
 * still must); -EEXIST when the range already is what the access wants
 * and nothing changed (KVM cannot serve the access); -EINVAL when the
 * range is not private-capable RAM; -EIO when the conversion failed.
 */
int kvm_guest_memfd_fault_convert(hwaddr gpa, uint64_t size, bool to_private);

/**
 * kvm_guest_memfd_range_has_ram:
 * @gpa, @size: a range of guest physical memory
 *
 * Returns: whether RAM (or ROM, or a RAM device) is mapped at @gpa.
 */
bool kvm_guest_memfd_range_has_ram(hwaddr gpa, uint64_t size);

/* What the RamBlockAttributes of a range record */
typedef enum KvmGuestMemfdRangeState {
    KVM_GUEST_MEMFD_RANGE_SHARED,       /* all of it shared */
    KVM_GUEST_MEMFD_RANGE_PRIVATE,      /* all of it private */
    KVM_GUEST_MEMFD_RANGE_MIXED,        /* some of each */
} KvmGuestMemfdRangeState;

/**
 * kvm_guest_memfd_range_state:
 * @gpa, @size: a page-aligned range of guest physical memory
 *
 * Returns: a KvmGuestMemfdRangeState, or -EINVAL if some of the range is
 * not private-capable guest_memfd RAM.
 */
int kvm_guest_memfd_range_state(hwaddr gpa, uint64_t size);

/**
 * kvm_guest_memfd_backend_range_state:
 * @gpa, @size: a page-aligned range of guest physical memory
 *
 * Returns: as kvm_guest_memfd_range_state(), but -EINVAL also if some of
 * the range is not RAM of memory-backend-guest-memfd (machine RAM, NUMA
 * nodes', DIMMs').  Call with the BQL held.
 */
int kvm_guest_memfd_backend_range_state(hwaddr gpa, uint64_t size);

/**
 * kvm_guest_memfd_drop_private:
 * @rb: a private-capable RAM block
 * @dropped: private bytes dropped are added here
 *
 * Drop @rb's private pages (at reset, or when a DIMM is unplugged): their
 * contents are freed from the guest_memfd while they are still private,
 * then they become shared, in the guest_memfd too where KVM keeps their
 * state there, and in @rb's record.  KVM's memory attributes at the guest
 * addresses of @rb are the caller's to set.  With the BQL held.
 *
 * Returns: 0 or a negative errno.
 */
int kvm_guest_memfd_drop_private(RAMBlock *rb, uint64_t *dropped);

/**
 * kvm_guest_memfd_set_slot_attributes:
 * @rb: a RAM block with a private-capable guest_memfd
 * @offset: offset in @rb of the memslot's memory
 * @gpa: guest physical address of the memslot
 * @size: size of the memslot
 *
 * Set KVM's memory attributes for a new memslot from @rb's
 * RamBlockAttributes: shared where its bitmap says shared, private
 * elsewhere (all of it, for a block without attributes); on the
 * guest_memfd where KVM keeps them there.
 *
 * Returns: 0 or a negative errno from KVM_SET_MEMORY_ATTRIBUTES(2).
 */
int kvm_guest_memfd_set_slot_attributes(RAMBlock *rb, uint64_t offset,
                                        hwaddr gpa, uint64_t size);

/**
 * ram_block_private_run:
 * @rb: a RAM block, or NULL
 * @offset: an offset in @rb
 * @len: in: the length of an access at @offset; out: shortened to the
 *       pages that are in the same state as the first one
 *
 * For QEMU's own accesses to guest memory (system/physmem.c): whether the
 * first page at @offset is private, in a private-capable guest_memfd RAM
 * block.  With mmap=off, reading it through QEMU's mapping would give no
 * private byte but allocate the page's shared side; in place, the kernel
 * would kill QEMU with SIGBUS.  The access must not reach it.
 *
 * Returns: true if the page is private, false otherwise (also for RAM
 * blocks without private pages).
 */
bool ram_block_private_run(RAMBlock *rb, ram_addr_t offset, hwaddr *len);

#endif
