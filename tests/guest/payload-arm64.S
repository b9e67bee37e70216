/*
 * gmem arm64 payload: a tiny guest for QEMU's virt machine on arm64 KVM,
 * loaded by -kernel as an ELF image at 0x40200000 (below it, the 1 MiB
 * device tree QEMU puts at the start of RAM: QEMU leaves it out when the
 * image starts lower).
 *
 * It finds the end of RAM in that device tree (its memory nodes' "reg"),
 * writes one 64-bit word into each 4 KiB page of RAM from 4 MiB up, the
 * page's address XOR SEED, reads every word back, and reports on the
 * PL011 UART at 0x09000000 (RAM's size, pages written, the result):
 *
 *     gmem-arm64: ram 0x0000000004000000
 *     gmem-arm64: wrote 0x0000000000003c00 pages
 *     gmem-arm64: PASS
 *
 * (or "gmem-arm64: FAIL at 0x..." naming the first page that read back
 * wrong, or a FAIL saying it found no RAM to test).  Then it powers the
 * machine off (PSCI SYSTEM_OFF): QEMU exits, or with -action
 * shutdown=pause stays, paused, for the host to read the pattern through
 * QEMU (HMP pmemsave) and look at QEMU's mappings.
 *
 * The MMU stays off: the payload's accesses are Device-nGnRnE, aligned,
 * one word per page, which is all it needs.  Its stack is unused (no
 * call is nested).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define RAM_BASE        0x40000000
#define TEST_START      (RAM_BASE + 0x400000)
#define SEED            0x1e3779b97f4a7c15
#define UART            0x09000000      /* PL011 */
#define UART_DR         0x00
#define UART_FR         0x18
#define UART_FR_TXFF    (1 << 5)
#define UART_CR         0x30
#define UART_CR_ON      0x301           /* UARTEN | TXE | RXE */
#define PSCI_SYSTEM_OFF 0x84000008
#define FDT_MAGIC       0xd00dfeed
#define FDT_BEGIN_NODE  1
#define FDT_END_NODE    2
#define FDT_PROP        3
#define FDT_NOP         4

    .text
    .global _start
_start:
    /* the UART on */
    ldr     x20, =UART
    mov     w0, #UART_CR_ON
    str     w0, [x20, #UART_CR]

    /*
     * x22 = the end of RAM: the highest end of the DTB's memory nodes'
     * "reg" (two cells of address, two of size, as virt makes them).  The
     * DTB is at the start of RAM for an ELF image; its words are
     * big-endian, 4-byte aligned, its strings not aligned at all.
     */
    ldr     x1, =RAM_BASE
    ldr     w0, [x1]                /* magic */
    rev     w0, w0
    ldr     w2, =FDT_MAGIC
    cmp     w0, w2
    b.ne    no_ram
    ldr     w0, [x1, #8]            /* off_dt_struct */
    rev     w0, w0
    add     x2, x1, x0              /* x2: the token */
    ldr     w0, [x1, #12]           /* off_dt_strings */
    rev     w0, w0
    add     x3, x1, x0              /* x3: the strings */
    mov     x22, #0
    mov     x7, #0                  /* in a memory node */
dt_next:
    ldr     w0, [x2], #4
    rev     w0, w0
    cmp     w0, #FDT_BEGIN_NODE
    b.eq    dt_node
    cmp     w0, #FDT_END_NODE
    b.eq    dt_end_node
    cmp     w0, #FDT_PROP
    b.eq    dt_prop
    cmp     w0, #FDT_NOP
    b.eq    dt_next
    b       dt_done                 /* FDT_END, or not a DTB */
dt_end_node:
    mov     x7, #0
    b       dt_next
dt_node:
    /* "memory" followed by '@' or the name's end */
    mov     x7, #0
    adr     x4, str_memory
    mov     x5, x2
1:  ldrb    w6, [x4], #1
    cbz     w6, 2f
    ldrb    w0, [x5], #1
    cmp     w0, w6
    b.ne    3f
    b       1b
2:  ldrb    w0, [x5]
    cmp     w0, #'@'
    ccmp    w0, #0, #4, ne          /* '@' or NUL: Z set */
    cset    x7, eq
3:  /* skip the name, its NUL and the padding to 4 bytes */
    ldrb    w0, [x2], #1
    cbnz    w0, 3b
    add     x2, x2, #3
    and     x2, x2, #~3
    b       dt_next
dt_prop:
    ldr     w8, [x2]                /* the value's length */
    rev     w8, w8
    ldr     w0, [x2, #4]            /* the name's offset */
    rev     w0, w0
    add     x9, x2, #8              /* the value */
    add     x2, x9, x8              /* next token, padded to 4 bytes */
    add     x2, x2, #3
    and     x2, x2, #~3
    cbz     x7, dt_next
    cmp     w8, #16
    b.lo    dt_next
    add     x4, x3, x0              /* the name: "reg"? */
    ldrb    w0, [x4]
    cmp     w0, #'r'
    b.ne    dt_next
    ldrb    w0, [x4, #1]
    cmp     w0, #'e'
    b.ne    dt_next
    ldrb    w0, [x4, #2]
    cmp     w0, #'g'
    b.ne    dt_next
    ldrb    w0, [x4, #3]
    cbnz    w0, dt_next
    ldp     w10, w11, [x9]          /* address, big-endian halves */
    rev     w10, w10
    rev     w11, w11
    orr     x10, x11, x10, lsl #32
    ldp     w11, w12, [x9, #8]      /* size */
    rev     w11, w11
    rev     w12, w12
    orr     x11, x12, x11, lsl #32
    add     x10, x10, x11
    cmp     x10, x22
    csel    x22, x10, x22, hi
    b       dt_next
dt_done:
    /* No RAM above TEST_START to test: say so, never PASS */
    ldr     x3, =TEST_START
    cmp     x22, x3
    b.ls    no_ram
    ldr     x3, =RAM_BASE
    sub     x21, x22, x3            /* x21: the RAM size */

    adr     x0, msg_ram
    bl      puts
    mov     x0, x21
    bl      puthex
    bl      newline

    /* the pattern from TEST_START up */
    ldr     x4, =SEED
    ldr     x5, =TEST_START
    mov     x23, #0                 /* pages written */
2:  cmp     x5, x22
    b.hs    3f
    eor     x6, x5, x4
    str     x6, [x5]
    add     x5, x5, #4096
    add     x23, x23, #1
    b       2b
3:
    adr     x0, msg_wrote
    bl      puts
    mov     x0, x23
    bl      puthex
    adr     x0, msg_pages
    bl      puts

    /* read it all back */
    ldr     x5, =TEST_START
4:  cmp     x5, x22
    b.hs    5f
    ldr     x6, [x5]
    eor     x6, x6, x4
    cmp     x6, x5
    b.ne    fail
    add     x5, x5, #4096
    b       4b
5:
    adr     x0, msg_pass
    bl      puts
    b       power_off

no_ram:
    adr     x0, msg_no_ram
    bl      puts
    b       power_off

fail:
    mov     x24, x5
    adr     x0, msg_fail
    bl      puts
    mov     x0, x24
    bl      puthex
    bl      newline

    /* Done: power off (PSCI SYSTEM_OFF, by HVC as on virt with KVM) */
power_off:
    ldr     x0, =PSCI_SYSTEM_OFF
    hvc     #0
1:  wfi
    b       1b

/* puts: the NUL-terminated string at x0.  Uses x0, x9, x10. */
puts:
    ldrb    w9, [x0], #1
    cbz     w9, 2f
1:  ldr     w10, [x20, #UART_FR]
    tbnz    w10, #5, 1b             /* UART_FR_TXFF */
    str     w9, [x20, #UART_DR]
    b       puts
2:  ret

/* puthex: x0 as "0x" and 16 hex digits.  Uses x0, x9-x12. */
puthex:
    mov     x11, x0
1:  ldr     w10, [x20, #UART_FR]
    tbnz    w10, #5, 1b
    mov     w9, #'0'
    str     w9, [x20, #UART_DR]
1:  ldr     w10, [x20, #UART_FR]
    tbnz    w10, #5, 1b
    mov     w9, #'x'
    str     w9, [x20, #UART_DR]
    mov     x12, #60
1:  lsr     x9, x11, x12
    and     x9, x9, #0xf
    cmp     x9, #10
    b.lo    2f
    add     x9, x9, #('a' - 10 - '0')
2:  add     x9, x9, #'0'
3:  ldr     w10, [x20, #UART_FR]
    tbnz    w10, #5, 3b
    str     w9, [x20, #UART_DR]
    subs    x12, x12, #4
    b.ge    1b
    ret

/* newline.  Uses x9, x10. */
newline:
1:  ldr     w10, [x20, #UART_FR]
    tbnz    w10, #5, 1b
    mov     w9, #'\n'
    str     w9, [x20, #UART_DR]
    ret

str_memory: .asciz "memory"
msg_ram:    .asciz "gmem-arm64: ram "
msg_wrote:  .asciz "gmem-arm64: wrote "
msg_pages:  .asciz " pages\n"
msg_pass:   .asciz "gmem-arm64: PASS\n"
msg_fail:   .asciz "gmem-arm64: FAIL at "
msg_no_ram: .asciz "gmem-arm64: FAIL: no device tree, or no RAM above 4 MiB in it\n"
    .balign 8
    .ltorg
