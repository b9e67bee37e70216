/*
 * Floor for preallocation: allocate a guest_memfd directly, with no QEMU.
 * Creates a VM, a mappable shared guest_memfd of SIZE bytes, and times one
 * fallocate() over all of it.  Prints the seconds.
 *
 *   gmem-fallocate SIZE
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP           (1ULL << 0)
#define GUEST_MEMFD_FLAG_INIT_SHARED    (1ULL << 1)
#endif
#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
    unsigned long long size;
    unsigned long long flags;
    unsigned long long reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

int main(int argc, char **argv)
{
    struct kvm_create_guest_memfd gm = { 0 };
    struct timespec t0, t1;
    int kvm, vm, fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SIZE\n", argv[0]);
        return 2;
    }
    gm.size = strtoull(argv[1], NULL, 0);
    gm.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
    fd = vm < 0 ? -1 : ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gm);
    if (fd < 0) {
        perror("guest_memfd");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, gm.size)) {
        perror("fallocate");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
