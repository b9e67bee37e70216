/*
 * Confidential guests on memory-backend-guest-memfd: conversions and
 * their counters, shared by sw-protected-guest, tdx-guest and
 * sev-snp-guest
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef I386_CGS_GMEM_H
#define I386_CGS_GMEM_H

#include "qemu/stats64.h"

struct kvm_run;

/* What came of a confidential guest's conversion requests */
typedef struct CgsGmemStats {
    /* By hypercall (KVM_HC_MAP_GPA_RANGE), or by access (fault) */
    Stat64 to_private;          /* requests to make memory private, done */
    Stat64 to_shared;           /* requests to make memory shared, done */
    Stat64 bytes_to_private;    /* by hypercall and by access */
    Stat64 bytes_to_shared;
    Stat64 rejected;            /* requests refused as invalid */
    Stat64 failed;              /* requests the host failed to carry out */

    /* KVM_EXIT_MEMORY_FAULT */
    Stat64 faults_retried;      /* raced with a conversion */
    Stat64 faults_no_ram;       /* private accesses outside RAM, made shared */
    Stat64 faults_failed;       /* faults that stopped the vCPU */
    Stat64 faults_to_private;   /* implicit conversions */
    Stat64 faults_to_shared;
} CgsGmemStats;

/* How the guest type hears of a request's failure */
typedef enum CgsGmemErrors {
    /*
     * sw-protected-guest: any error, as a negative errno in the guest's
     * RAX; the VM runs on.
     */
    CGS_GMEM_ERRORS_IN_RAX,
    /*
     * SEV-SNP and TDX: KVM takes only 0, EINVAL or EAGAIN back (and tells
     * the guest in its own protocol); a failure of the host stops the VM.
     */
    CGS_GMEM_ERRORS_TO_KVM,
} CgsGmemErrors;

/**
 * cgs_gmem_map_gpa_range:
 * @stats: the guest's counters
 * @errors: how the guest hears of errors
 * @run: the vCPU's kvm_run, after a KVM_HC_MAP_GPA_RANGE exit
 *
 * Carry out a conversion request with the conversion engine (without the
 * BQL, which it takes a piece at a time), count it and answer it.
 *
 * Returns: 0 when the exit is handled, a negative errno to stop the vCPU.
 */
int cgs_gmem_map_gpa_range(CgsGmemStats *stats, CgsGmemErrors errors,
                           struct kvm_run *run);

/**
 * cgs_gmem_intent_fault:
 * @stats: the guest's counters
 * @who: the guest type, for errors
 * @gpa, @size, @private: as KVM_EXIT_MEMORY_FAULT gives them
 *
 * Convert a range implicitly, as an access whose private/shared intent
 * differs from the range's state asks (SEV-SNP, TDX, sw-protected-guest
 * with intent-bit), unless a conversion may have overtaken the fault: see
 * kvm_guest_memfd_fault_convert().
 *
 * Returns: 0 when the vCPU can run on, a negative errno to stop it.
 */
int cgs_gmem_intent_fault(CgsGmemStats *stats, const char *who, hwaddr gpa,
                          uint64_t size, bool private);

/**
 * cgs_gmem_fault_done:
 * @stats: the guest's counters
 * @who: the guest type, for errors
 * @gpa, @size, @private: as KVM_EXIT_MEMORY_FAULT gives them
 * @what: what came of it, for the trace and the error
 * @ret: 0, or the negative errno that stops the vCPU
 *
 * Trace a KVM_EXIT_MEMORY_FAULT's outcome; count and report a failure.
 *
 * Returns: @ret
 */
int cgs_gmem_fault_done(CgsGmemStats *stats, const char *who, hwaddr gpa,
                        uint64_t size, bool private, const char *what,
                        int ret);

/**
 * cgs_gmem_class_add_counters:
 * @oc: a confidential guest class
 * @stats_of: where an object of the class keeps its counters
 *
 * Add the counters as read-only uint64 properties of @oc
 * ("conversions-to-private", ..., "faults-to-shared").
 */
void cgs_gmem_class_add_counters(ObjectClass *oc,
                                 CgsGmemStats *(*stats_of)(Object *obj));

/**
 * cgs_gmem_set_hypercall_handler:
 * @handler: what answers KVM_HC_MAP_GPA_RANGE exits, NULL for QEMU's own
 *
 * Let the machine's confidential guest object answer its guest's
 * conversion requests.
 */
void cgs_gmem_set_hypercall_handler(int (*handler)(struct kvm_run *run));

/**
 * x86_cgs_map_gpa_range:
 * @run: the vCPU's kvm_run, after a KVM_HC_MAP_GPA_RANGE exit
 *
 * Returns: what the handler returns, or -ENOSYS when there is none or it
 * leaves the request to QEMU's own handling.
 */
int x86_cgs_map_gpa_range(struct kvm_run *run);

/**
 * cgs_gmem_hw_class_init:
 * @oc: the class of tdx-guest or sev-snp-guest
 *
 * Give the class the counters of its conversions on
 * memory-backend-guest-memfd.
 */
void cgs_gmem_hw_class_init(ObjectClass *oc);

#endif
