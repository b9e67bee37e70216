/*
 * guest_memfd and KVM: what the memory backend and the confidential
 * guests need of the accelerator
 *
 * What KVM offers (guest_memfd flags, private memory, dirty logging of
 * guest_memfd memslots, in-place conversion); which memslot each range of
 * a mapped guest_memfd is bound to; the conversion engine, which turns
 * "make this range private/shared" into KVM_SET_MEMORY_ATTRIBUTES (or,
 * where KVM converts in place, KVM_SET_MEMORY_ATTRIBUTES2 on the
 * guest_memfd) and discards through RamBlockAttributes; the record of
 * what is private; and the hand-off of KVM_EXIT_MEMORY_FAULT to the
 * confidential guest.  The backend is
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
#include "qom/object.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/units.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include <linux/kvm.h>
#include "system/kvm.h"
#include "system/guest-memfd.h"
#include "system/ramblock.h"
#include "system/memory.h"
#include "system/address-spaces.h"
#include "system/kvm_int.h"
#include "system/runstate.h"
#include "exec/cpu-common.h"
#include "trace/trace-overlay.h"

/*
 * In-place conversion (kernel-patches/gmem-in-place; the uAPI of the
 * in-place conversion series posted on the KVM list, which Linux 7.2's
 * headers do not have yet)
 */
#ifndef KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES
#define KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES 250

struct kvm_memory_attributes2 {
    __u64 offset;
    __u64 size;
    __u64 attributes;
    __u64 flags;
    __u64 error_offset;
    __u64 reserved[11];
};

#define KVM_SET_MEMORY_ATTRIBUTES2 \
    _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2)
#endif

/*
 * kernel-patches/gmem-memcg: a guest fault that would allocate a page of
 * this guest_memfd above memory.high fails (KVM_RUN: ENOMEM with
 * KVM_EXIT_MEMORY_FAULT) rather than being charged.
 */
#ifndef GUEST_MEMFD_FLAG_MEMCG_HIGH
#define GUEST_MEMFD_FLAG_MEMCG_HIGH (1ULL << 30)
#endif

/*
 * The host's page size (read once, by the constructor below), which this
 * file counts pages and conversions in
 */
static uint64_t gmem_page_size;

/*
 * -EAGAIN from KVM_SET_MEMORY_ATTRIBUTES2 (a page held): retried this
 * often, this apart
 */
#define GMEM_BUSY_RETRIES   100
#define GMEM_BUSY_WAIT_US   1000

/*
 * The offset of the page KVM found held in the last -EAGAIN of
 * gmem_set_file_attributes().  With the BQL held.
 */
static uint64_t gmem_busy_offset;

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

const char *kvm_guest_memfd_missing_caps(void)
{
    bool gmem = kvm_state &&
                kvm_vm_check_extension(kvm_state, KVM_CAP_GUEST_MEMFD) > 0;
    bool mem2 = kvm_state &&
                kvm_vm_check_extension(kvm_state, KVM_CAP_USER_MEMORY2) > 0;

    if (gmem && mem2) {
        return NULL;
    }
    return gmem ? "KVM_CAP_USER_MEMORY2" :
           mem2 ? "KVM_CAP_GUEST_MEMFD" :
           "KVM_CAP_GUEST_MEMFD and KVM_CAP_USER_MEMORY2";
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

bool kvm_guest_memfd_in_place_supported(void)
{
    static int attrs = -1;

    if (!kvm_state) {
        return false;
    }
    if (attrs < 0) {
        attrs = MAX(0, kvm_vm_check_extension(kvm_state,
                                    KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES));
    }
    return attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE;
}

bool kvm_guest_memfd_in_place_host_supported(void)
{
    return kvm_state &&
           (MAX(0, kvm_check_extension(kvm_state,
                                       KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES)) &
            KVM_MEMORY_ATTRIBUTE_PRIVATE);
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
    size_t size = gmem_page_size;
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
    return rb && rb->guest_memfd >= 0 && (rb->flags & RAM_GUEST_MEMFD);
}

bool kvm_guest_memfd_in_place(const RAMBlock *rb)
{
    return kvm_guest_memfd_private_capable(rb) &&
           (rb->flags & RAM_GUEST_MEMFD_MMAP);
}

/*
 * A private-capable guest_memfd RAM section as the engine looked it up:
 * [gpa, gpa + size) is @rb from @offset on.  Valid while the BQL is held
 * without a break: the memory map cannot change under it.
 */
typedef struct GmemSection {
    hwaddr gpa;
    uint64_t size;              /* 0: none */
    RAMBlock *rb;
    ram_addr_t offset;
} GmemSection;

/*
 * The private-capable guest_memfd RAM section at @gpa into @sec: all of
 * it from @gpa on, not only the @size bytes asked about, so that a guest
 * converting page after page, one exit each, finds the next page in the
 * same @sec.  Returns its size up to @size, 0 if there is none.
 */
static uint64_t gmem_private_section(hwaddr gpa, uint64_t size,
                                     GmemSection *sec)
{
    MemoryRegionSection section;

    trace_kvm_guest_memfd_section_lookup(gpa, size);
    sec->size = 0;
    section = memory_region_find(get_system_memory(), gpa, UINT64_MAX - gpa);
    if (!section.mr) {
        return 0;
    }
    if (section.offset_within_address_space == gpa &&
        kvm_guest_memfd_private_capable(section.mr->ram_block)) {
        *sec = (GmemSection) {
            .gpa = gpa,
            .size = int128_get64(section.size),
            .rb = section.mr->ram_block,
            .offset = section.offset_within_region,
        };
    }
    memory_region_unref(section.mr);
    return MIN(sec->size, size);
}

/*
 * The section at @gpa, up to @end: @sec if it holds @gpa, else looked up
 * into @sec.  Returns the bytes from @gpa to its end or @end, 0 if there
 * is no private-capable RAM at @gpa.
 */
static uint64_t gmem_section_at(hwaddr gpa, hwaddr end, GmemSection *sec)
{
    if (!sec->size || gpa < sec->gpa || gpa - sec->gpa >= sec->size) {
        return gmem_private_section(gpa, end - gpa, sec);
    }
    return MIN(end - sec->gpa, sec->size) - (gpa - sec->gpa);
}

/* Page-aligned, not empty, not wrapping around */
static bool gmem_range_valid(hwaddr gpa, uint64_t size)
{
    uint64_t page = gmem_page_size;

    return size && QEMU_IS_ALIGNED(gpa, page) && QEMU_IS_ALIGNED(size, page) &&
           gpa + size > gpa;
}

/*
 * Conversions.  A guest can ask for any range at once, and changing the
 * state of a GiB takes about a second in the rig; so a conversion works
 * in pieces of up to 16 MiB, holds the BQL for no more than about 10 ms
 * of them at a time, and conversions are serialized by a lock of their
 * own instead (one of one page, which holds the BQL throughout, needs only
 * the BQL while no other is under way: gmem_convert()).  Whatever runs
 * between two pieces (QMP, other vCPUs, memory hot-unplug) sees every page
 * in one state or the other, with KVM and the RAM block's record agreeing
 * (but see below where KVM keeps the attributes on the guest_memfd).
 *
 * Where KVM keeps the attributes on the guest_memfd (a kernel that
 * converts in place: kvm_guest_memfd_in_place_supported(), for mmap=on and
 * mmap=off memory alike), KVM's part of a run is one ioctl on the file,
 * and every call costs KVM a fixed amount on top of its pages (1 GiB made
 * private in place in 16 MiB pieces took ~5% longer than in one call, in
 * the rig).  So a conversion that holds gmem_convert_lock makes the calls
 * for a run longer than 16 MiB without the BQL, in pieces of up to 256
 * MiB (gmem_change_run_unlocked(); KVM holds the VM's slots_lock through
 * each, which a memslot update waits for).  Not holding the BQL through
 * them matters beside: one QMP command takes the BQL several times, and
 * where each time waited for a piece of KVM's work under it, a loaded
 * host (the rig with one more busy host thread) made QMP wait over 100
 * ms.  Meanwhile the record errs on the private side: a page is recorded
 * private before KVM makes it private, and shared only once KVM has, so
 * that QEMU's accesses never reach a page that KVM holds private.  What
 * follows (discarding the side left, or undoing) is done with the BQL,
 * in pieces of up to 16 MiB.
 *
 * A conversion is made in two passes over the runs of pages whose state
 * changes (pages already in the state asked for are left alone, contents
 * included).  In place (mmap=on memory where KVM converts in place:
 * kvm_guest_memfd_in_place()), a page is the same page in both states:
 * pass 1 only changes its state, its contents stay, and there is nothing
 * to discard.  Otherwise:
 * 1. state: KVM's attributes and the RAM block's record, run by run.  A
 *    run becoming shared first has its shared side discarded: what the
 *    host wrote there while the page was private (DMA, a debugger, qtest)
 *    must not reach the guest, which gets zeroes.  Nothing is lost in
 *    this pass: when a run fails (KVM cannot allocate, the memory map
 *    changed), the runs changed so far are changed back, and the guest
 *    gets an error with nothing converted.
 * 2. discard: the side each run left is freed (its contents can no longer
 *    be reached).  Discarding does not fail on the files guest memory
 *    comes from (shmem and guest_memfd punch holes); if it did, the range
 *    would stay converted and the guest get -EIO, and the pages not freed
 *    would keep their old contents on the side they left, for the guest
 *    to find again if it converted them back.
 */
#define GMEM_CONVERT_BYTES  (16 * MiB)  /* converted per piece of work */
#define GMEM_CONVERT_UNLOCKED_BYTES (256 * MiB) /* ... without the BQL */
#define GMEM_CONVERT_HOLD_MS 10         /* BQL held at most this long ... */
#define GMEM_CONVERT_PAUSE_US 50        /* ... then, if someone waits, */
#define GMEM_CONVERT_PAUSE_MAX_MS 50    /* dropped until they have had it */

typedef struct GmemRun {
    hwaddr gpa;
    uint64_t size;
} GmemRun;

/*
 * The runs a conversion changed.  Most conversions change one run, and a
 * vCPU's exit should not allocate for it: the first few are kept here.
 */
#define GMEM_RUNS_INLINE 8

typedef struct GmemRuns {
    GmemRun *run;               /* inline, or allocated when outgrown */
    guint len, size;
    GmemRun inline_runs[GMEM_RUNS_INLINE];
} GmemRuns;

static void gmem_runs_init(GmemRuns *runs)
{
    runs->run = runs->inline_runs;
    runs->len = 0;
    runs->size = GMEM_RUNS_INLINE;
}

static void gmem_runs_append(GmemRuns *runs, const GmemRun *run)
{
    if (runs->len == runs->size) {
        runs->size *= 2;
        if (runs->run == runs->inline_runs) {
            runs->run = g_new(GmemRun, runs->size);
            memcpy(runs->run, runs->inline_runs, sizeof(runs->inline_runs));
        } else {
            runs->run = g_renew(GmemRun, runs->run, runs->size);
        }
    }
    runs->run[runs->len++] = *run;
}

static void gmem_runs_free(GmemRuns *runs)
{
    if (runs->run != runs->inline_runs) {
        g_free(runs->run);
    }
}

static QemuMutex gmem_convert_lock;

static void __attribute__((constructor)) gmem_convert_lock_init(void)
{
    gmem_page_size = qemu_real_host_page_size();
    qemu_mutex_init(&gmem_convert_lock);
}

/*
 * The first run of pages in [*gpa, end) that a conversion @to_private
 * changes (shared pages, for @to_private), within one RAM block: *gpa
 * moves to its start, and its RAM block and offset go to @rb and @offset.
 * Returns its size; 0 (with *gpa at @end) when there is none; -EINVAL if
 * some page on the way is not private-capable RAM.  @sec is the section
 * looked up last, and is updated.  With the BQL held.
 */
static int64_t gmem_next_run(hwaddr *gpa, hwaddr end, bool to_private,
                             GmemSection *sec, RAMBlock **rb,
                             ram_addr_t *offset)
{
    uint64_t page = gmem_page_size;

    while (*gpa < end) {
        uint64_t len = gmem_section_at(*gpa, end, sec);
        unsigned long first, last, i, next, *bitmap;

        if (!len || !sec->rb->attributes) {
            return -EINVAL;
        }
        *rb = sec->rb;
        *offset = sec->offset + (*gpa - sec->gpa);
        bitmap = (*rb)->attributes->bitmap;     /* set: shared */
        first = *offset / page;
        last = first + len / page;
        i = to_private ? find_next_bit(bitmap, last, first) :
                         find_next_zero_bit(bitmap, last, first);
        if (i == last) {
            *gpa += len;
            continue;
        }
        next = to_private ? find_next_zero_bit(bitmap, last, i) :
                            find_next_bit(bitmap, last, i);
        *gpa += (i - first) * page;
        *offset = i * page;
        return (next - i) * page;
    }
    return 0;
}

/*
 * KVM_SET_MEMORY_ATTRIBUTES2 on @rb's guest_memfd.  A page that something
 * holds (pinned for I/O in flight, say) cannot become private yet: KVM
 * says -EAGAIN and nothing changes; the page's offset goes to
 * gmem_busy_offset, and the caller may try again.
 */
static int gmem_set_file_attributes(RAMBlock *rb, ram_addr_t offset,
                                    uint64_t size, bool to_private)
{
    struct kvm_memory_attributes2 attrs = {
        .offset = offset,
        .size = size,
        .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
    };
    int err = 0;

    if (ioctl(rb->guest_memfd, KVM_SET_MEMORY_ATTRIBUTES2, &attrs)) {
        err = errno;
    }
    trace_kvm_guest_memfd_set_attributes(rb->idstr, offset, size, to_private,
                                         -err);
    if (err == EAGAIN) {
        gmem_busy_offset = attrs.error_offset;
    } else if (err) {
        error_report("guest_memfd: cannot make [0x%" PRIx64 ", +0x%"
                     PRIx64 ") of RAM block '%s' %s: %s", (uint64_t)offset,
                     size, rb->idstr, to_private ? "private" : "shared",
                     strerror(err));
    }
    return -err;
}

/* A page stayed held through every try: say which. */
static void gmem_report_busy(RAMBlock *rb)
{
    error_report("guest_memfd: page 0x%" PRIx64 " of RAM block '%s' stayed "
                 "in use for %d ms and cannot become private",
                 gmem_busy_offset, rb->idstr,
                 GMEM_BUSY_RETRIES * GMEM_BUSY_WAIT_US / 1000);
}

/*
 * Tell KVM a run's new state: on the guest_memfd where KVM keeps it there
 * (in-place conversion, for every private-capable block), else in the
 * VM's memory attributes at @gpa.
 */
static int gmem_set_attributes(RAMBlock *rb, ram_addr_t offset, hwaddr gpa,
                               uint64_t size, bool to_private)
{
    int ret;

    kvm_guest_memfd_attributes_changing();
    if (kvm_guest_memfd_in_place_supported()) {
        ret = gmem_set_file_attributes(rb, offset, size, to_private);
    } else {
        ret = to_private ? kvm_set_memory_attributes_private(gpa, size) :
                           kvm_set_memory_attributes_shared(gpa, size);
    }
    kvm_guest_memfd_attributes_changing();
    return ret;
}

/* Set KVM's attributes and @rb's record of a run; undo both on failure. */
static int gmem_set_run_state(RAMBlock *rb, ram_addr_t offset, hwaddr gpa,
                              uint64_t size, bool to_private)
{
    int ret;

    ret = gmem_set_attributes(rb, offset, gpa, size, to_private);
    if (ret) {
        return ret;
    }
    ret = ram_block_attributes_state_change(rb->attributes, offset, size,
                                            to_private);
    if (ret) {
        /* A listener refused the new state: back to the old one */
        gmem_set_attributes(rb, offset, gpa, size, !to_private);
        ram_block_attributes_state_change(rb->attributes, offset, size,
                                          !to_private);
    }
    return ret;
}

/* Whether @rb's record has [@offset, +@size) all in state @private */
static bool gmem_recorded(RAMBlock *rb, ram_addr_t offset, uint64_t size,
                          bool private)
{
    unsigned long *bitmap = rb->attributes->bitmap;     /* set: shared */
    unsigned long first = offset / gmem_page_size;
    unsigned long last = first + size / gmem_page_size;

    return (private ? find_next_bit(bitmap, last, first) :
                      find_next_zero_bit(bitmap, last, first)) == last;
}

/*
 * Pass 1 for a run of memory whose attributes KVM keeps on the guest_memfd,
 * in a conversion that holds gmem_convert_lock: the record changes with the
 * BQL, KVM's attributes without it (see above).  @rb stays while the BQL is
 * dropped (its region is referenced), even if it leaves the memory map
 * meanwhile: converting or recording the pages of a block that is gone
 * does no harm.  Returns with the BQL held, @sec forgotten and @held_since
 * reset; on failure nothing has changed.
 */
static int gmem_change_run_unlocked(RAMBlock *rb, ram_addr_t offset,
                                    hwaddr gpa, uint64_t size,
                                    bool to_private, int64_t *held_since,
                                    GmemSection *sec)
{
    RamBlockAttributes *attrs = rb->attributes;
    int ret;

    if (to_private) {
        ret = ram_block_attributes_state_change(attrs, offset, size, true);
        if (ret) {
            return ret;         /* a listener refused it */
        }
    }
    memory_region_ref(rb->mr);
    sec->size = 0;
    bql_unlock();
    ret = gmem_set_attributes(rb, offset, gpa, size, to_private);
    bql_lock();
    *held_since = get_clock();

    if (to_private && ret) {
        ram_block_attributes_state_change(attrs, offset, size, false);
    } else if (to_private && !gmem_recorded(rb, offset, size, true)) {
        /*
         * The block left the memory map meanwhile, and its private pages
         * were dropped (swp_region_del()): KVM follows the record again,
         * and what the guest asked for is gone.
         */
        kvm_guest_memfd_set_slot_attributes(rb, offset, gpa, size);
        ret = -EINVAL;
    } else if (!to_private && !ret) {
        ret = ram_block_attributes_state_change(attrs, offset, size, false);
        if (ret) {
            /* A listener refused the shared state: private again */
            gmem_set_attributes(rb, offset, gpa, size, true);
        }
    }
    memory_region_unref(rb->mr);
    return ret;
}

/*
 * Pass 1 for one run (see above): with the BQL throughout, or with KVM's
 * calls made without it (@unlocked: gmem_change_run_unlocked()).
 */
static int gmem_change_run(RAMBlock *rb, ram_addr_t offset, hwaddr gpa,
                           uint64_t size, bool to_private, bool unlocked,
                           int64_t *held_since, GmemSection *sec)
{
    int ret;

    /*
     * In place, the page is the same on both sides: nothing to discard.
     * Otherwise the shared side holds nothing worth keeping (nobody may
     * write it while the run is private), so this is quick even for a run
     * made without the BQL.
     */
    if (!to_private && !kvm_guest_memfd_in_place(rb)) {
        ret = ram_block_discard_range(rb, offset, size);
        if (ret) {
            return ret;
        }
    }
    return unlocked ?
           gmem_change_run_unlocked(rb, offset, gpa, size, to_private,
                                    held_since, sec) :
           gmem_set_run_state(rb, offset, gpa, size, to_private);
}

/*
 * The RAM block a changed run is in now, if it is still private-capable
 * RAM recorded all in state @private.  @sec as for gmem_next_run().  With
 * the BQL held.
 */
static RAMBlock *gmem_run_block(const GmemRun *run, bool private,
                                GmemSection *sec, ram_addr_t *offset)
{
    RAMBlock *rb;

    if (gmem_section_at(run->gpa, run->gpa + run->size, sec) != run->size ||
        !sec->rb->attributes) {
        return NULL;    /* unplugged since: its pages went with it */
    }
    rb = sec->rb;
    *offset = sec->offset + (run->gpa - sec->gpa);
    return gmem_recorded(rb, *offset, run->size, private) ? rb : NULL;
}

/*
 * Between two pieces of a conversion, once this thread has held the BQL
 * for GMEM_CONVERT_HOLD_MS and someone waits for it (the main loop, other
 * vCPUs): let them have it.  Unlocking alone would not do: the mutex is
 * not fair, and this thread would take it back first (yielding instead
 * let QMP wait half a second in the rig); nor would a fixed sleep, which
 * ends before a woken waiter has run where scheduling is slow (QMP waited
 * 300 ms in the rig with 50 us sleeps).  So wait until the waiters have
 * had it, polling, for at most GMEM_CONVERT_PAUSE_MAX_MS.  With nobody
 * waiting, a conversion does not pause at all.  Returns when this thread
 * holds the BQL again; the memory map may have changed meanwhile, so @sec
 * is forgotten.
 */
static void gmem_bql_pause(int64_t *held_since, GmemSection *sec)
{
    int64_t start, until;
    bool waiters;

    if (get_clock() - *held_since < GMEM_CONVERT_HOLD_MS * SCALE_MS ||
        !bql_contended()) {
        return;
    }
    sec->size = 0;
    bql_unlock();
    start = get_clock();
    until = start + GMEM_CONVERT_PAUSE_MAX_MS * SCALE_MS;
    do {
        g_usleep(GMEM_CONVERT_PAUSE_US);
    } while ((waiters = bql_contended()) && get_clock() < until);
    bql_lock();
    *held_since = get_clock();
    trace_kvm_guest_memfd_convert_pause((*held_since - start) / SCALE_US,
                                        waiters);
}

/*
 * A page of the run a conversion was changing is held: wait for it
 * without the BQL, so that QMP, the main loop and other vCPUs go on
 * meanwhile (conversions stay ordered by gmem_convert_lock).  The memory
 * map may change meanwhile, so @sec is forgotten.
 */
static void gmem_busy_wait(int64_t *held_since, GmemSection *sec)
{
    sec->size = 0;
    bql_unlock();
    g_usleep(GMEM_BUSY_WAIT_US);
    bql_lock();
    *held_since = get_clock();
}

typedef int GmemRunFunc(RAMBlock *rb, ram_addr_t offset, const GmemRun *run,
                        bool to_private);

/*
 * Call @fn for each piece of up to GMEM_CONVERT_BYTES of the runs a
 * conversion @to_private changed that is still in the state it left it in
 * (in a RAM block still there), with the BQL, pausing as the conversion
 * itself does (a run made without the BQL is up to 256 MiB, too much to
 * free or change back in one go).  Returns the last error @fn returned, 0
 * if none.
 */
static int gmem_for_each_run(GmemRuns *runs, bool to_private,
                             GmemRunFunc *fn, int64_t *held_since,
                             GmemSection *sec)
{
    uint64_t done;
    int ret = 0;
    guint i;

    for (i = 0; i < runs->len; i++) {
        for (done = 0; done < runs->run[i].size; done += GMEM_CONVERT_BYTES) {
            GmemRun piece = {
                .gpa = runs->run[i].gpa + done,
                .size = MIN(runs->run[i].size - done, GMEM_CONVERT_BYTES),
            };
            ram_addr_t offset;
            RAMBlock *rb;
            int err;

            if (i || done) {
                gmem_bql_pause(held_since, sec);
            }
            rb = gmem_run_block(&piece, to_private, sec, &offset);
            if (!rb) {
                continue;
            }
            err = fn(rb, offset, &piece, to_private);
            if (err) {
                ret = err;
            }
        }
    }
    return ret;
}

/* Pass 1 failed: change a run changed so far back. */
static int gmem_undo_run(RAMBlock *rb, ram_addr_t offset, const GmemRun *run,
                         bool to_private)
{
    int err = gmem_set_run_state(rb, offset, run->gpa, run->size, !to_private);
    int tries;

    /* Rare (held pages of a failed conversion to shared): keep the BQL. */
    for (tries = 1; err == -EAGAIN && tries < GMEM_BUSY_RETRIES; tries++) {
        g_usleep(GMEM_BUSY_WAIT_US);
        err = gmem_set_run_state(rb, offset, run->gpa, run->size, !to_private);
    }
    if (err == -EAGAIN) {
        gmem_report_busy(rb);
    }

    if (!err && to_private && !kvm_guest_memfd_in_place(rb)) {
        /* What a racing vCPU may have allocated there meanwhile */
        err = ram_block_discard_guest_memfd_range(rb, offset, run->size);
    }
    if (err) {
        error_report("guest_memfd: cannot change [0x%" HWADDR_PRIx
                     ", +0x%" PRIx64 ") back to %s after a failed "
                     "conversion: %s", run->gpa, run->size,
                     to_private ? "shared" : "private", strerror(-err));
    }
    return err;
}

/* Pass 2: free the side a run left. */
static int gmem_discard_run(RAMBlock *rb, ram_addr_t offset,
                            const GmemRun *run, bool to_private)
{
    int err;

    if (kvm_guest_memfd_in_place(rb)) {
        return 0;       /* one copy, which the guest keeps */
    }
    err = to_private ?
              ram_block_discard_range(rb, offset, run->size) :
              ram_block_discard_guest_memfd_range(rb, offset, run->size);

    if (err) {
        error_report("guest_memfd: [0x%" HWADDR_PRIx ", +0x%" PRIx64
                     ") is %s, but its %s pages cannot be freed: %s",
                     run->gpa, run->size,
                     to_private ? "private" : "shared",
                     to_private ? "shared" : "private", strerror(-err));
    }
    return err;
}

/*
 * The section the last conversion ended in, for the next one: a guest
 * converts piece by piece, one exit each, and the pieces mostly lie in
 * one section.  Forgotten whenever the memory map changes (a transaction
 * begins).  With the BQL held.
 */
static GmemSection gmem_last_section;

static void gmem_map_changing(MemoryListener *listener)
{
    gmem_last_section.size = 0;
}

static MemoryListener gmem_map_listener = {
    .name = "guest-memfd-conversions",
    .begin = gmem_map_changing,
};

/*
 * With the BQL, which it drops between pieces of work, and to wait for a
 * held page.  @alone: the caller does not hold gmem_convert_lock (a
 * conversion of one page, see gmem_convert()), so it must not drop the
 * BQL: a held page returns -EAGAIN at once, with nothing changed.
 */
static int gmem_convert_locked(hwaddr gpa, uint64_t size, bool to_private,
                               bool alone)
{
    static bool listening;
    GmemRuns runs;
    GmemSection sec, more;
    hwaddr pos, end = gpa + size;
    /* A lone page is one run, which never pauses: no clock for it */
    int64_t held_since = alone ? 0 : get_clock();
    uint64_t len;
    bool discard = false;       /* some run has a side to free */
    int busy = 0;               /* waits for held pages */
    int ret = 0;

    if (!listening) {
        memory_listener_register(&gmem_map_listener, &address_space_memory);
        listening = true;
    }
    /*
     * All or nothing: check the whole range before changing any of it.
     * The section it starts in (@sec) is where the conversion starts.
     */
    sec = gmem_last_section;
    for (pos = gpa; pos < end; pos += len) {
        len = pos == gpa ? gmem_section_at(gpa, end, &sec) :
                           gmem_private_section(pos, end - pos, &more);
        if (!len) {
            return -EINVAL;
        }
    }

    gmem_runs_init(&runs);
    for (pos = gpa; pos < end; ) {
        GmemRun run;
        ram_addr_t offset;
        RAMBlock *rb;
        int64_t next;
        bool unlocked;

        if (runs.len) {
            gmem_bql_pause(&held_since, &sec);
        }
        next = gmem_next_run(&pos, end, to_private, &sec, &rb, &offset);
        if (next <= 0) {
            ret = next;
            break;
        }
        /* What fits one piece under the BQL is one call either way */
        unlocked = !alone && kvm_guest_memfd_in_place_supported() &&
                   next > GMEM_CONVERT_BYTES;
        run = (GmemRun) {
            .gpa = pos,
            .size = MIN((uint64_t)next, unlocked ? GMEM_CONVERT_UNLOCKED_BYTES
                                                 : GMEM_CONVERT_BYTES),
        };
        ret = gmem_change_run(rb, offset, run.gpa, run.size, to_private,
                              unlocked, &held_since, &sec);
        if (ret == -EAGAIN && alone) {
            break;              /* the first run: nothing changed yet */
        }
        if (ret == -EAGAIN && ++busy < GMEM_BUSY_RETRIES) {
            gmem_busy_wait(&held_since, &sec);
            continue;           /* look the run up again */
        }
        if (ret == -EAGAIN) {
            gmem_report_busy(rb);
        }
        if (ret) {
            break;
        }
        gmem_runs_append(&runs, &run);
        discard |= !kvm_guest_memfd_in_place(rb);
        pos += run.size;
    }
    trace_kvm_guest_memfd_convert(gpa, size, to_private, runs.len, ret);
    if (ret) {
        ret = gmem_for_each_run(&runs, to_private, gmem_undo_run,
                                &held_since, &sec) ? -EIO : ret;
    } else if (discard) {
        /* In place there is nothing to free: no second walk, no pauses. */
        ret = gmem_for_each_run(&runs, to_private, gmem_discard_run,
                                &held_since, &sec);
    }
    gmem_runs_free(&runs);
    gmem_last_section = sec;
    return ret;
}

/*
 * Whether a conversion that holds gmem_convert_lock is under way (it may
 * have dropped the BQL midway).  With the BQL held.
 */
static bool gmem_convert_under_way;

/* gmem_convert_lock, then the BQL: for a conversion that may drop the BQL */
static void gmem_convert_begin(void)
{
    qemu_mutex_lock(&gmem_convert_lock);
    bql_lock();
    gmem_convert_under_way = true;
}

static void gmem_convert_end(void)
{
    gmem_convert_under_way = false;
    bql_unlock();
    qemu_mutex_unlock(&gmem_convert_lock);
}

/*
 * A conversion, with neither the BQL nor gmem_convert_lock held.  One
 * page, which a guest converting piece by piece asks for at every exit,
 * is one run and needs no pause: it takes only the BQL, unless a
 * conversion that may drop the BQL midway is under way, or the page is
 * held (whose wait drops the BQL): then it waits its turn for
 * gmem_convert_lock like any other conversion.
 */
static int gmem_convert(hwaddr gpa, uint64_t size, bool to_private)
{
    int ret;

    if (size == gmem_page_size) {
        bql_lock();
        if (!gmem_convert_under_way) {
            ret = gmem_convert_locked(gpa, size, to_private, true);
            if (ret != -EAGAIN) {
                bql_unlock();
                return ret;
            }
        }
        bql_unlock();
    }
    gmem_convert_begin();
    ret = gmem_convert_locked(gpa, size, to_private, false);
    gmem_convert_end();
    return ret;
}

int kvm_guest_memfd_convert(hwaddr gpa, uint64_t size, bool to_private)
{
    int ret;

    assert(!bql_locked());
    if (!gmem_range_valid(gpa, size)) {
        return -EINVAL;
    }
    ret = gmem_convert(gpa, size, to_private);
    return ret == -EINVAL ? ret : ret ? -EIO : 0;
}

int kvm_guest_memfd_fault_convert(hwaddr gpa, uint64_t size, bool to_private)
{
    int state, ret;

    assert(!bql_locked());
    if (!gmem_range_valid(gpa, size)) {
        return -EINVAL;
    }
    /* Look and convert under the lock that orders conversions. */
    gmem_convert_begin();
    state = kvm_guest_memfd_range_state(gpa, size);
    if (state < 0) {
        ret = -EINVAL;
    } else if (kvm_guest_memfd_changed_since_run()) {
        ret = -EAGAIN;
    } else if (state == (to_private ? KVM_GUEST_MEMFD_RANGE_PRIVATE :
                                      KVM_GUEST_MEMFD_RANGE_SHARED)) {
        ret = -EEXIST;
    } else {
        ret = gmem_convert_locked(gpa, size, to_private, false);
        ret = ret == -EINVAL ? ret : ret ? -EIO : 0;
    }
    gmem_convert_end();
    return ret;
}

/* Whether @rb is RAM of memory-backend-guest-memfd */
static bool gmem_backend_ram(RAMBlock *rb)
{
    return object_dynamic_cast(memory_region_owner(rb->mr),
                               TYPE_MEMORY_BACKEND_GUEST_MEMFD);
}

/* The range's state, of memory-backend-guest-memfd RAM only if backend */
static int gmem_range_state(hwaddr gpa, uint64_t size, bool backend)
{
    uint64_t page = gmem_page_size;
    uint64_t done, len;
    int state = -1;

    if (!gmem_range_valid(gpa, size)) {
        return -EINVAL;
    }
    /* All of it, even once it is mixed: -EINVAL is for any part of it */
    for (done = 0; done < size; done += len) {
        GmemSection sec;
        unsigned long first, last, shared, *bitmap;
        KvmGuestMemfdRangeState this;

        len = gmem_private_section(gpa + done, size - done, &sec);
        if (!len || !sec.rb->attributes ||
            (backend && !gmem_backend_ram(sec.rb))) {
            return -EINVAL;
        }
        first = sec.offset / page;
        last = first + len / page;
        bitmap = sec.rb->attributes->bitmap;
        shared = find_next_zero_bit(bitmap, last, first) == last;
        if (!shared && find_next_bit(bitmap, last, first) != last) {
            this = KVM_GUEST_MEMFD_RANGE_MIXED;
        } else {
            this = shared ? KVM_GUEST_MEMFD_RANGE_SHARED :
                            KVM_GUEST_MEMFD_RANGE_PRIVATE;
        }
        state = state < 0 || state == this ? this :
                KVM_GUEST_MEMFD_RANGE_MIXED;
    }
    return state;
}

int kvm_guest_memfd_range_state(hwaddr gpa, uint64_t size)
{
    return gmem_range_state(gpa, size, false);
}

int kvm_guest_memfd_backend_range_state(hwaddr gpa, uint64_t size)
{
    return gmem_range_state(gpa, size, true);
}

int kvm_guest_memfd_set_slot_attributes(RAMBlock *rb, uint64_t offset,
                                        hwaddr gpa, uint64_t size)
{
    RamBlockAttributes *attrs = rb->attributes;
    uint64_t page = gmem_page_size;
    unsigned long first = offset / page, last = (offset + size) / page;
    unsigned long i, next;
    int ret;

    if (!attrs) {
        return gmem_set_attributes(rb, offset, gpa, size, true);
    }
    for (i = first; i < last; i = next) {
        bool shared = test_bit(i, attrs->bitmap);

        next = shared ? find_next_zero_bit(attrs->bitmap, last, i) :
                        find_next_bit(attrs->bitmap, last, i);
        ret = gmem_set_attributes(rb, i * page, gpa + (i - first) * page,
                                  (next - i) * page, !shared);
        if (ret) {
            return ret;
        }
    }
    return 0;
}

int kvm_guest_memfd_drop_private(RAMBlock *rb, uint64_t *dropped)
{
    uint64_t page = gmem_page_size;
    RamBlockAttributes *attrs = rb->attributes;
    unsigned long i, next;
    int ret;

    assert(kvm_guest_memfd_private_capable(rb) && attrs);
    /* Run by run of private pages, so that listeners hear of each once. */
    for (i = find_first_zero_bit(attrs->bitmap, attrs->bitmap_size);
         i < attrs->bitmap_size;
         i = find_next_zero_bit(attrs->bitmap, attrs->bitmap_size, next)) {
        uint64_t offset = i * page;
        uint64_t size;

        next = find_next_bit(attrs->bitmap, attrs->bitmap_size, i);
        size = (next - i) * page;
        /* Freed while private: the host never sees what they held. */
        ret = ram_block_discard_guest_memfd_range(rb, offset, size);
        if (!ret && kvm_guest_memfd_in_place_supported()) {
            kvm_guest_memfd_attributes_changing();
            ret = gmem_set_file_attributes(rb, offset, size, false);
            kvm_guest_memfd_attributes_changing();
        }
        if (!ret) {
            ret = ram_block_attributes_state_change(attrs, offset, size,
                                                    false);
        }
        if (ret) {
            return ret;
        }
        *dropped += size;
    }
    return 0;
}

/*
 * Changes of memory attributes so far, counted twice each (before and
 * after), and what this vCPU thread had seen when it last entered KVM_RUN.
 * 32 bits: a false match would take 2^31 changes during one KVM_RUN.
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

/* -accel kvm,stop-at-memory-high=on */
static bool gmem_stop_at_memory_high;

static bool gmem_get_stop_at_memory_high(Object *obj, Error **errp)
{
    return gmem_stop_at_memory_high;
}

static void gmem_set_stop_at_memory_high(Object *obj, bool value,
                                         Error **errp)
{
    gmem_stop_at_memory_high = value;
}

void kvm_guest_memfd_accel_class_init(ObjectClass *oc)
{
    object_class_property_add_bool(oc, "stop-at-memory-high",
                                   gmem_get_stop_at_memory_high,
                                   gmem_set_stop_at_memory_high);
    object_class_property_set_description(oc, "stop-at-memory-high",
        "Stop the VM when the guest touches a new guest_memfd page above "
        "memory.high of QEMU's memory cgroup, instead of being throttled "
        "(default: off)");
}

bool kvm_guest_memfd_stop_at_memory_high(void)
{
    return gmem_stop_at_memory_high;
}

bool kvm_guest_memfd_memcg_high_supported(void)
{
    int64_t flags = kvm_guest_memfd_supported_flags();

    return flags > 0 && (flags & GUEST_MEMFD_FLAG_MEMCG_HIGH);
}

uint64_t kvm_guest_memfd_create_flags(uint64_t flags)
{
    if (gmem_stop_at_memory_high && kvm_guest_memfd_memcg_high_supported()) {
        flags |= GUEST_MEMFD_FLAG_MEMCG_HIGH;
    }
    return flags;
}

/*
 * QEMU's cgroup, or the one above it, that has no room left below its
 * memory.high; NULL if none has (or they cannot be read).
 */
static char *gmem_cgroup_at_high(void)
{
    char *cgroup = NULL;
    const char *limit_file = NULL;
    uint64_t room = guest_memfd_cgroup_room(&cgroup, &limit_file);

    if (room >= gmem_page_size ||
        g_strcmp0(limit_file, "memory.high")) {
        g_free(cgroup);
        return NULL;
    }
    return cgroup;
}

int kvm_guest_memfd_out_of_memory(int cpu_index, hwaddr gpa, uint64_t size)
{
    g_autofree char *cgroup = gmem_cgroup_at_high();

    trace_kvm_guest_memfd_out_of_memory(cpu_index, gpa, size);
    bql_lock();
    if (cgroup) {
        error_report("vCPU %d: the host has no memory for guest page 0x%"
                     HWADDR_PRIx ": it would take memory cgroup %s above "
                     "its memory.high; the VM is stopped",
                     cpu_index, gpa, cgroup);
    } else {
        error_report("vCPU %d: the host could not allocate guest page 0x%"
                     HWADDR_PRIx " (KVM_RUN: %s); the VM is stopped",
                     cpu_index, gpa, strerror(ENOMEM));
    }
    error_printf("Make room or raise the limit, then continue the VM"
                 " ('cont'): the guest's access is retried.\n");
    vm_stop(RUN_STATE_IO_ERROR);
    bql_unlock();
    return EXCP_INTERRUPT;
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
