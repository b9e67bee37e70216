/*
 * Private guest memory and QEMU's own accesses
 *
 * A private-capable guest_memfd RAM block (memory-backend-guest-memfd,
 * mmap=off) has two sides per page: the guest_memfd, which KVM serves
 * private pages from and the host cannot read, and a shared side that
 * QEMU maps.  QEMU's accesses to guest memory (device DMA, the monitor,
 * the gdbstub, qtest) go through its mapping, so for a private page they
 * would read the shared side: never the private bytes, but a shmem page
 * read through a mapping is allocated, so a device that reads private
 * addresses (which the guest chooses) would make the host hold up to a
 * second copy of guest RAM.  Where one guest_memfd holds both kinds of
 * page in place (mmap=on in a VM with private memory), QEMU maps the
 * guest_memfd itself, and the kernel answers an access to a private page
 * with SIGBUS.  Physmem asks here instead, and treats a private page as
 * memory the host cannot reach (hook patch 0019).
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "system/ramblock.h"
#include "system/guest-memfd.h"

bool ram_block_private_run(RAMBlock *rb, ram_addr_t offset, hwaddr *len)
{
    RamBlockAttributes *attrs = rb ? rb->attributes : NULL;
    uint64_t page = qemu_real_host_page_size();
    unsigned long first, last, end;
    bool private;

    if (!attrs || !*len) {
        return false;
    }
    first = offset / page;
    last = MIN(DIV_ROUND_UP(offset + *len, page), attrs->bitmap_size);
    if (first >= last) {
        return false;
    }
    /*
     * Set bits are shared pages.  Read without a lock: a conversion that
     * runs meanwhile makes either answer right.
     */
    private = !test_bit(first, attrs->bitmap);
    end = private ? find_next_bit(attrs->bitmap, last, first) :
                    find_next_zero_bit(attrs->bitmap, last, first);
    if (end < last) {
        *len = end * page - offset;
    }
    return private;
}
