/*
 * gmem payload: a tiny -bios guest for the guest_memfd tests.
 *
 * It enters long mode (identity map of the first 16 GiB with 2 MiB pages,
 * so that pc-dimm memory above 4 GiB is reachable), then for each range it
 * is told about writes one 64-bit word per 4 KiB page, the page's address
 * XOR a seed, and checks it back.  A range can also ask it to first check a
 * pattern that the host wrote.  Results go to isa-debugcon (port 0xe9) and
 * the exit status to isa-debug-exit (port 0xf4): 0 for pass (QEMU exits 1),
 * 1 for fail (QEMU exits 3).
 *
 * Ranges can also be converted between shared and private first, with the
 * KVM_HC_MAP_GPA_RANGE hypercall (vmmcall: AMD, as the rig's TCG CPU is),
 * for software-protected guests.
 *
 * With FLAG_HOTPLUG it then acts as a guest OS's ACPI code would for a
 * pc-dimm in slot 0: it waits for the insert event, tests the DIMM at the
 * address the platform reports, then waits for the remove request and
 * ejects the DIMM.
 *
 * The ranges come from the fw_cfg file "opt/gmem/args" (tests/lib); with
 * no such file it tests [1 MiB, min(RAM size, 2 GiB)).  Pages below 1 MiB
 * hold the payload's own page tables and stack.
 *
 * One word per page keeps the guest's work small: this machine's KVM
 * emulates guest code at a few million instructions a second.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define IMAGE_BASE      0xffff0000      /* the image, at the top of 4 GiB */
#define DEBUGCON        0xe9
#define DEBUGEXIT       0xf4
#define FWCFG_SEL       0x510
#define FWCFG_DATA      0x511
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_FILE_DIR 0x19

#define PML4            0x10000
#define PDPT            0x11000
#define PD0             0x12000         /* MAP_GIB page directories */
#define MAP_GIB         16
#define ALIAS_PDPT      0x22000         /* KIND_INTENT: the alias's 1 GiB pages */
#define STATE           0x30000         /* variables, see below */
#define ARGS            0x31000         /* the fw_cfg args file, <= 4 KiB */
#define DIRENT          0x32000         /* one fw_cfg directory entry */
#define STACK_TOP       0x9f000

/* STATE layout */
#define S_RAM_SIZE      0
#define S_PAGES         8
#define S_AP_UP         16              /* KIND_RACE: the second vCPU runs */
#define S_RACE_BASE     24              /* ... its range */
#define S_RACE_PAGES    32
#define S_RACE_N        40              /* ... round trips to make */
#define S_RACE_FAILS    48              /* ... hypercalls that did not return 0 */
#define S_RACE_DONE     56              /* ... it is done */
#define S_RACE_TOUCHES  64              /* passes of this vCPU over the range */
#define S_AP_JOB        72              /* what the second vCPU does: */
#define AP_JOB_RACE     0               /* ... KIND_RACE's conversions */
#define AP_JOB_FUZZ     1               /* ... KIND_FUZZ, on its half */
#define S_BENCH_WARM    80              /* KIND_BENCH: the warm-up is done */

/*
 * KIND_FUZZ: each vCPU's counters (FZ_*, 0x100 apart), and its model of
 * its half of the range: per page, the word expected at its start and
 * end (0: zero) and whether it is private, 16 bytes a page.
 */
#define FZ_CTR          0x40000
#define FZ_RNG          0               /* xorshift64 state */
#define FZ_LEFT         8               /* steps left */
#define FZ_OK           16              /* conversions that returned 0 */
#define FZ_EINVAL       24              /* bad requests that got -EINVAL */
#define FZ_BAD          32              /* results or contents not as modelled */
#define FZ_BADAT        40              /* the first such: its address */
#define FZ_DONE         48
#define FZ_MODEL        0x41000         /* 0x1000 a vCPU */
#define FZ_PAGES        256             /* pages of each vCPU's half */

/* The second vCPU (KIND_RACE): real-mode entry, stack */
#define AP_TRAMP        0x8000          /* SIPI vector 0x08 */
#define AP_STACK_TOP    0x8f000
#define APIC_ICR_LO     0xfee00300
#define APIC_SVR        0xfee000f0

#include "payload-abi.h"
#define MAX_RANGES      ((ARGS_MAX - A_RANGES) / R_SIZE)

/* ACPI memory hotplug registers (docs/specs/acpi_mem_hotplug.rst) */
#define MEMHP_BASE      0xa00
#define MEMHP_ADDR_LO   (MEMHP_BASE + 0x0)     /* write: slot selector */
#define MEMHP_ADDR_HI   (MEMHP_BASE + 0x4)
#define MEMHP_SIZE_LO   (MEMHP_BASE + 0x8)
#define MEMHP_SIZE_HI   (MEMHP_BASE + 0xc)
#define MEMHP_STATUS    (MEMHP_BASE + 0x14)
#define MEMHP_INSERT    0x2                     /* status: insert event */
#define MEMHP_REMOVE    0x4                     /* status: remove event */
#define MEMHP_EJECT     0x8                     /* control: eject */
#define EINVAL_RET      0xffffffffffffffea
#define BENCH_MARK      0xfee00000
#define BENCH_WARM      0xfee01000      /* refused too, but not a mark */

#define LOW_LIMIT       0x80000000      /* default ranges stay below 2 GiB */

        .section .text
        .code16
        .globl _start
_start:
        cli
        cld
        lgdtl %cs:(gdt_desc - IMAGE_BASE)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        /* ljmpl $0x08, $pm32 */
        .byte 0x66, 0xea
        .long pm32
        .word 0x08

        .code32
pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        movl $STACK_TOP, %esp

        /* Zero PML4 and PDPT, then link PML4[0] -> PDPT -> MAP_GIB PDs. */
        movl $PML4, %edi
        xorl %eax, %eax
        movl $(0x2000 / 4), %ecx
        rep stosl
        movl $(PDPT | 3), PML4
        movl $PDPT, %edi
        movl $(PD0 | 3), %eax
        movl $MAP_GIB, %ecx
1:      movl %eax, (%edi)
        addl $0x1000, %eax
        addl $8, %edi
        loop 1b

        /* 2 MiB pages: present, writable, PS. */
        movl $PD0, %edi
        movl $0x83, %eax
        xorl %edx, %edx
        movl $(MAP_GIB * 512), %ecx
2:      movl %eax, (%edi)
        movl %edx, 4(%edi)
        addl $0x200000, %eax
        adcl $0, %edx
        addl $8, %edi
        loop 2b

        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $PML4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx          /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax           /* PG */
        movl %eax, %cr0
        ljmp $0x18, $lm64

        .code64
lm64:
        movl $STACK_TOP, %esp
        call main
        /* not reached */
halt:   cli
        hlt
        jmp halt

/* putc: %al to the debug console */
putc:
        movw $DEBUGCON, %dx
        outb %al, %dx
        ret

/* puts: NUL-terminated string at %rsi */
puts:
        lodsb
        testb %al, %al
        jz 1f
        call putc
        jmp puts
1:      ret

/* puthex: %rax as 0x and 16 hex digits; clobbers %rcx, %rdx, %rbx */
puthex:
        movq %rax, %rbx
        movb $'0', %al
        call putc
        movb $'x', %al
        call putc
        movl $16, %ecx
1:      rolq $4, %rbx
        movl %ebx, %eax
        andl $0xf, %eax
        cmpb $10, %al
        jb 2f
        addb $('a' - '0' - 10), %al
2:      addb $'0', %al
        call putc
        loop 1b
        ret

/* putline: the string at %rsi, then %rax in hex, then a newline */
putline:
        pushq %rax
        call puts
        popq %rax
        call puthex
        movb $'\n', %al
        jmp putc

/* fwcfg_read: select key %ax, read %rcx bytes to %rdi */
fwcfg_read:
        movw $FWCFG_SEL, %dx
        outw %ax, %dx
        movw $FWCFG_DATA, %dx
        rep insb
        ret

/*
 * load_args: find "opt/gmem/args" in the fw_cfg directory and read it to
 * ARGS.  Returns %eax = 1 if found, 0 if not.
 */
load_args:
        movl $FW_CFG_FILE_DIR, %eax
        movl $ARGS, %edi                /* count, big-endian */
        movl $4, %ecx
        call fwcfg_read
        movl ARGS, %r8d
        bswapl %r8d
1:      testl %r8d, %r8d
        jz 3f
        decl %r8d
        movl $DIRENT, %edi              /* read the next entry: port keeps place */
        movl $64, %ecx
        movw $FWCFG_DATA, %dx
        rep insb
        leaq args_name(%rip), %rsi
        movl $(DIRENT + 8), %edi
        movl $args_name_len, %ecx
        repe cmpsb
        jne 1b
        movl DIRENT, %ecx               /* size, big-endian */
        bswapl %ecx
        cmpl $ARGS_MAX, %ecx
        jbe 2f
        movl $ARGS_MAX, %ecx
2:      movzwl (DIRENT + 4), %eax       /* select, big-endian */
        xchgb %al, %ah
        movl $ARGS, %edi
        call fwcfg_read
        movl $1, %eax
        ret
3:      xorl %eax, %eax
        ret

/*
 * check_range: %rdi base, %rsi end, %r9 pattern; every page's first word
 * must be (address ^ pattern).  Jumps to fail on a mismatch.
 */
check_range:
        movq %rdi, %rax
        xorq %r9, %rax
        cmpq %rax, (%rdi)
        jne fail_at
        addq $4096, %rdi
        cmpq %rsi, %rdi
        jb check_range
        ret

/* check_zero: %rdi base, %rsi end; every page's first word is zero */
check_zero:
        xorl %eax, %eax
        cmpq %rax, (%rdi)
        jne fail_at
        addq $4096, %rdi
        cmpq %rsi, %rdi
        jb check_zero
        ret

/* hypercall: %rbx gpa, %rcx pages, %rdx attributes -> %rax */
hypercall:
        movl $HC_MAP_GPA_RANGE, %eax
        vmmcall
        ret

/* hypercall_ok: the hypercall; fail unless KVM returns 0 */
hypercall_ok:
        call hypercall
        testq %rax, %rax
        jnz hypercall_failed
        ret
/* hypercall_failed: report the hypercall's result (%rax) and fail */
hypercall_failed:
        leaq msg_hc_fail(%rip), %rsi
        call putline
        jmp exit_fail

/* convert [r14, r15) with attributes %edx; fail unless KVM returns 0 */
convert:
        movq %r14, %rbx
        movq %r15, %rcx
        subq %r14, %rcx
        shrq $12, %rcx
        jmp hypercall_ok

/* convert_fresh: convert [r14, r15) with %edx; the new side reads zero */
convert_fresh:
        call convert
        movq %r14, %rdi
        movq %r15, %rsi
        jmp check_zero

/* write_check: write pattern %r9 to [r14, r15) and check it back */
write_check:
        movq %r14, %rdi
        movq %r15, %rsi
        call fill_range
        movq %r14, %rdi
        movq %r15, %rsi
        jmp check_range

/*
 * convert_chunks: convert [r14, r15) with attributes %edx, R_HSEED(%r13)
 * pages per hypercall; fail unless KVM returns 0 for each.  The loop is
 * the benchmark's (KIND_BENCH): the hypercall inline, no calls, as lean
 * as the minimal VMM's guest (bench/floor/vmm.c), so that the two guests
 * cost the same per conversion and the benchmark compares the VMMs.
 */
convert_chunks:
        movl %edx, %r10d
        movl R_HSEED(%r13), %r8d
        movq %r14, %rbx
1:      movl $HC_MAP_GPA_RANGE, %eax
        movq %r8, %rcx
        movl %r10d, %edx
        vmmcall
        testq %rax, %rax
        jnz hypercall_failed
        movq %r8, %rax
        shlq $12, %rax
        addq %rax, %rbx
        cmpq %r15, %rbx
        jb 1b
        ret

/* bench_mark: a hypercall QEMU sees and refuses, to timestamp its trace */
bench_mark:
        movl $BENCH_MARK, %ebx
/* bench_refused: the same, at %ebx */
bench_refused:
        movl $1, %ecx
        xorl %edx, %edx
        jmp hypercall

/*
 * bench_warm: before the first pass of a launch only, convert the range's
 * first chunk (R_HSEED pages, at most the range) to private and back, and
 * make one refused hypercall that is not a mark, so that the first timed
 * pass does not pay for bringing the VMM's code for these exits in (page
 * faults, on the rig's 9p root); the minimal VMM's guest does the same.
 */
bench_warm:
        cmpq $0, (STATE + S_BENCH_WARM)
        jnz 1f
        movq $1, (STATE + S_BENCH_WARM)
        pushq %r15
        movl R_HSEED(%r13), %eax
        shlq $12, %rax
        addq %r14, %rax
        cmpq %r15, %rax                 /* no further than the range */
        cmovbq %rax, %r15
        movl $MAP_GPA_ENCRYPTED, %edx
        call convert_chunks
        xorl %edx, %edx
        call convert_chunks
        popq %r15
        movl $BENCH_WARM, %ebx
        jmp bench_refused
1:      ret

/* KIND_BENCH, on [r14, r15) */
bench_range:
        cmpl $0, R_HSEED(%r13)
        jz bad_args
        call bench_warm
        movl (ARGS + A_SEED), %eax
        call make_pattern
        movq %r14, %rdi
        movq %r15, %rsi
        call fill_range
        call bench_mark
        movl $MAP_GPA_ENCRYPTED, %edx
        call convert_chunks
        call bench_mark
        movq %r14, %rdi
        movq %r15, %rsi
        call fill_range
        call bench_mark
        xorl %edx, %edx
        call convert_chunks
        call bench_mark
        jmp range_done

/*
 * KIND_RACE, on [r14, r15): start the second vCPU converting the range
 * back and forth, and write and read the range until it is done.  KVM
 * exits with KVM_EXIT_MEMORY_FAULT when a conversion changes the range
 * while it handles this vCPU's fault there; QEMU must let it run on.
 */
race_range:
        cmpl $0, R_HSEED(%r13)
        jz bad_args
        movq %r14, (STATE + S_RACE_BASE)
        movq %r15, %rax
        subq %r14, %rax
        shrq $12, %rax
        movq %rax, (STATE + S_RACE_PAGES)
        movl R_HSEED(%r13), %eax
        movq %rax, (STATE + S_RACE_N)
        xorl %eax, %eax
        movq %rax, (STATE + S_RACE_FAILS)
        movq %rax, (STATE + S_RACE_DONE)
        movq %rax, (STATE + S_RACE_TOUCHES)
        movq $AP_JOB_RACE, (STATE + S_AP_JOB)
        call start_ap
1:      movq %r14, %rdi
2:      movq %rdi, (%rdi)
        movq (%rdi), %rax
        addq $4096, %rdi
        cmpq %r15, %rdi
        jb 2b
        incq (STATE + S_RACE_TOUCHES)
        cmpq $0, (STATE + S_RACE_DONE)
        je 1b
        leaq msg_race(%rip), %rsi
        movq (STATE + S_RACE_TOUCHES), %rax
        call putline
        movq (STATE + S_RACE_FAILS), %rax
        testq %rax, %rax
        jnz hypercall_failed
        jmp guest_write

/*
 * start_ap: copy the real-mode entry below 1 MiB and wake the other vCPU
 * with INIT and a start-up IPI (all but self); wait until it runs.
 */
start_ap:
        leaq ap_tramp(%rip), %rsi
        movl $AP_TRAMP, %edi
        movl $(ap_tramp_end - ap_tramp), %ecx
        rep movsb
        movq $0, (STATE + S_AP_UP)
        movl $APIC_SVR, %edi
        movl $0x1ff, (%rdi)             /* APIC software-enabled */
        movl $APIC_ICR_LO, %edi
        movl $0xc4500, (%rdi)           /* INIT, assert, all excluding self */
        call apic_idle
        movl $(0xc4600 | (AP_TRAMP >> 12)), (%rdi)     /* start-up */
        call apic_idle
1:      pause
        cmpq $0, (STATE + S_AP_UP)
        je 1b
        ret

/* apic_idle: wait until the ICR at %rdi has sent its IPI */
apic_idle:
        pause
        testl $0x1000, (%rdi)
        jnz apic_idle
        ret

/* The other vCPU, in long mode: its job, then halt */
ap_main:
        cmpq $AP_JOB_FUZZ, (STATE + S_AP_JOB)
        je ap_fuzz
        movq $1, (STATE + S_AP_UP)
        movq (STATE + S_RACE_N), %r12
1:      movq (STATE + S_RACE_BASE), %rbx
        movq (STATE + S_RACE_PAGES), %rcx
        movl $MAP_GPA_ENCRYPTED, %edx
        call hypercall
        testq %rax, %rax
        jz 2f
        incq (STATE + S_RACE_FAILS)
2:      movq (STATE + S_RACE_BASE), %rbx
        movq (STATE + S_RACE_PAGES), %rcx
        xorl %edx, %edx
        call hypercall
        testq %rax, %rax
        jz 3f
        incq (STATE + S_RACE_FAILS)
3:      decq %r12
        jnz 1b
        movq $1, (STATE + S_RACE_DONE)
4:      cli
        hlt
        jmp 4b

/*
 * KIND_FUZZ, on [r14, r15): 2 MiB, the first half this vCPU's, the second
 * the other vCPU's.  Both make host_seed steps, then this one checks both
 * halves against the models and prints each vCPU's counts.
 */
fuzz_range:
        movq %r15, %rax
        subq %r14, %rax
        cmpq $(2 * FZ_PAGES * 4096), %rax
        jne bad_args
        cmpl $0, R_HSEED(%r13)
        jz bad_args
        pushq %r12
        pushq %r13
        movl R_HSEED(%r13), %r12d
        movl $FZ_CTR, %edi              /* both vCPUs' counters and models */
        xorl %eax, %eax
        movl $((FZ_MODEL + 0x2000 - FZ_CTR) / 8), %ecx
        rep stosq
        movl (ARGS + A_SEED), %eax
        call make_pattern
        movq %r9, (FZ_CTR + FZ_RNG)
        notq %r9
        movq %r9, (FZ_CTR + 0x100 + FZ_RNG)
        movq %r12, (FZ_CTR + FZ_LEFT)
        movq %r12, (FZ_CTR + 0x100 + FZ_LEFT)
        movq %r14, (STATE + S_RACE_BASE)
        movq $AP_JOB_FUZZ, (STATE + S_AP_JOB)
        call start_ap
        movl $FZ_CTR, %r13d
        movl $FZ_MODEL, %r15d
        call fuzz_run
1:      pause
        cmpq $0, (FZ_CTR + 0x100 + FZ_DONE)
        je 1b
        movl $FZ_CTR, %r13d             /* check both halves once more */
        movl $FZ_MODEL, %r15d
        call fuzz_check_all
        movl $(FZ_CTR + 0x100), %r13d
        movl $(FZ_MODEL + 0x1000), %r15d
        addq $(FZ_PAGES * 4096), %r14
        call fuzz_check_all
        subq $(FZ_PAGES * 4096), %r14
        movl $FZ_CTR, %r13d
        call fuzz_report
        movl $(FZ_CTR + 0x100), %r13d
        call fuzz_report
        popq %r13
        popq %r12
        movq %r14, %r15                 /* no pages of its own to count */
        movq (FZ_CTR + FZ_BAD), %rax
        orq (FZ_CTR + 0x100 + FZ_BAD), %rax
        jz range_done
        leaq msg_fuzz_bad(%rip), %rsi
        movq (FZ_CTR + FZ_BADAT), %rax
        call putline
        jmp exit_fail

/* fuzz_report: "FUZZ ok=... einval=... bad=..." for the counters at %r13 */
fuzz_report:
        leaq msg_fuzz_ok(%rip), %rsi
        call puts
        movq FZ_OK(%r13), %rax
        call puthex
        leaq msg_fuzz_einval(%rip), %rsi
        call puts
        movq FZ_EINVAL(%r13), %rax
        call puthex
        leaq msg_fuzz_bad_n(%rip), %rsi
        movq FZ_BAD(%r13), %rax
        jmp putline

/* The other vCPU's half */
ap_fuzz:
        movq $1, (STATE + S_AP_UP)
        movq (STATE + S_RACE_BASE), %r14
        addq $(FZ_PAGES * 4096), %r14
        movl $(FZ_CTR + 0x100), %r13d
        movl $(FZ_MODEL + 0x1000), %r15d
        call fuzz_run
        movq $1, FZ_DONE(%r13)
1:      cli
        hlt
        jmp 1b

/*
 * fuzz_run: FZ_LEFT(%r13) steps on the FZ_PAGES pages at %r14, modelled
 * at %r15.
 */
fuzz_run:
        call fuzz_step
        decq FZ_LEFT(%r13)
        jnz fuzz_run
        ret

/* fz_rand: the next number of the xorshift64 at %r13 -> %rax; clobbers %rdx */
fz_rand:
        movq FZ_RNG(%r13), %rax
        movq %rax, %rdx
        shlq $13, %rdx
        xorq %rdx, %rax
        movq %rax, %rdx
        shrq $7, %rdx
        xorq %rdx, %rax
        movq %rax, %rdx
        shlq $17, %rdx
        xorq %rdx, %rax
        movq %rax, FZ_RNG(%r13)
        ret

/* fz_bad: count a result or content not as modelled, at address %rdi */
fz_bad:
        cmpq $0, FZ_BAD(%r13)
        jne 1f
        movq %rdi, FZ_BADAT(%r13)
1:      incq FZ_BAD(%r13)
        ret

/*
 * fuzz_step: one random step: 4 in 8 a conversion of a random run of the
 * half (1 to 16 pages, now and then to the end of the half; private or
 * shared; with a random page-size hint), which must succeed, after which
 * the pages whose state changed must read zero; 1 in 8 a bad request,
 * which must get -EINVAL and change nothing; 2 in 8 a write of a random
 * word at the start and end of a random page; 1 in 8 a check of a random
 * page against the model.
 */
fuzz_step:
        call fz_rand
        movq %rax, %r8
        andl $7, %eax
        cmpl $4, %eax
        jb fz_convert
        je fz_invalid
        cmpl $7, %eax
        jb fz_write
        movq %r8, %r9
        shrq $8, %r9
        andl $(FZ_PAGES - 1), %r9d
        jmp fz_check_page

fz_convert:
        movq %r8, %r9
        shrq $8, %r9
        andl $(FZ_PAGES - 1), %r9d      /* r9: first page */
        movl $FZ_PAGES, %r10d
        subl %r9d, %r10d                /* r10: pages to the end of the half */
        movq %r8, %rax
        shrq $16, %rax
        testl $0x70, %eax               /* 1 in 8: all of them */
        jz 1f
        andl $15, %eax
        incl %eax
        cmpl %r10d, %eax
        jae 1f
        movl %eax, %r10d
1:      movq %r8, %r11
        shrq $24, %r11
        andl $(MAP_GPA_ENCRYPTED | 3), %r11d    /* r11: attributes */
        movq %r9, %rbx
        shlq $12, %rbx
        addq %r14, %rbx
        movq %r10, %rcx
        movq %r11, %rdx
        call hypercall
        testq %rax, %rax
        jz 2f
        movq %rbx, %rdi
        jmp fz_bad
2:      incq FZ_OK(%r13)
        xorl %eax, %eax                 /* the state asked for */
        testl $MAP_GPA_ENCRYPTED, %r11d
        setnz %al
        movq %r9, %rdi
        shlq $4, %rdi
        addq %r15, %rdi                 /* the first page's model */
3:      cmpq %rax, 8(%rdi)
        je 4f
        movq %rax, 8(%rdi)              /* changed: it reads zero */
        movq $0, (%rdi)
4:      addq $16, %rdi
        decl %r10d
        jnz 3b
        ret

fz_invalid:
        movq %r8, %r9
        shrq $8, %r9                    /* r9: random bits */
        movq %r9, %rax
        shrq $20, %rax
        andl $7, %eax
        movl $MAP_GPA_ENCRYPTED, %edx
        movl $1, %ecx
        movq %r14, %rbx
        cmpl $1, %eax
        jb 10f
        je 11f
        cmpl $3, %eax
        jb 12f
        je 13f
        cmpl $5, %eax
        jb 14f
        je 15f
        cmpl $6, %eax
        je 16f
        /* 7: far above RAM */
        movq %r9, %rbx
        btsq $40, %rbx
        andq $~0xfff, %rbx
        movq %r9, %rcx
        andl $0xff, %ecx
        incl %ecx
        jmp 19f
10:     movq %r9, %rax                  /* 0: not page-aligned */
        andl $0xfff, %eax
        orl $1, %eax
        addq %rax, %rbx
        jmp 19f
11:     xorl %ecx, %ecx                 /* 1: no pages */
        jmp 19f
12:     movq %r9, %rcx                  /* 2: so many pages they overflow */
        btsq $62, %rcx
        jmp 19f
13:     movq (STATE + S_RAM_SIZE), %rbx /* 3: across the end of RAM */
        subq $4096, %rbx
        movl $2, %ecx
        jmp 19f
14:     movl $0xfee00000, %ebx          /* 4: the local APIC, MMIO */
        jmp 19f
15:     movq %r9, %rbx                  /* 5: the hole below 4 GiB */
        andl $0xff000, %ebx
        orl $0xc0000000, %ebx
        movq %r9, %rcx
        andl $15, %ecx
        incl %ecx
        jmp 19f
16:     movq %r9, %rdx                  /* 6: unknown attribute bits */
        orq $0x20, %rdx
19:     call hypercall
        movq $EINVAL_RET, %rdx
        cmpq %rdx, %rax
        je 20f
        movq %rbx, %rdi
        jmp fz_bad
20:     incq FZ_EINVAL(%r13)
        ret

fz_write:
        movq %r8, %r9
        shrq $8, %r9
        andl $(FZ_PAGES - 1), %r9d
        call fz_rand
        orq $1, %rax                    /* never 0, which means zero */
        movq %r9, %rdi
        shlq $12, %rdi
        addq %r14, %rdi
        movq %rax, (%rdi)
        movq %rax, 4088(%rdi)
        movq %r9, %rdi
        shlq $4, %rdi
        movq %rax, (%r15, %rdi)
        ret

/* fz_check_page: page %r9 of the half against its model */
fz_check_page:
        movq %r9, %rax
        shlq $4, %rax
        movq (%r15, %rax), %rax
        movq %r9, %rdi
        shlq $12, %rdi
        addq %r14, %rdi
        cmpq %rax, (%rdi)
        jne fz_bad
        addq $4088, %rdi
        cmpq %rax, (%rdi)
        jne fz_bad
        ret

/* fuzz_check_all: every page of the half */
fuzz_check_all:
        xorl %r9d, %r9d
1:      call fz_check_page
        incl %r9d
        cmpl $FZ_PAGES, %r9d
        jb 1b
        ret

/*
 * KIND_KEEP, on [r14, r15): contents kept across conversions both ways
 * (in place); ends holding the host_seed pattern
 */
keep_range:
        movl (ARGS + A_SEED), %eax
        call make_pattern
        call write_check
        movl $MAP_GPA_ENCRYPTED, %edx
        call convert
        movq %r14, %rdi
        movq %r15, %rsi
        call check_range                /* kept on becoming private */
        movl R_HSEED(%r13), %eax
        call make_pattern
        call write_check                /* written while private */
        xorl %edx, %edx
        call convert
        movq %r14, %rdi
        movq %r15, %rsi
        call check_range                /* kept on becoming shared */
        leaq msg_kept(%rip), %rsi
        call puts
        jmp range_done

/*
 * intent_map: map [0, MAP_GIB GiB) again at the GPA bit R_HSEED(%r13)
 * (39 to 46): virtual = physical = address | bit, in 1 GiB pages from the
 * PML4 entry the bit selects.  The bit's mask -> %rax.
 */
intent_map:
        movl R_HSEED(%r13), %ecx
        cmpl $39, %ecx
        jb bad_args
        cmpl $46, %ecx
        ja bad_args
        movl $1, %eax
        shlq %cl, %rax
        movq %rax, %rdx
        shrq $39, %rdx
        movq $(ALIAS_PDPT | 3), %rsi
        movq %rsi, PML4(,%rdx,8)
        movl $ALIAS_PDPT, %edi
        movq %rax, %rsi
        orq $0x83, %rsi                 /* present, writable, 1 GiB */
        movl $MAP_GIB, %ecx
1:      movq %rsi, (%rdi)
        addq $0x40000000, %rsi
        addq $8, %rdi
        loop 1b
        ret

/*
 * KIND_INTENT, on [r14, r15): the guest's accesses say private (at the
 * alias) or shared, and QEMU converts each page the first time the guest
 * touches it the other way; no hypercall.  A private page is a new one
 * (zero) unless the memory converts in place (FLAG_IN_PLACE), where the
 * bytes stay.  An address's pattern is computed from the address the
 * guest uses: xor the bit in to compare across the alias.
 */
intent_range:
        call intent_map
        movq %rax, %rbx                 /* rbx = the bit */
        movl (ARGS + A_SEED), %eax
        call make_pattern
        call write_check                /* shared */
        orq %rbx, %r14
        orq %rbx, %r15
        movq %r14, %rdi
        movq %r15, %rsi
        testl $FLAG_IN_PLACE, (ARGS + A_FLAGS)
        jnz 1f
        call check_zero                 /* private: a new page */
        jmp 2f
1:      xorq %rbx, %r9
        call check_range                /* private: the same bytes */
2:      movl (ARGS + A_SEED), %eax
        notl %eax
        call make_pattern
        call write_check                /* written privately */
        movq %r9, %r8
        xorq %rbx, %r14
        xorq %rbx, %r15
        cmpl $KIND_INTENT_PRIVATE, R_KIND(%r13)
        je range_done                   /* left private */
        movq %r14, %rdi
        movq %r15, %rsi
        testl $FLAG_IN_PLACE, (ARGS + A_FLAGS)
        jnz 3f
        call check_zero                 /* shared: the old side was freed */
        jmp 4f
3:      movq %r8, %r9
        xorq %rbx, %r9
        call check_range                /* shared: the same bytes */
4:      leaq msg_intent(%rip), %rsi
        call puts
        jmp guest_write

/* KIND_INTENT_TOUCH: one private read at base; print what it read */
intent_touch:
        call intent_map
        movq R_BASE(%r13), %rdi
        orq %rax, %rdi
        movq (%rdi), %rax
        leaq msg_touched(%rip), %rsi
        call putline
        addl $R_SIZE, %r13d
        decl %r12d
        jmp next_range

/* KIND_HCALL: the hypercall as given; print its result and go on */
raw_hcall:
        movq R_BASE(%r13), %rbx
        movq R_LEN(%r13), %rcx
        movl R_HSEED(%r13), %edx
        call hypercall
        leaq msg_hc_raw(%rip), %rsi
        call putline
        addl $R_SIZE, %r13d
        decl %r12d
        jmp next_range

/* KIND_WAIT: until the host writes host_seed at base */
wait_host:
        leaq msg_waiting(%rip), %rsi
        call puts
        movq R_BASE(%r13), %rdi
        movl R_HSEED(%r13), %eax
1:      pause
        cmpq %rax, (%rdi)
        jne 1b
        addl $R_SIZE, %r13d
        decl %r12d
        jmp next_range

/* fill_range: %rdi base, %rsi end, %r9 pattern */
fill_range:
        movq %rdi, %rax
        xorq %r9, %rax
        movq %rax, (%rdi)
        addq $4096, %rdi
        cmpq %rsi, %rdi
        jb fill_range
        ret

/* seed in %eax -> pattern in %r9 (seed in both halves) */
make_pattern:
        movl %eax, %r9d
        shlq $32, %r9
        orq %rax, %r9
        ret

main:
        leaq msg_hello(%rip), %rsi
        call puts

        movl $FW_CFG_RAM_SIZE, %eax
        movl $(STATE + S_RAM_SIZE), %edi
        movl $8, %ecx
        call fwcfg_read
        movq $0, (STATE + S_PAGES)
        movq $0, (STATE + S_BENCH_WARM)
        leaq msg_ram(%rip), %rsi
        movq (STATE + S_RAM_SIZE), %rax
        call putline

        call load_args
        testl %eax, %eax
        jz default_args
        cmpl $ARGS_MAGIC, (ARGS + A_MAGIC)
        jne bad_args
        cmpl $MAX_RANGES, (ARGS + A_NRANGES)
        ja bad_args
        leaq msg_args(%rip), %rsi
        call puts
        jmp run_ranges

default_args:
        movl $ARGS_MAGIC, (ARGS + A_MAGIC)
        movl $0, (ARGS + A_FLAGS)
        movl $DEFAULT_SEED, (ARGS + A_SEED)
        movl $1, (ARGS + A_NRANGES)
        movq $0x100000, (ARGS + A_RANGES + R_BASE)
        movq (STATE + S_RAM_SIZE), %rax
        movl $LOW_LIMIT, %ecx
        cmpq %rcx, %rax
        jbe 1f
        movq %rcx, %rax
1:      subq $0x100000, %rax
        movq %rax, (ARGS + A_RANGES + R_LEN)
        movl $KIND_GUEST, (ARGS + A_RANGES + R_KIND)

run_ranges:
        movl (ARGS + A_NRANGES), %r12d
        movl $(ARGS + A_RANGES), %r13d
next_range:
        testl %r12d, %r12d
        jz done
        leaq msg_range(%rip), %rsi
        call puts
        movq R_BASE(%r13), %rax
        call puthex
        movb $'+', %al
        call putc
        movq R_LEN(%r13), %rax
        call puthex
        movb $'\n', %al
        call putc

        cmpl $KIND_HCALL, R_KIND(%r13)
        je raw_hcall
        cmpl $KIND_WAIT, R_KIND(%r13)
        je wait_host
        cmpl $KIND_INTENT_TOUCH, R_KIND(%r13)
        je intent_touch

        movq R_BASE(%r13), %r14
        movq R_LEN(%r13), %r15
        testq $0xfff, %r14
        jnz bad_args
        testq %r15, %r15
        jz bad_args
        addq %r14, %r15                 /* r15 = end */
        jc bad_args
        movabsq $(MAP_GIB << 30), %rax
        cmpq %rax, %r15
        ja bad_args

        cmpl $KIND_BENCH, R_KIND(%r13)
        je bench_range
        cmpl $KIND_RACE, R_KIND(%r13)
        je race_range
        cmpl $KIND_FUZZ, R_KIND(%r13)
        je fuzz_range
        cmpl $KIND_KEEP, R_KIND(%r13)
        je keep_range
        cmpl $KIND_INTENT, R_KIND(%r13)
        je intent_range
        cmpl $KIND_INTENT_PRIVATE, R_KIND(%r13)
        je intent_range
        cmpl $KIND_PRIVATE, R_KIND(%r13)
        jne 2f
        movl $MAP_GPA_ENCRYPTED, %edx   /* private pages start zeroed too */
        call convert_fresh
        jmp 1f
2:      cmpl $KIND_SHARED, R_KIND(%r13)
        jne 3f
        xorl %edx, %edx                 /* the new side starts zeroed */
        call convert_fresh
        jmp 1f
3:      cmpl $KIND_HOST, R_KIND(%r13)
        jne 1f
        movl R_HSEED(%r13), %eax
        call make_pattern
        movq %r14, %rdi
        movq %r15, %rsi
        call check_range
        leaq msg_host_ok(%rip), %rsi
        call puts

1:
guest_write:
        movl (ARGS + A_SEED), %eax
        call make_pattern
        call write_check

range_done:
        movq %r15, %rax                 /* pages += (end - base) / 4096 */
        subq %r14, %rax
        shrq $12, %rax
        addq %rax, (STATE + S_PAGES)
        addl $R_SIZE, %r13d
        decl %r12d
        jmp next_range

done:
        leaq msg_pass(%rip), %rsi
        movq (STATE + S_PAGES), %rax
        call putline
        testl $FLAG_HOTPLUG, (ARGS + A_FLAGS)
        jz 1f
        call hotplug
1:      testl $FLAG_COUNTER, (ARGS + A_FLAGS)
        jz 2f
        call counter_loop
2:      testl $FLAG_HALT, (ARGS + A_FLAGS)
        jnz halt
        xorl %eax, %eax
        movw $DEBUGEXIT, %dx
        outb %al, %dx
        jmp halt

/* memhp_wait: select slot 0 and wait for status bit %bl */
memhp_wait:
        xorl %eax, %eax
        movw $MEMHP_ADDR_LO, %dx
        outl %eax, %dx
        movw $MEMHP_STATUS, %dx
1:      pause
        inb %dx, %al
        testb %bl, %al
        jz 1b
        ret

/* Test a DIMM hot-plugged into slot 0, then eject it when asked. */
hotplug:
        leaq msg_hp_wait(%rip), %rsi
        call puts
        movb $MEMHP_INSERT, %bl
        call memhp_wait
        movb $MEMHP_INSERT, %al         /* clear the insert event */
        outb %al, %dx
        movw $MEMHP_ADDR_HI, %dx
        inl %dx, %eax
        movl %eax, %r14d
        shlq $32, %r14
        movw $MEMHP_ADDR_LO, %dx
        inl %dx, %eax
        orq %rax, %r14                  /* r14 = base */
        movw $MEMHP_SIZE_HI, %dx
        inl %dx, %eax
        movl %eax, %r15d
        shlq $32, %r15
        movw $MEMHP_SIZE_LO, %dx
        inl %dx, %eax
        orq %rax, %r15                  /* r15 = size */
        leaq msg_hp_dimm(%rip), %rsi
        call puts
        movq %r14, %rax
        call puthex
        movb $'+', %al
        call putc
        movq %r15, %rax
        call puthex
        movb $'\n', %al
        call putc

        testq %r15, %r15
        jz bad_args
        addq %r14, %r15                 /* r15 = end */
        movabsq $(MAP_GIB << 30), %rax
        cmpq %rax, %r15
        ja bad_args
        movl (ARGS + A_SEED), %eax
        call make_pattern
        call write_check
        leaq msg_hp_pass(%rip), %rsi
        movq %r15, %rax
        subq %r14, %rax
        shrq $12, %rax
        call putline

        testl $FLAG_HP_PRIVATE, (ARGS + A_FLAGS)
        jz 1f
        movq %r14, %r15                 /* [base, base + 2 MiB) private */
        addq $0x200000, %r15
        movl $MAP_GPA_ENCRYPTED, %edx
        testl $FLAG_IN_PLACE, (ARGS + A_FLAGS)
        jnz 4f
        call convert_fresh
        jmp 5f
4:      call convert                    /* in place: the pattern stays */
        movq %r14, %rdi
        movq %r15, %rsi
        call check_range
5:      call write_check
        leaq msg_hp_private(%rip), %rsi
        call puts

1:      movb $MEMHP_REMOVE, %bl
        call memhp_wait
        movb $MEMHP_REMOVE, %al         /* clear the remove event ... */
        outb %al, %dx
        movb $MEMHP_EJECT, %al          /* ... and eject, as _EJ0 does */
        outb %al, %dx
        leaq msg_hp_ejected(%rip), %rsi
        call puts
        btrl $4, (ARGS + A_FLAGS)       /* FLAG_HP_AGAIN, once */
        jnc 3f
        testl $FLAG_HP_AGAIN_PRIVATE, (ARGS + A_FLAGS)
        jnz hotplug
        andl $~FLAG_HP_PRIVATE, (ARGS + A_FLAGS)
        jmp hotplug
3:      testl $FLAG_HP_PRIVATE, (ARGS + A_FLAGS)
        jz 2f
        /* Once ejected (the platform acks the eject at once), read it */
        movq (%r14), %rax
        leaq msg_hp_gone(%rip), %rsi
        call putline
2:      ret

/*
 * FLAG_COUNTER: passes c = 1, 2, ... over the first range, which holds the
 * guest pattern: in pass c every page's first word must be (address ^
 * pattern ^ (c - 1)), and becomes (address ^ pattern ^ c).  Prints
 * "COUNTER c" every 16 passes.  A page whose word is stale, such as a
 * write that a migration lost, fails; nothing else ends it.
 */
counter_loop:
        movl (ARGS + A_SEED), %eax
        call make_pattern
        movl $(ARGS + A_RANGES), %r13d
        movq R_BASE(%r13), %r14
        movq R_LEN(%r13), %r15
        addq %r14, %r15
        xorl %r12d, %r12d               /* r12 = c - 1 */
1:      leaq 1(%r12), %r10              /* r10 = c */
        movq %r14, %rdi
2:      movq %rdi, %rax
        xorq %r9, %rax
        movq %rax, %rdx
        xorq %r12, %rax
        cmpq %rax, (%rdi)
        jne fail_at
        xorq %r10, %rdx
        movq %rdx, (%rdi)
        addq $4096, %rdi
        cmpq %r15, %rdi
        jb 2b
        movq %r10, %r12
        testq $15, %r12
        jnz 1b
        leaq msg_counter(%rip), %rsi
        movq %r12, %rax
        call putline
        jmp 1b

/* %rdi: address whose word is wrong, %rax: the word expected */
fail_at:
        movq %rdi, %r14
        movq %rax, %r15
        leaq msg_fail(%rip), %rsi
        call puts
        movq %r14, %rax
        call puthex
        leaq msg_got(%rip), %rsi
        call puts
        movq (%r14), %rax
        call puthex
        leaq msg_want(%rip), %rsi
        call puts
        movq %r15, %rax
        call puthex
        movb $'\n', %al
        call putc
        jmp exit_fail

bad_args:
        leaq msg_bad_args(%rip), %rsi
        call puts
exit_fail:
        testl $FLAG_HALT, (ARGS + A_FLAGS)
        jnz halt
        movb $1, %al
        movw $DEBUGEXIT, %dx
        outb %al, %dx
        jmp halt

args_name:
        .asciz "opt/gmem/args"
        .set args_name_len, . - args_name
msg_hello:      .asciz "gmem-payload: long mode\n"
msg_ram:        .asciz "gmem-payload: ram size "
msg_args:       .asciz "gmem-payload: args from fw_cfg\n"
msg_range:      .asciz "gmem-payload: range "
msg_host_ok:    .asciz "gmem-payload: host pattern ok\n"
msg_kept:       .asciz "gmem-payload: contents kept both ways\n"
msg_intent:     .asciz "gmem-payload: private and shared by access ok\n"
msg_touched:    .asciz "gmem-payload: private read at base gave "
msg_pass:       .asciz "RESULT PASS pages="
msg_fail:       .asciz "RESULT FAIL addr="
msg_got:        .asciz " got="
msg_want:       .asciz " want="
msg_bad_args:   .asciz "RESULT FAIL bad args\n"
msg_hc_fail:    .asciz "RESULT FAIL hypercall returned "
msg_hc_raw:     .asciz "gmem-payload: hypercall returned "
msg_hp_wait:    .asciz "gmem-payload: waiting for a DIMM in slot 0\n"
msg_hp_dimm:    .asciz "gmem-payload: DIMM "
msg_hp_pass:    .asciz "DIMM PASS pages="
msg_hp_ejected: .asciz "DIMM EJECTED\n"
msg_hp_private: .asciz "DIMM PRIVATE 2 MiB\n"
msg_hp_gone:    .asciz "DIMM GONE, its first word reads "
msg_counter:    .asciz "COUNTER "
msg_race:       .asciz "RACE DONE passes="
msg_waiting:    .asciz "WAITING for the host\n"
msg_fuzz_ok:    .asciz "FUZZ ok="
msg_fuzz_einval: .asciz " einval="
msg_fuzz_bad_n: .asciz " bad="
msg_fuzz_bad:   .asciz "RESULT FAIL fuzz: not as modelled, first at "

        /*
         * The descriptors have their accessed bit set already: the GDT is in
         * ROM, and a CPU that tries to set the bit writes to a read-only
         * memslot, which KVM cannot complete.
         */
        /*
         * The other vCPU's entry, copied to AP_TRAMP: real mode, CS =
         * AP_TRAMP >> 4, into protected mode with the GDT below.
         */
        .code16
ap_tramp:
        cli
        lgdtl %cs:(ap_gdt_desc - ap_tramp)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        /* ljmpl $0x08, $ap_pm32 */
        .byte 0x66, 0xea
        .long ap_pm32
        .word 0x08
ap_gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt
ap_tramp_end:

        /* ... then into long mode on the page tables the first one made */
        .code32
ap_pm32:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw %ax, %fs
        movw %ax, %gs
        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $PML4, %eax
        movl %eax, %cr3
        movl $0xc0000080, %ecx          /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax           /* PG */
        movl %eax, %cr0
        ljmp $0x18, $ap_lm64
        .code64
ap_lm64:
        movl $AP_STACK_TOP, %esp
        jmp ap_main

        .balign 8
gdt:
        .quad 0
        .quad 0x00cf9b000000ffff        /* 0x08: 32-bit code */
        .quad 0x00cf93000000ffff        /* 0x10: data */
        .quad 0x00af9b000000ffff        /* 0x18: 64-bit code */
gdt_end:
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt

        /*
         * The reset vector, 16 bytes below 4 GiB, where CS's base is
         * 0xffff0000.  The payload runs from there, not from the BIOS's
         * alias below 1 MiB: QEMU does not map that alias for machines
         * whose firmware lives in guest_memfd.
         */
        .org 0xfff0
        .code16
        jmp _start
        .org 0x10000
