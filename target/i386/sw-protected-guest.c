/*
 * sw-protected-guest: KVM's software-protected VM type
 *
 * KVM_X86_SW_PROTECTED_VM is a VM type with private memory and no
 * hardware memory encryption: it runs on any x86 host whose kernel has
 * CONFIG_KVM_SW_PROTECTED_VM.  Its RAM comes from
 * memory-backend-guest-memfd: mmap=off (two copies: private pages in the
 * guest_memfd, shared ones in a memfd), or mmap=on where KVM converts
 * guest_memfd pages in place (one copy).  All of its
 * memory starts shared when the machine starts and after each reset; the
 * guest converts ranges with the KVM_HC_MAP_GPA_RANGE hypercall, which KVM
 * hands to QEMU.  A bad request gets an error back in the guest's RAX and
 * the VM keeps running.
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
#include "qemu/bitmap.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "qemu/stats64.h"
#include "qemu/units.h"
#include "qom/object_interfaces.h"
#include "hw/boards.h"
#include "hw/i386/pc.h"
#include "hw/i386/x86.h"
#include "hw/pci/pci_host.h"
#include "system/address-spaces.h"
#include "system/guest-memfd.h"
#include "system/hostmem.h"
#include "system/kvm.h"
#include "system/memory.h"
#include "system/numa.h"
#include "system/reset.h"
#include "system/system.h"
#include "standard-headers/asm-x86/kvm_para.h"
#include "standard-headers/linux/kvm_para.h"
#include "exec/target_page.h"
#include "system/ramblock.h"
#include "exec/cpu-common.h"
#include "target/i386/confidential-guest.h"
#include "target/i386/cgs-gmem.h"
#include "target/i386/kvm/kvm_i386.h"
#include "trace/trace-overlay.h"

#define TYPE_SW_PROTECTED_GUEST "sw-protected-guest"

OBJECT_DECLARE_SIMPLE_TYPE(SwProtectedGuest, SW_PROTECTED_GUEST)

struct SwProtectedGuest {
    X86ConfidentialGuest parent_obj;

    Notifier machine_done;
    RAMBlockNotifier ram_blocks;
    MemoryListener unmapped;
    MemoryListener below_bit;

    /* What the guest asked for, and what came of it */
    CgsGmemStats stats;

    /* The GPA bit that makes an access private, 0 for none */
    uint32_t intent_bit;
};

/*
 * KVM_CAP_X86_SW_PROTECTED_INTENT_BIT (kernel-patches/sw-intent-bit): a
 * GPA bit with which the guest's accesses say they are private
 */
#ifndef KVM_CAP_X86_SW_PROTECTED_INTENT_BIT
#define KVM_CAP_X86_SW_PROTECTED_INTENT_BIT 251
#endif
#define SWP_INTENT_BIT_MIN 32

/*
 * The machine's sw-protected-guest once the machine is made: vCPU exits
 * find it here, with no QOM cast on the way.
 */
static SwProtectedGuest *swp_active;

static SwProtectedGuest *swp_current(void)
{
    if (!current_machine || !current_machine->cgs) {
        return NULL;
    }
    return (SwProtectedGuest *)object_dynamic_cast(OBJECT(current_machine->cgs),
                                                   TYPE_SW_PROTECTED_GUEST);
}

/*
 * KVM_HC_MAP_GPA_RANGE: the guest's request, carried out; the result goes
 * to the guest's RAX.  vCPU threads take hypercall exits without the BQL,
 * which the conversion takes a piece at a time.
 */
static int swp_map_gpa_range(struct kvm_run *run)
{
    SwProtectedGuest *swp = qatomic_read(&swp_active);

    if (!swp) {
        return -ENOSYS;
    }
    return cgs_gmem_map_gpa_range(&swp->stats, CGS_GMEM_ERRORS_IN_RAX, run);
}

/* Trace a KVM_EXIT_MEMORY_FAULT's outcome; count and report a failure. */
static int swp_fault_done(SwProtectedGuest *swp, hwaddr gpa, uint64_t size,
                          bool private, const char *what, int ret)
{
    return cgs_gmem_fault_done(&swp->stats, TYPE_SW_PROTECTED_GUEST, gpa,
                               size, private, what, ret);
}

/*
 * KVM_EXIT_MEMORY_FAULT.  In a software-protected VM, KVM takes an access
 * as private or shared from the memory attributes, so the guest never
 * asks for an implicit conversion this way, and none is made.  KVM exits:
 *
 * - when a conversion changed the attributes while it was handling the
 *   fault: the vCPU runs again, and KVM looks at the attributes anew.
 *   The access then no longer matches what QEMU records, or it does
 *   because more conversions changed the range back since; the count of
 *   changes since the vCPU entered KVM_RUN tells the latter from a fault
 *   KVM cannot serve;
 * - for a private access where no guest_memfd memslot is: the range is
 *   not RAM, so it is made shared, and the access becomes an ordinary
 *   access to unassigned memory (memory that leaves an address, such as
 *   a DIMM unplugged, is made shared there as it leaves: swp_region_del());
 * - when it cannot serve a page as it is (the guest_memfd cannot allocate
 *   it, or an instruction on private memory needs emulating): the vCPU
 *   stops, as QEMU's own handler would stop it.
 */
static int swp_memory_fault(hwaddr gpa, uint64_t size, bool private)
{
    SwProtectedGuest *swp = qatomic_read(&swp_active);
    const char *what;
    int state, ret = 0;

    if (!swp) {
        return -ENOSYS;
    }
    /*
     * With an intent bit (intent-bit=N) the guest's access says whether it
     * is private, as on SEV-SNP and TDX, and one whose intent differs from
     * the range's state asks for an implicit conversion.
     */
    if (swp->intent_bit) {
        return cgs_gmem_intent_fault(&swp->stats, TYPE_SW_PROTECTED_GUEST,
                                     gpa, size, private);
    }
    /* Each piece of a conversion, and memory hot-unplug, hold the BQL. */
    BQL_LOCK_GUARD();
    state = kvm_guest_memfd_range_state(gpa, size);
    if (state == -EINVAL && private &&
        !kvm_guest_memfd_range_has_ram(gpa, size)) {
        ret = kvm_set_memory_attributes_shared(gpa, size);
        what = "not RAM, made shared";
        stat64_add(&swp->stats.faults_no_ram, !ret);
    } else if (state >= 0 &&
               state != (private ? KVM_GUEST_MEMFD_RANGE_PRIVATE :
                                   KVM_GUEST_MEMFD_RANGE_SHARED)) {
        what = "raced with a conversion, retried";
        stat64_add(&swp->stats.faults_retried, 1);
    } else if (state >= 0 && kvm_guest_memfd_changed_since_run()) {
        /* Converted, and back again, since KVM saw the fault */
        what = "raced with conversions, retried";
        stat64_add(&swp->stats.faults_retried, 1);
    } else {
        what = state == -EINVAL ? "not private-capable RAM" :
               "KVM cannot serve it as it is";
        ret = -EFAULT;
    }
    return swp_fault_done(swp, gpa, size, private, what, ret);
}

/* The memory backend of the machine's RAM, or of each NUMA node's */
static bool swp_check_ram(MachineState *ms, Error **errp)
{
    HostMemoryBackend *backends[MAX_NODES + 1];
    int i, n = 0;

    if (ms->memdev) {
        backends[n++] = ms->memdev;
    }
    for (i = 0; ms->numa_state && i < ms->numa_state->num_nodes; i++) {
        if (ms->numa_state->nodes[i].node_memdev) {
            backends[n++] = ms->numa_state->nodes[i].node_memdev;
        }
    }
    if (!n) {
        error_setg(errp, "sw-protected-guest needs the machine's RAM from a "
                   "%s", TYPE_MEMORY_BACKEND_GUEST_MEMFD);
    }
    for (i = 0; i < n; i++) {
        Object *obj = OBJECT(backends[i]);
        const char *id = object_get_canonical_path_component(obj);

        if (!object_dynamic_cast(obj, TYPE_MEMORY_BACKEND_GUEST_MEMFD)) {
            error_setg(errp, "sw-protected-guest needs the machine's RAM from "
                       "a %s, but '%s' is a %s",
                       TYPE_MEMORY_BACKEND_GUEST_MEMFD, id,
                       object_get_typename(obj));
            break;
        }
    }
    if (n && i == n) {
        return true;
    }
    error_append_hint(errp, "Use -object %s,id=ram0,size=...,mmap=%s and "
                      "-machine memory-backend=ram0.\n",
                      TYPE_MEMORY_BACKEND_GUEST_MEMFD,
                      kvm_guest_memfd_in_place_supported() ? "on" : "off");
    return false;
}

/*
 * With an intent bit, the guest reaches its memory with and without the
 * bit, so the memory lies below it (KVM refuses memslots that reach it):
 * RAM, and the range DIMMs can be plugged into.  So does the 64-bit PCI
 * window: a BAR at or above the bit would be reached by accesses that
 * KVM takes as private accesses to the memory below it.
 */
static bool swp_check_intent_bit(SwProtectedGuest *swp, MachineState *ms,
                                 Error **errp)
{
    X86MachineState *x86ms = X86_MACHINE(ms);
    Object *host = object_resolve_path_type("", TYPE_PCI_HOST_BRIDGE, NULL);
    uint64_t end = 4 * GiB;

    if (!swp->intent_bit) {
        return true;
    }
    if (x86ms->above_4g_mem_size) {
        end = x86ms->above_4g_mem_start + x86ms->above_4g_mem_size;
    }
    if (ms->device_memory) {
        end = MAX(end, ms->device_memory->base +
                       memory_region_size(&ms->device_memory->mr));
    }
    if (host && object_property_find(host, PCI_HOST_PROP_PCI_HOLE64_END)) {
        end = MAX(end, object_property_get_uint(host,
                                                PCI_HOST_PROP_PCI_HOLE64_END,
                                                NULL));
    }
    if (end > BIT_ULL(swp->intent_bit)) {
        error_setg(errp, "sw-protected-guest: intent-bit=%u is below the "
                   "end of guest memory and the 64-bit PCI window "
                   "(0x%" PRIx64 "): they must lie below the intent bit",
                   swp->intent_bit, end);
        error_append_hint(errp, "Use a higher intent-bit, or less memory "
                          "(-m, maxmem) or PCI window (pci-hole64-size of "
                          "the PCI host).\n");
        return false;
    }
    return true;
}

static bool swp_share_range(Int128 start, Int128 len, const MemoryRegion *mr,
                            hwaddr offset_in_region, void *opaque)
{
    int *err = opaque;

    if (kvm_guest_memfd_private_capable(mr->ram_block)) {
        /* Recorded shared already (swp_share_block): tell KVM. */
        *err = kvm_set_memory_attributes_shared(int128_get64(start),
                                                int128_get64(len));
    }
    return *err != 0;
}

/* Record a private-capable RAM block as all shared. */
static int swp_share_block(RAMBlock *rb, void *opaque)
{
    if (!kvm_guest_memfd_private_capable(rb) || !rb->attributes) {
        return 0;
    }
    return ram_block_attributes_state_change(rb->attributes, 0,
                                             rb->used_length, false);
}

/*
 * RAM blocks created later (a DIMM plugged while the guest runs) start
 * shared too, before their memslots are added.
 */
static void swp_ram_block_added(RAMBlockNotifier *n, void *host, size_t size,
                                size_t max_size)
{
    ram_addr_t offset;
    RAMBlock *rb = qemu_ram_block_from_host(host, false, &offset);

    if (rb && swp_share_block(rb, NULL)) {
        error_report("sw-protected-guest: cannot record RAM block '%s' as "
                     "shared", qemu_ram_get_idstr(rb));
    }
}

/*
 * At reset, a block's private pages go: their contents are dropped from
 * the guest_memfd and the whole block is recorded shared again.  Adds the
 * private bytes dropped to *opaque.
 */
static int swp_reset_block(RAMBlock *rb, void *opaque)
{
    if (!kvm_guest_memfd_private_capable(rb) || !rb->attributes) {
        return 0;
    }
    return kvm_guest_memfd_drop_private(rb, opaque);
}

/*
 * KVM keeps memory attributes per guest address, not per memslot: when
 * private-capable memory leaves an address, make the address shared in
 * KVM, so that what appears there next (other RAM, or none) is not taken
 * as private.  A memslot added again takes its state from the RAM block's
 * record (kvm_guest_memfd_set_slot_attributes()).  When the block is not
 * mapped anywhere any more (a DIMM unplugged), its private pages are
 * dropped and it is recorded shared: plugged again, it starts shared,
 * like any hot-plugged memory.
 */
static void swp_region_del(MemoryListener *listener,
                           MemoryRegionSection *section)
{
    RAMBlock *rb = section->mr->ram_block;
    uint64_t page = qemu_real_host_page_size();
    hwaddr start = section->offset_within_address_space;
    /* What KVM mapped of it: whole pages (kvm_align_section()) */
    hwaddr gpa = ROUND_UP(start, page);
    hwaddr end = QEMU_ALIGN_DOWN(start + int128_get64(section->size), page);
    uint64_t size = end > gpa ? end - gpa : 0;
    uint64_t dropped = 0;
    int ret = 0;

    if (!kvm_guest_memfd_private_capable(rb)) {
        return;
    }
    kvm_guest_memfd_attributes_changing();
    if (size) {
        ret = kvm_set_memory_attributes_shared(gpa, size);
    }
    if (!ret && !memory_region_is_mapped(section->mr)) {
        ret = swp_reset_block(rb, &dropped);
    }
    kvm_guest_memfd_attributes_changing();
    trace_sw_protected_guest_unmapped(gpa, size, dropped, ret);
    if (ret) {
        error_report("sw-protected-guest: cannot make [0x%" HWADDR_PRIx
                     ", +0x%" PRIx64 ") shared as RAM block '%s' leaves it: "
                     "%s", gpa, size, qemu_ram_get_idstr(rb), strerror(-ret));
    }
}

/* Tell KVM that the memory mapped now is all shared. */
static int swp_share_mapped(void)
{
    int ret = 0;

    WITH_RCU_READ_LOCK_GUARD() {
        FlatView *fv = address_space_to_flatview(&address_space_memory);

        flatview_for_each_range(fv, swp_share_range, &ret);
    }
    return ret;
}

/*
 * A reset starts the guest again as it started the first time: with all
 * of its memory shared (the firmware is reloaded into shared memory).
 * What was private is dropped, as a confidential guest's memory would be.
 */
static void swp_reset(void *opaque)
{
    uint64_t dropped = 0;
    int ret;

    kvm_guest_memfd_attributes_changing();
    ret = qemu_ram_foreach_block(swp_reset_block, &dropped);
    if (!ret && dropped) {
        ret = swp_share_mapped();
    }
    kvm_guest_memfd_attributes_changing();
    trace_sw_protected_guest_reset(dropped, ret);
    if (ret) {
        error_report("sw-protected-guest: cannot make guest memory shared at "
                     "reset: %s", strerror(-ret));
        exit(1);
    }
}

/*
 * A software-protected guest starts with all of its memory shared: the
 * host loads firmware and kernels into shared memory, and the guest makes
 * private what it wants private.  Every private-capable RAM block is
 * recorded as shared, including those the firmware maps only later (PAM,
 * option ROMs): a memslot takes its state from that record when it is
 * added.  The memslots that exist now are made shared in KVM.
 */
static void swp_machine_done(Notifier *n, void *unused)
{
    SwProtectedGuest *swp = container_of(n, SwProtectedGuest, machine_done);
    Error *err = NULL;
    int ret;

    /* An object the machine does not use for confidential guest support */
    if (swp_current() != swp) {
        return;
    }

    if (!swp_check_ram(current_machine, &err) ||
        !swp_check_intent_bit(swp, current_machine, &err)) {
        error_report_err(err);
        exit(1);
    }

    ret = qemu_ram_foreach_block(swp_share_block, NULL);
    if (!ret) {
        ret = swp_share_mapped();
    }
    if (ret) {
        error_report("sw-protected-guest: cannot make guest memory shared at "
                     "start: %s", strerror(-ret));
        exit(1);
    }
    qemu_register_reset(swp_reset, NULL);
    swp->ram_blocks.ram_block_added = swp_ram_block_added;
    ram_block_notifier_add(&swp->ram_blocks);
    swp->unmapped = (MemoryListener) {
        .name = "sw-protected-guest",
        .region_del = swp_region_del,
    };
    memory_listener_register(&swp->unmapped, &address_space_memory);
    kvm_guest_memfd_set_fault_handler(swp_memory_fault);
    cgs_gmem_set_hypercall_handler(swp_map_gpa_range);
    qatomic_set(&swp_active, swp);
}

static int swp_kvm_type(X86ConfidentialGuest *cg)
{
    if (!kvm_is_vm_type_supported(KVM_X86_SW_PROTECTED_VM)) {
        error_report("sw-protected-guest: this host's KVM has no "
                     "software-protected VM type (KVM_X86_SW_PROTECTED_VM "
                     "needs Linux 6.8+ built with CONFIG_KVM_SW_PROTECTED_VM)");
        exit(1);
    }
    return KVM_X86_SW_PROTECTED_VM;
}

/*
 * KVM refuses a memslot that reaches the intent bit, and QEMU aborts when
 * KVM refuses a memslot: RAM mapped that high (more RAM than the bit
 * leaves room for, or DIMMs placed above it) must stop QEMU with an error
 * first.  Runs before KVM's listener.
 */
static void swp_below_bit_add(MemoryListener *listener,
                              MemoryRegionSection *section)
{
    SwProtectedGuest *swp = container_of(listener, SwProtectedGuest,
                                         below_bit);
    Int128 end = int128_add(int128_make64(section->offset_within_address_space),
                            section->size);

    if (memory_region_is_ram(section->mr) &&
        int128_gt(end, int128_make64(BIT_ULL(swp->intent_bit)))) {
        error_report("sw-protected-guest: intent-bit=%u is below the end of "
                     "RAM '%s' at [0x%" HWADDR_PRIx ", +0x%" PRIx64 "): "
                     "guest memory must lie below the intent bit",
                     swp->intent_bit, memory_region_name(section->mr),
                     section->offset_within_address_space,
                     int128_get64(section->size));
        error_printf("Use a higher intent-bit, or less memory (-m, "
                     "maxmem).\n");
        exit(1);
    }
}

/* Tell KVM the intent bit, before it has memslots and vCPUs. */
static bool swp_enable_intent_bit(SwProtectedGuest *swp, Error **errp)
{
    int limit = kvm_vm_check_extension(kvm_state,
                                       KVM_CAP_X86_SW_PROTECTED_INTENT_BIT);
    int ret;

    if (limit <= 0) {
        error_setg(errp, "sw-protected-guest: intent-bit needs a KVM that "
                   "takes the private/shared intent of a software-protected "
                   "VM's accesses from a GPA bit "
                   "(KVM_CAP_X86_SW_PROTECTED_INTENT_BIT, the project's "
                   "kernel-patches/sw-intent-bit); this host's KVM has none");
        return false;
    }
    if (swp->intent_bit >= limit) {
        error_setg(errp, "sw-protected-guest: intent-bit=%u is not below "
                   "%d, the first GPA bit this host's KVM cannot take",
                   swp->intent_bit, limit);
        error_append_hint(errp, "Use intent-bit=%d.\n", limit - 1);
        return false;
    }
    ret = kvm_vm_enable_cap(kvm_state, KVM_CAP_X86_SW_PROTECTED_INTENT_BIT,
                            0, BIT_ULL(swp->intent_bit));
    if (ret) {
        error_setg_errno(errp, -ret, "sw-protected-guest: KVM refused "
                         "intent-bit=%u", swp->intent_bit);
        return false;
    }
    return true;
}

static int swp_kvm_init(ConfidentialGuestSupport *cgs, Error **errp)
{
    X86MachineState *x86ms = X86_MACHINE(qdev_get_machine());
    SwProtectedGuest *swp = SW_PROTECTED_GUEST(cgs);

    /*
     * SMM maps RAM a second time (its own address space, q35's SMRAM
     * alias), and KVM binds a range of private guest_memfd memory to one
     * memslot only.
     */
    if (x86ms->smm == ON_OFF_AUTO_ON) {
        error_setg(errp, "sw-protected-guest cannot be used with SMM: KVM "
                   "maps private memory into one memslot only");
        error_append_hint(errp, "Use -machine smm=off, or leave smm unset.\n");
        return -1;
    }
    x86ms->smm = ON_OFF_AUTO_OFF;

    if (!kvm_enable_hypercall(BIT_ULL(KVM_HC_MAP_GPA_RANGE))) {
        error_setg(errp, "sw-protected-guest: KVM cannot hand "
                   "KVM_HC_MAP_GPA_RANGE hypercalls to QEMU "
                   "(KVM_CAP_EXIT_HYPERCALL)");
        return -1;
    }
    if (swp->intent_bit) {
        if (!swp_enable_intent_bit(swp, errp)) {
            return -1;
        }
        swp->below_bit = (MemoryListener) {
            .name = "sw-protected-guest-intent-bit",
            .region_add = swp_below_bit_add,
            .priority = MEMORY_LISTENER_PRIORITY_MIN,
        };
        memory_listener_register(&swp->below_bit, &address_space_memory);
    }
    cgs->ready = true;
    return 0;
}

/* The guest's page tables must be able to hold the intent bit. */
static int swp_check_features(X86ConfidentialGuest *cg, CPUState *cs)
{
    SwProtectedGuest *swp = SW_PROTECTED_GUEST(cg);
    X86CPU *cpu = X86_CPU(cs);

    if (swp->intent_bit && cpu->phys_bits <= swp->intent_bit) {
        error_report("sw-protected-guest: intent-bit=%u is not a physical "
                     "address bit of the guest's CPU (phys-bits=%u)",
                     swp->intent_bit, cpu->phys_bits);
        error_printf("Use a CPU model with more physical address bits "
                     "(-cpu host, or phys-bits=N), or a lower intent-bit.\n");
        return -EINVAL;
    }
    return 0;
}

static void swp_get_intent_bit(Object *obj, Visitor *v, const char *name,
                               void *opaque, Error **errp)
{
    visit_type_uint32(v, name, &SW_PROTECTED_GUEST(obj)->intent_bit, errp);
}

static void swp_set_intent_bit(Object *obj, Visitor *v, const char *name,
                               void *opaque, Error **errp)
{
    SwProtectedGuest *swp = SW_PROTECTED_GUEST(obj);
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (value && (value < SWP_INTENT_BIT_MIN || value > 63)) {
        error_setg(errp, "sw-protected-guest: intent-bit must be 0 (none) "
                   "or a GPA bit from %d to 63, not %u", SWP_INTENT_BIT_MIN,
                   value);
        return;
    }
    /* KVM takes it before the VM has memslots and vCPUs. */
    if (phase_check(PHASE_ACCEL_CREATED)) {
        error_setg(errp, "sw-protected-guest: intent-bit can only be set "
                   "when the machine is created (-object)");
        return;
    }
    swp->intent_bit = value;
}

static CgsGmemStats *swp_stats_of(Object *obj)
{
    return &SW_PROTECTED_GUEST(obj)->stats;
}

static void swp_instance_init(Object *obj)
{
    SwProtectedGuest *swp = SW_PROTECTED_GUEST(obj);
    ConfidentialGuestSupport *cgs = CONFIDENTIAL_GUEST_SUPPORT(obj);

    cgs->require_guest_memfd = true;
    swp->machine_done.notify = swp_machine_done;
    qemu_add_machine_init_done_notifier(&swp->machine_done);
}

static void swp_instance_finalize(Object *obj)
{
    SwProtectedGuest *swp = SW_PROTECTED_GUEST(obj);

    qemu_remove_machine_init_done_notifier(&swp->machine_done);
    if (qatomic_read(&swp_active) == swp) {
        qatomic_set(&swp_active, NULL);
    }
    if (swp->ram_blocks.ram_block_added) {
        ram_block_notifier_remove(&swp->ram_blocks);
        memory_listener_unregister(&swp->unmapped);
        kvm_guest_memfd_set_fault_handler(NULL);
        cgs_gmem_set_hypercall_handler(NULL);
    }
    if (swp->below_bit.region_add) {
        memory_listener_unregister(&swp->below_bit);
    }
}

static void swp_class_init(ObjectClass *oc, const void *data)
{
    ConfidentialGuestSupportClass *klass = CONFIDENTIAL_GUEST_SUPPORT_CLASS(oc);
    X86ConfidentialGuestClass *x86_klass = X86_CONFIDENTIAL_GUEST_CLASS(oc);
    klass->kvm_init = swp_kvm_init;
    x86_klass->kvm_type = swp_kvm_type;
    x86_klass->check_features = swp_check_features;

    object_class_property_add(oc, "intent-bit", "uint32",
                              swp_get_intent_bit, swp_set_intent_bit,
                              NULL, NULL);
    object_class_property_set_description(oc, "intent-bit",
        "A guest physical address bit that makes the guest's accesses "
        "private, as SEV-SNP's C-bit does: KVM then exits where an access "
        "and the memory's state differ, and QEMU converts the memory "
        "(0: none, KVM takes the intent from the memory's state)");

    cgs_gmem_class_add_counters(oc, swp_stats_of);
}

static const TypeInfo swp_info = {
    .name = TYPE_SW_PROTECTED_GUEST,
    .parent = TYPE_X86_CONFIDENTIAL_GUEST,
    .instance_size = sizeof(SwProtectedGuest),
    .instance_init = swp_instance_init,
    .instance_finalize = swp_instance_finalize,
    .class_init = swp_class_init,
    .interfaces = (const InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void swp_register_types(void)
{
    type_register_static(&swp_info);
}

type_init(swp_register_types);
