/*
 * Confidential guests on memory-backend-guest-memfd
 *
 * A confidential guest converts its memory between private and shared in
 * two ways: by request (the KVM_HC_MAP_GPA_RANGE hypercall, which is what
 * SEV-SNP's page state changes and TDX's MapGPA reach QEMU as), and by
 * access (an access whose private/shared intent differs from the range's
 * state exits with KVM_EXIT_MEMORY_FAULT, and the VMM converts the range
 * implicitly).  Both go to the conversion engine (accel/kvm/guest-memfd.c)
 * here, with the counters and traces every guest type shares.
 *
 * sw-protected-guest uses them for its own guests.  tdx-guest and
 * sev-snp-guest use them when the machine's RAM comes from
 * memory-backend-guest-memfd: then the backend's guest_memfd is their
 * private memory (mmap=off: created with the flags those VM types take,
 * with the backend's NUMA policy and preallocation), requests for ranges
 * of guest_memfd RAM go to the engine, and the rest (MMIO ranges that
 * OVMF makes shared, memory without a guest_memfd) to QEMU's own handling
 * as before.
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <linux/kvm.h>
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qom/object.h"
#include "hw/boards.h"
#include "system/guest-memfd.h"
#include "system/hostmem.h"
#include "system/address-spaces.h"
#include "system/memory.h"
#include "system/system.h"
#include "standard-headers/asm-x86/kvm_para.h"
#include "standard-headers/linux/kvm_para.h"
#include "exec/target_page.h"
#include "target/i386/cgs-gmem.h"
#include "target/i386/kvm/tdx.h"
#include "target/i386/sev.h"
#include "trace/trace-overlay.h"

/* Valid bits of KVM_HC_MAP_GPA_RANGE's attributes */
#define CGS_MAP_GPA_ATTRS \
    (KVM_MAP_GPA_RANGE_PAGE_SZ_2M | KVM_MAP_GPA_RANGE_PAGE_SZ_1G | \
     KVM_MAP_GPA_RANGE_ENCRYPTED)

int cgs_gmem_map_gpa_range(CgsGmemStats *stats, CgsGmemErrors errors,
                           struct kvm_run *run)
{
    uint64_t gpa = run->hypercall.args[0];
    uint64_t npages = run->hypercall.args[1];
    uint64_t attrs = run->hypercall.args[2];
    bool to_private = attrs & KVM_MAP_GPA_RANGE_ENCRYPTED;
    int ret;

    if ((attrs & ~CGS_MAP_GPA_ATTRS) || !npages ||
        npages > UINT64_MAX / TARGET_PAGE_SIZE) {
        ret = -EINVAL;
    } else {
        ret = kvm_guest_memfd_convert(gpa, npages * TARGET_PAGE_SIZE,
                                      to_private);
    }

    /* Counted without the BQL: a conversion takes it once, not twice. */
    if (!ret) {
        stat64_add(to_private ? &stats->to_private : &stats->to_shared, 1);
        stat64_add(to_private ? &stats->bytes_to_private :
                                &stats->bytes_to_shared,
                   npages * TARGET_PAGE_SIZE);
    } else if (ret == -EINVAL) {
        stat64_add(&stats->rejected, 1);
        trace_cgs_gmem_map_gpa_range_refused(gpa, npages, attrs);
    } else {
        stat64_add(&stats->failed, 1);
    }
    trace_cgs_gmem_map_gpa_range(gpa, npages, attrs, ret);

    if (errors == CGS_GMEM_ERRORS_IN_RAX) {
        run->hypercall.ret = ret;
        return 0;
    }
    /* KVM tells an SEV-SNP or TDX guest of EINVAL in its own protocol. */
    if (ret && ret != -EINVAL) {
        error_report("guest_memfd: cannot make [0x%" PRIx64 ", +0x%" PRIx64
                     ") %s as the guest asked: %s", gpa,
                     npages * TARGET_PAGE_SIZE,
                     to_private ? "private" : "shared", strerror(-ret));
        return ret;
    }
    run->hypercall.ret = -ret;
    return 0;
}

int cgs_gmem_fault_done(CgsGmemStats *stats, const char *who, hwaddr gpa,
                        uint64_t size, bool private, const char *what,
                        int ret)
{
    trace_cgs_gmem_memory_fault(who, gpa, size, private, what, ret);
    if (ret) {
        stat64_add(&stats->faults_failed, 1);
        error_report("%s: the guest's %s access to [0x%" HWADDR_PRIx
                     ", +0x%" PRIx64 ") failed: %s", who,
                     private ? "private" : "shared", gpa, size, what);
    }
    return ret;
}

int cgs_gmem_intent_fault(CgsGmemStats *stats, const char *who, hwaddr gpa,
                          uint64_t size, bool private)
{
    const char *what;
    int ret = kvm_guest_memfd_fault_convert(gpa, size, private);

    switch (ret) {
    case 0:
        what = private ? "converted to private" : "converted to shared";
        stat64_add(private ? &stats->faults_to_private :
                             &stats->faults_to_shared, 1);
        stat64_add(private ? &stats->bytes_to_private :
                             &stats->bytes_to_shared, size);
        break;
    case -EAGAIN:
        what = "raced with conversions, retried";
        stat64_add(&stats->faults_retried, 1);
        ret = 0;
        break;
    case -EEXIST:
        what = "KVM cannot serve it as it is";
        ret = -EFAULT;
        break;
    case -EINVAL:
        what = "not private-capable RAM";
        ret = -EFAULT;
        break;
    default:
        what = "the conversion failed";
        break;
    }
    return cgs_gmem_fault_done(stats, who, gpa, size, private, what, ret);
}

/* The counters, as properties */

typedef struct CgsGmemCounter {
    const char *name;
    size_t offset;
    const char *desc;
} CgsGmemCounter;

static const CgsGmemCounter cgs_gmem_counters[] = {
    { "conversions-to-private", offsetof(CgsGmemStats, to_private),
      "Guest requests to make memory private that were carried out" },
    { "conversions-to-shared", offsetof(CgsGmemStats, to_shared),
      "Guest requests to make memory shared that were carried out" },
    { "bytes-to-private", offsetof(CgsGmemStats, bytes_to_private),
      "Bytes made private at the guest's request (by hypercall or by "
      "access)" },
    { "bytes-to-shared", offsetof(CgsGmemStats, bytes_to_shared),
      "Bytes made shared at the guest's request (by hypercall or by "
      "access)" },
    { "conversions-rejected", offsetof(CgsGmemStats, rejected),
      "Guest requests refused as invalid (the guest got EINVAL)" },
    { "conversions-failed", offsetof(CgsGmemStats, failed),
      "Guest requests the host failed to carry out" },
    { "faults-retried", offsetof(CgsGmemStats, faults_retried),
      "KVM_EXIT_MEMORY_FAULT exits that raced with a conversion" },
    { "faults-outside-ram", offsetof(CgsGmemStats, faults_no_ram),
      "Private accesses where no RAM is (any more), made shared" },
    { "faults-failed", offsetof(CgsGmemStats, faults_failed),
      "KVM_EXIT_MEMORY_FAULT exits that stopped the vCPU" },
    { "faults-to-private", offsetof(CgsGmemStats, faults_to_private),
      "Private accesses to shared memory that QEMU converted to private" },
    { "faults-to-shared", offsetof(CgsGmemStats, faults_to_shared),
      "Shared accesses to private memory that QEMU converted to shared" },
};

typedef struct CgsGmemCounterProp {
    CgsGmemStats *(*stats_of)(Object *obj);
    size_t offset;
} CgsGmemCounterProp;

static void cgs_gmem_get_counter(Object *obj, Visitor *v, const char *name,
                                 void *opaque, Error **errp)
{
    CgsGmemCounterProp *prop = opaque;
    CgsGmemStats *stats = prop->stats_of(obj);
    uint64_t value = 0;

    if (stats) {
        value = stat64_get((Stat64 *)((char *)stats + prop->offset));
    }
    visit_type_uint64(v, name, &value, errp);
}

void cgs_gmem_class_add_counters(ObjectClass *oc,
                                 CgsGmemStats *(*stats_of)(Object *obj))
{
    int i;

    for (i = 0; i < ARRAY_SIZE(cgs_gmem_counters); i++) {
        /* As long as the class: never freed */
        CgsGmemCounterProp *prop = g_new(CgsGmemCounterProp, 1);

        prop->stats_of = stats_of;
        prop->offset = cgs_gmem_counters[i].offset;
        object_class_property_add(oc, cgs_gmem_counters[i].name, "uint64",
                                  cgs_gmem_get_counter, NULL, NULL, prop);
        object_class_property_set_description(oc, cgs_gmem_counters[i].name,
                                              cgs_gmem_counters[i].desc);
    }
}

/* Who answers KVM_HC_MAP_GPA_RANGE */

static int (*cgs_gmem_hypercall_handler)(struct kvm_run *run);

void cgs_gmem_set_hypercall_handler(int (*handler)(struct kvm_run *run))
{
    qatomic_set(&cgs_gmem_hypercall_handler, handler);
}

int x86_cgs_map_gpa_range(struct kvm_run *run)
{
    int (*handler)(struct kvm_run *run) =
        qatomic_read(&cgs_gmem_hypercall_handler);

    return handler ? handler(run) : -ENOSYS;
}

/*
 * tdx-guest and sev-snp-guest on memory-backend-guest-memfd.  Their
 * objects are QEMU's own (target/i386/kvm/tdx.c, sev.c); what they need
 * of the backend is here, set up when a TDX or SEV-SNP machine is done:
 * from then on, requests and faults for ranges of the backend's RAM go
 * to the engine, the rest to QEMU's own handling.
 */

/* The machine has one confidential guest object: its counters */
static CgsGmemStats cgs_hw_stats;
static Object *cgs_hw_active;

static CgsGmemStats *cgs_hw_stats_of(Object *obj)
{
    return obj == qatomic_read(&cgs_hw_active) ? &cgs_hw_stats : NULL;
}

void cgs_gmem_hw_class_init(ObjectClass *oc)
{
    cgs_gmem_class_add_counters(oc, cgs_hw_stats_of);
}

static const char *cgs_hw_name(void)
{
    return object_get_typename(qatomic_read(&cgs_hw_active));
}

/*
 * Whether [gpa, gpa + size) is all RAM of memory-backend-guest-memfd
 * (machine RAM, NUMA nodes', DIMMs'), which the engine takes
 */
static bool cgs_hw_engine_range(hwaddr gpa, uint64_t size)
{
    BQL_LOCK_GUARD();
    return kvm_guest_memfd_backend_range_state(gpa, size) >= 0;
}

static int cgs_hw_map_gpa_range(struct kvm_run *run)
{
    uint64_t gpa = run->hypercall.args[0];
    uint64_t npages = run->hypercall.args[1];

    /* The rest, such as MMIO made shared, QEMU's own handling takes. */
    if (!npages || npages > UINT64_MAX / TARGET_PAGE_SIZE ||
        !cgs_hw_engine_range(gpa, npages * TARGET_PAGE_SIZE)) {
        return -ENOSYS;
    }
    return cgs_gmem_map_gpa_range(&cgs_hw_stats, CGS_GMEM_ERRORS_TO_KVM, run);
}

/*
 * On SEV-SNP and TDX the hardware says what the guest meant: an access
 * whose intent differs from the range's state asks for an implicit
 * conversion.
 */
static int cgs_hw_memory_fault(hwaddr gpa, uint64_t size, bool private)
{
    if (!cgs_hw_engine_range(gpa, size)) {
        return -ENOSYS;
    }
    return cgs_gmem_intent_fault(&cgs_hw_stats, cgs_hw_name(), gpa, size,
                                 private);
}

/* A TDX or SEV-SNP machine (the backend refuses mmap=on for them) */
static void cgs_hw_machine_done(Notifier *n, void *unused)
{
    Object *cgs = current_machine ? OBJECT(current_machine->cgs) : NULL;

    if (!cgs || (!object_dynamic_cast(cgs, TYPE_TDX_GUEST) &&
                 !object_dynamic_cast(cgs, TYPE_SEV_SNP_GUEST))) {
        return;
    }
    qatomic_set(&cgs_hw_active, cgs);
    kvm_guest_memfd_set_fault_handler(cgs_hw_memory_fault);
    cgs_gmem_set_hypercall_handler(cgs_hw_map_gpa_range);
}

static Notifier cgs_hw_machine_done_notifier = {
    .notify = cgs_hw_machine_done,
};

static void cgs_gmem_register(void)
{
    qemu_add_machine_init_done_notifier(&cgs_hw_machine_done_notifier);
}

type_init(cgs_gmem_register);
