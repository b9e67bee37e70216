/*
 * Floor for conversions: what KVM and the kernel take to convert memory
 * between shared and private, with no guest and no QEMU.  In a
 * software-protected VM with one memslot of TOTAL bytes (a private
 * guest_memfd, and a memfd for the shared side), each run:
 *
 *   - writes every shared page (as the guest does before converting);
 *   - converts TOTAL bytes to private, CHUNK bytes at a time: for each,
 *     KVM_SET_MEMORY_ATTRIBUTES(private), a hole punched in the memfd and
 *     MADV_DONTNEED on its mapping (timed);
 *   - allocates the guest_memfd's pages (as the guest's writes would);
 *   - converts back to shared: KVM_SET_MEMORY_ATTRIBUTES(shared) and a hole
 *     punched in the guest_memfd (timed).
 *
 * These are the calls QEMU makes for a KVM_HC_MAP_GPA_RANGE hypercall.  The
 * VM has no vCPU, so KVM has no guest mappings to zap, which it has to do
 * for a guest.
 * Prints one line per run: the seconds to private, the seconds to shared.
 *
 *   convert TOTAL CHUNK RUNS
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KVM_X86_SW_PROTECTED_VM_TYPE 1

static int vm;

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "convert: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_attributes(uint64_t gpa, uint64_t size, uint64_t attrs)
{
    struct kvm_memory_attributes a = {
        .address = gpa, .size = size, .attributes = attrs,
    };

    if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a)) {
        die("KVM_SET_MEMORY_ATTRIBUTES");
    }
}

static void punch(int fd, uint64_t off, uint64_t len)
{
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)) {
        die("fallocate(PUNCH_HOLE)");
    }
}

int main(int argc, char **argv)
{
    struct kvm_create_guest_memfd gm = { 0 };
    struct kvm_userspace_memory_region2 slot = { 0 };
    uint64_t total, chunk, off;
    int kvm, gmem, shared, runs;
    unsigned char *mem;

    if (argc != 4) {
        fprintf(stderr, "usage: %s TOTAL CHUNK RUNS\n", argv[0]);
        return 2;
    }
    total = strtoull(argv[1], NULL, 0);
    chunk = strtoull(argv[2], NULL, 0);
    runs = atoi(argv[3]);
    if (!chunk || total % chunk || chunk % 4096) {
        fprintf(stderr, "convert: TOTAL must be a multiple of CHUNK, CHUNK of 4 KiB\n");
        return 2;
    }

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        die("/dev/kvm");
    }
    vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM_TYPE);
    if (vm < 0) {
        die("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM)");
    }
    gm.size = total;
    gmem = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gm);
    if (gmem < 0) {
        die("KVM_CREATE_GUEST_MEMFD");
    }
    shared = memfd_create("floor-shared", MFD_CLOEXEC);
    if (shared < 0 || ftruncate(shared, total)) {
        die("memfd");
    }
    mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, shared, 0);
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    slot.flags = KVM_MEM_GUEST_MEMFD;
    slot.guest_phys_addr = 1ULL << 32;
    slot.memory_size = total;
    slot.userspace_addr = (uintptr_t)mem;
    slot.guest_memfd = gmem;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot)) {
        die("KVM_SET_USER_MEMORY_REGION2");
    }

    for (int r = 0; r < runs; r++) {
        double t0, t1, t2, t3;

        for (off = 0; off < total; off += 4096) {
            mem[off] = 1;
        }
        t0 = now();
        for (off = 0; off < total; off += chunk) {
            set_attributes(slot.guest_phys_addr + off, chunk,
                           KVM_MEMORY_ATTRIBUTE_PRIVATE);
            punch(shared, off, chunk);
            if (madvise(mem + off, chunk, MADV_DONTNEED)) {
                die("madvise(MADV_DONTNEED)");
            }
        }
        t1 = now();
        if (fallocate(gmem, FALLOC_FL_KEEP_SIZE, 0, total)) {
            die("fallocate(guest_memfd)");
        }
        t2 = now();
        for (off = 0; off < total; off += chunk) {
            set_attributes(slot.guest_phys_addr + off, chunk, 0);
            punch(gmem, off, chunk);
        }
        t3 = now();
        printf("%.6f %.6f\n", t1 - t0, t3 - t2);
    }
    return 0;
}
