/*
 * Runs in the Linux test guest's userspace: fills 8 MiB with marked pages
 * (a marker, then the page's index), says so on the console, and waits to
 * be looked at.  The host then finds the marked pages in the guest's RAM.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGES 2048
#define MARKER "GMEM-L2-USERSPACE-PATTERN:"

int main(void)
{
    char *buf = aligned_alloc(4096, PAGES * 4096UL);
    int i;

    if (!buf) {
        puts("GMEM-L2 FAIL: no memory");
        return 1;
    }
    for (i = 0; i < PAGES; i++) {
        snprintf(buf + i * 4096UL, 64, "%s%08d", MARKER, i);
    }
    printf("GMEM-L2 PATTERN WRITTEN %d pages\n", PAGES);
    fflush(stdout);
    for (;;) {
        pause();
    }
}
