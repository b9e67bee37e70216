/*
 * Floor for preallocation: fault in SIZE bytes of fresh anonymous memory,
 * as QEMU's own preallocation of memory-backend-ram does
 * (MADV_POPULATE_WRITE).  Prints the seconds.
 *
 *   anon-populate SIZE
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    size_t size;
    char *p;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SIZE\n", argv[0]);
        return 2;
    }
    size = strtoull(argv[1], NULL, 0);
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (madvise(p, size, MADV_POPULATE_WRITE)) {
        perror("madvise");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.6f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
