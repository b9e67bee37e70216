/*
 * The payload guest's argument file (fw_cfg "opt/gmem/args"), its flags,
 * range kinds and hypercall: the one definition, included by
 * tests/guest/payload.S and tests/qtest/guest-memfd-test.c and read by
 * tests/lib/gmemtest.py (which takes every "#define NAME number" line).
 *
 * The file: a header, then nranges ranges, all little-endian:
 *   u32 magic, u32 flags, u32 seed (the guest's pattern), u32 nranges;
 *   each range: u64 base, u64 len, u32 kind, u32 host_seed.
 * The payload writes one word per page: addr ^ (seed << 32 | seed).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef GMEM_PAYLOAD_ABI_H
#define GMEM_PAYLOAD_ABI_H

#define ARGS_MAX        4096            /* the most the payload reads */

/* args file layout (little-endian) */
#define ARGS_MAGIC      0x31414d47      /* "GMA1" */
#define A_MAGIC         0
#define A_FLAGS         4
#define A_SEED          8
#define A_NRANGES       12
#define A_RANGES        16
#define R_BASE          0
#define R_LEN           8
#define R_KIND          16
#define R_HSEED         20
#define R_SIZE          24

#define FLAG_HALT       1               /* halt at the end instead of exiting */
#define FLAG_HOTPLUG    2               /* then test a DIMM hot-plugged in slot 0 */
#define FLAG_HP_PRIVATE 4               /* and make its first 2 MiB private, and
                                           read it again once it is ejected */
#define FLAG_COUNTER    8               /* then, pass after pass, check and bump
                                           a counter in every page of the first
                                           range, see counter_loop */
#define FLAG_HP_AGAIN   16              /* with FLAG_HOTPLUG: once the DIMM is
                                           ejected, test the next DIMM in slot 0
                                           the same way, with no conversion
                                           and no read once it is gone */
#define FLAG_IN_PLACE   32              /* with FLAG_HP_PRIVATE: the memory
                                           converts in place, so the DIMM's
                                           range made private still holds
                                           the guest pattern (not zero) */
#define FLAG_HP_AGAIN_PRIVATE 64        /* with FLAG_HP_AGAIN: the next DIMM's
                                           first 2 MiB made private too */

/* what the payload does with a range */
#define KIND_GUEST      0               /* write and check the guest pattern */
#define KIND_HOST       1               /* check the host's pattern first */
#define KIND_PRIVATE    2               /* make it private, check it is zero, then
                                           write and check */
#define KIND_SHARED     3               /* make it shared, check it is zero, then
                                           write and check */
#define KIND_HCALL      4               /* only the hypercall, with base, len
                                           (pages) and host_seed (attributes)
                                           as given; print what it returns */
#define KIND_BENCH      5               /* conversion benchmark: write the range,
                                           make it private host_seed pages at a
                                           time, write it, make it shared the
                                           same way; a marker hypercall that
                                           QEMU refuses (the local APIC) before
                                           and after each pass, for timing;
                                           first, once a launch, a warm-up:
                                           the first chunk to private and
                                           back, and a refused hypercall
                                           that is not a marker */
#define KIND_RACE       6               /* two vCPUs: the second one makes the
                                           range private and shared again,
                                           host_seed times, while this one
                                           writes and reads its pages; then
                                           write and check (needs -smp 2) */
#define KIND_WAIT       7               /* print WAITING, then wait until the
                                           host writes host_seed into the
                                           64-bit word at base (shared) */
#define KIND_FUZZ       8               /* a hostile guest: both vCPUs (-smp 2)
                                           make host_seed random steps each,
                                           on their own 1 MiB half of the
                                           range (2 MiB): conversions of
                                           random runs, bad requests of every
                                           kind, writes and checks against
                                           a model of what each page must
                                           hold; see fuzz_step */
#define KIND_KEEP       9               /* in-place conversion: write the guest
                                           pattern, make the range private and
                                           check the pattern is still there,
                                           write the host_seed pattern, make
                                           it shared and check that one; the
                                           range is left holding it */
#define KIND_INTENT     10              /* a sw-protected-guest with an intent
                                           bit (host_seed: its number, 39 to
                                           46): no hypercall; write the guest
                                           pattern, read the range privately
                                           (at its alias, the bit set): zero,
                                           or with FLAG_IN_PLACE the pattern;
                                           write another privately; read it
                                           shared: zero, or (in place) it;
                                           then write and check as usual */
#define KIND_INTENT_TOUCH 11            /* read one word at base with the
                                           intent bit host_seed set (a
                                           private access) and print it */
#define KIND_INTENT_PRIVATE 12          /* KIND_INTENT up to the private
                                           write: the range is left private,
                                           holding the inverted guest
                                           pattern, which the host must
                                           never see */

/* KVM_HC_MAP_GPA_RANGE: RAX=12, RBX=gpa, RCX=pages, RDX=attributes */
#define HC_MAP_GPA_RANGE        12
#define MAP_GPA_ENCRYPTED       0x10

#define DEFAULT_SEED    0x5eed5eed

#endif
