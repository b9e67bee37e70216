/*
 * Floor for conversions, with the guest's exits: a minimal VMM whose one
 * vCPU asks for the conversions with KVM_HC_MAP_GPA_RANGE hypercalls, as
 * the payload guest does in QEMU (KIND_BENCH), and which answers each
 * with the calls QEMU makes for it.  The VM is shaped like the one QEMU
 * runs the payload in, so that what differs is QEMU: a software-protected
 * VM whose RAM bytes of memory, but for the first MiB, are one guest_memfd
 * memslot at 1 MiB, the in-kernel interrupt controllers and PIT that QEMU's
 * q35 machine creates by default (kernel-irqchip=on: KVM then checks the
 * local APIC on every entry, about 13% of a 4 KiB conversion in the
 * rig), and a guest in 64-bit mode on 2 MiB pages.  First, once, the
 * guest converts the first CHUNK bytes to private and back and makes one
 * untimed OUT (a warm-up, as the payload's: the first timed pass must not
 * pay for faulting the VMM's code in).  Then each run, on the TOTAL bytes
 * at 1 GiB, the guest:
 *
 *   - writes one word in every page (shared);
 *   - converts TOTAL bytes to private, CHUNK bytes per hypercall (timed);
 *   - writes one word in every page again (private);
 *   - converts them back to shared the same way (timed).
 *
 * MODE says what answers a hypercall:
 *   two-copy   private pages in the guest_memfd, shared ones in a memfd:
 *              KVM_SET_MEMORY_ATTRIBUTES on the VM, and the side left
 *              freed (fallocate(PUNCH_HOLE); to private, MADV_DONTNEED on
 *              the memfd's mapping too), the shared side first when
 *              converting to shared, as QEMU does;
 *   in-place   one guest_memfd, mapped, created GUEST_MEMFD_FLAG_MMAP |
 *              GUEST_MEMFD_FLAG_INIT_SHARED:
 *              KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd (a kernel
 *              with kernel-patches/gmem-in-place).
 *
 * The guest marks the start and end of each timed pass with an OUT to a
 * port, and the VMM timestamps the exits, as QEMU's trace timestamps the
 * payload's marker hypercalls.  Prints one line per run: the seconds to
 * private, the seconds to shared.
 *
 *   vmm MODE RAM TOTAL CHUNK RUNS
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

#define SW_PROTECTED_VM         1
#define HC_MAP_GPA_RANGE        12
#define MAP_GPA_ENCRYPTED       0x10
#define BENCH_GPA               (1ULL << 30)    /* where the guest converts */
#define LOW_SIZE                (1ULL << 20)    /* plain memory: code, tables */
#define CODE_GPA                0x1000
#define PML4_GPA                0x10000         /* then PDPT, then the PDs */
#define MAX_RAM                 (4ULL << 30)    /* what the PDs map */

/* The in-place uAPI (kernel-patches/gmem-in-place), not in 7.2's headers */
struct memory_attributes2 {
    uint64_t offset, size, attributes, flags, error_offset, reserved[11];
};
#define SET_MEMORY_ATTRIBUTES2  _IOWR(KVMIO, 0xd2, struct memory_attributes2)

/*
 * The guest, in 64-bit mode, identity-mapped: RSI = first byte, RDI = end,
 * RBP = bytes per hypercall.  OUT 0x10/0x11 bracket the pass to private,
 * 0x12/0x13 the pass to shared; OUT 0x14 ends the warm-up; OUT 0x1f: a
 * hypercall failed (RAX).
 */
extern const unsigned char guest_code[], guest_code_end[];

/* One hypercall: RBP bytes at RBX, EDX set by attrs; on failure, to 9f */
#define GUEST_HYPERCALL(attrs)              \
    "       mov $12, %eax\n"                \
    "       mov %rbp, %rcx\n"               \
    "       shr $12, %rcx\n"                \
    attrs                                   \
    "       vmmcall\n"                      \
    "       test %rax, %rax\n"              \
    "       jnz 9f\n"
#define GUEST_TO_PRIVATE    "       mov $0x10, %edx\n"
#define GUEST_TO_SHARED     "       xor %edx, %edx\n"
/* [RSI, RDI) converted, RBP bytes per hypercall */
#define GUEST_CONVERT(attrs)                \
    "       mov %rsi, %rbx\n"               \
    "2:\n"                                  \
    GUEST_HYPERCALL(attrs)                  \
    "       add %rbp, %rbx\n"               \
    "       cmp %rdi, %rbx\n"               \
    "       jb 2b\n"
/* One word written in every page of [RSI, RDI) */
#define GUEST_WRITE                         \
    "       mov %rsi, %rbx\n"               \
    "1:     mov %rbx, (%rbx)\n"             \
    "       add $4096, %rbx\n"              \
    "       cmp %rdi, %rbx\n"               \
    "       jb 1b\n"

asm(".pushsection .rodata\n"
    "guest_code:\n"
    "       mov %rsi, %rbx\n"                /* the warm-up */
    GUEST_HYPERCALL(GUEST_TO_PRIVATE)
    GUEST_HYPERCALL(GUEST_TO_SHARED)
    "       out %al, $0x14\n"
    "0:\n"
    GUEST_WRITE
    "       out %al, $0x10\n"
    GUEST_CONVERT(GUEST_TO_PRIVATE)
    "       out %al, $0x11\n"
    GUEST_WRITE
    "       out %al, $0x12\n"
    GUEST_CONVERT(GUEST_TO_SHARED)
    "       out %al, $0x13\n"
    "       jmp 0b\n"
    "9:     out %al, $0x1f\n"
    "       hlt\n"
    "guest_code_end:\n"
    ".popsection\n");

static int vm, gmem, shared = -1;
static unsigned char *mem;
static int in_place;

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "vmm: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void punch(int fd, uint64_t off, uint64_t len)
{
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)) {
        die("fallocate(PUNCH_HOLE)");
    }
}

static void set_vm_attributes(uint64_t gpa, uint64_t size, uint64_t attrs)
{
    struct kvm_memory_attributes a = {
        .address = gpa, .size = size, .attributes = attrs,
    };

    if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a)) {
        die("KVM_SET_MEMORY_ATTRIBUTES");
    }
}

/* What QEMU does for one KVM_HC_MAP_GPA_RANGE that converts every page */
static void convert(uint64_t gpa, uint64_t size, int to_private)
{
    uint64_t off = gpa;     /* the guest_memfd's offset is the address */

    if (in_place) {
        struct memory_attributes2 a = {
            .offset = off, .size = size,
            .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
        };

        if (ioctl(gmem, SET_MEMORY_ATTRIBUTES2, &a)) {
            die("KVM_SET_MEMORY_ATTRIBUTES2");
        }
    } else if (to_private) {
        set_vm_attributes(gpa, size, KVM_MEMORY_ATTRIBUTE_PRIVATE);
        punch(shared, off, size);
        if (madvise(mem + off, size, MADV_DONTNEED)) {
            die("madvise(MADV_DONTNEED)");
        }
    } else {
        punch(shared, off, size);
        set_vm_attributes(gpa, size, 0);
        punch(gmem, off, size);
    }
}

static void set_flat_segment(struct kvm_segment *s, uint16_t sel, int type,
                             int code64)
{
    *s = (struct kvm_segment) {
        .base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
        .present = 1, .s = 1, .db = !code64, .l = code64, .g = 1,
    };
}

/* The vCPU gets all KVM supports, as QEMU's -cpu host: long mode with it */
static void set_cpuid(int kvm, int vcpu)
{
    int n = 256;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) +
                                      n * sizeof(struct kvm_cpuid_entry2));

    if (!cpuid) {
        die("calloc");
    }
    cpuid->nent = n;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid)) {
        die("KVM_GET_SUPPORTED_CPUID");
    }
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid)) {
        die("KVM_SET_CPUID2");
    }
    free(cpuid);
}

/* Identity-map the first MAX_RAM bytes with 2 MiB pages, as the payload */
static void make_page_tables(unsigned char *low)
{
    uint64_t *pml4 = (uint64_t *)(low + PML4_GPA);
    uint64_t *pdpt = pml4 + 512;
    uint64_t *pd = pdpt + 512;
    uint64_t i;

    pml4[0] = (PML4_GPA + 0x1000) | 3;                  /* present, RW */
    for (i = 0; i < MAX_RAM >> 30; i++) {
        pdpt[i] = (PML4_GPA + 0x2000 + i * 0x1000) | 3;
    }
    for (i = 0; i < MAX_RAM >> 21; i++) {
        pd[i] = (i << 21) | 0x83;                       /* and PS */
    }
}

int main(int argc, char **argv)
{
    struct kvm_create_guest_memfd gm = { 0 };
    struct kvm_userspace_memory_region2 slot = { 0 };
    struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL };
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    struct kvm_run *run;
    uint64_t ram, total, chunk;
    unsigned char *low;
    double t[4] = { 0 };
    int kvm, vcpu, runs, done = 0;
    long run_size;

    if (argc != 6 || (strcmp(argv[1], "two-copy") &&
                      strcmp(argv[1], "in-place"))) {
        fprintf(stderr, "usage: %s two-copy|in-place RAM TOTAL CHUNK RUNS\n",
                argv[0]);
        return 2;
    }
    in_place = !strcmp(argv[1], "in-place");
    ram = strtoull(argv[2], NULL, 0);
    total = strtoull(argv[3], NULL, 0);
    chunk = strtoull(argv[4], NULL, 0);
    runs = atoi(argv[5]);
    if (!chunk || total % chunk || chunk % 4096 || ram % (2 << 20) ||
        ram > MAX_RAM || BENCH_GPA + total > ram) {
        fprintf(stderr, "vmm: TOTAL must be a multiple of CHUNK, CHUNK of "
                "4 KiB, RAM of 2 MiB and at most 4 GiB, and 1 GiB + TOTAL "
                "at most RAM\n");
        return 2;
    }

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        die("/dev/kvm");
    }
    vm = ioctl(kvm, KVM_CREATE_VM, SW_PROTECTED_VM);
    if (vm < 0) {
        die("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM)");
    }
    cap.args[0] = 1ULL << HC_MAP_GPA_RANGE;
    if (ioctl(vm, KVM_ENABLE_CAP, &cap)) {
        die("KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL)");
    }

    /* Interrupt controllers and PIT in KVM, as QEMU's q35 has them */
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0)) {
        die("KVM_CREATE_IRQCHIP");
    }
    if (ioctl(vm, KVM_CREATE_PIT2, &pit)) {
        die("KVM_CREATE_PIT2");
    }

    /* The guest's code and page tables: plain memory below 1 MiB */
    low = mmap(NULL, LOW_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (low == MAP_FAILED) {
        die("mmap");
    }
    memcpy(low + CODE_GPA, guest_code, guest_code_end - guest_code);
    make_page_tables(low);
    slot.slot = 0;
    slot.memory_size = LOW_SIZE;
    slot.userspace_addr = (uintptr_t)low;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot)) {
        die("KVM_SET_USER_MEMORY_REGION2(code)");
    }

    /* The rest of RAM: one guest_memfd, its offsets the guest's addresses */
    gm.size = ram;
    gm.flags = in_place ? GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED
                        : 0;
    gmem = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gm);
    if (gmem < 0) {
        die("KVM_CREATE_GUEST_MEMFD");
    }
    if (!in_place) {
        shared = memfd_create("floor-shared", MFD_CLOEXEC);
        if (shared < 0 || ftruncate(shared, ram)) {
            die("memfd");
        }
    }
    mem = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_SHARED,
               in_place ? gmem : shared, 0);
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    slot = (struct kvm_userspace_memory_region2) {
        .slot = 1, .flags = KVM_MEM_GUEST_MEMFD,
        .guest_phys_addr = LOW_SIZE, .memory_size = ram - LOW_SIZE,
        .userspace_addr = (uintptr_t)(mem + LOW_SIZE), .guest_memfd = gmem,
        .guest_memfd_offset = LOW_SIZE,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot)) {
        die("KVM_SET_USER_MEMORY_REGION2(guest_memfd)");
    }

    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vcpu < 0 || run_size <= 0) {
        die("KVM_CREATE_VCPU");
    }
    run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) {
        die("mmap(kvm_run)");
    }
    set_cpuid(kvm, vcpu);
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs)) {
        die("KVM_GET_SREGS");
    }
    sregs.cr0 |= 0x80000001;                /* protected mode, paging */
    sregs.cr4 |= 0x20;                      /* PAE */
    sregs.efer |= 0x500;                    /* long mode: enabled, active */
    sregs.cr3 = PML4_GPA;
    set_flat_segment(&sregs.cs, 8, 11, 1);  /* code: execute/read, 64-bit */
    set_flat_segment(&sregs.ds, 16, 3, 0);  /* data: read/write, accessed */
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs)) {
        die("KVM_SET_SREGS");
    }
    regs.rip = CODE_GPA;
    regs.rflags = 2;
    regs.rsi = BENCH_GPA;
    regs.rdi = BENCH_GPA + total;
    regs.rbp = chunk;
    if (ioctl(vcpu, KVM_SET_REGS, &regs)) {
        die("KVM_SET_REGS");
    }

    while (done < runs) {
        if (ioctl(vcpu, KVM_RUN, 0) && errno != EINTR) {
            die("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_HYPERCALL:
            if (run->hypercall.nr != HC_MAP_GPA_RANGE) {
                fprintf(stderr, "vmm: hypercall %llu\n", run->hypercall.nr);
                return 1;
            }
            convert(run->hypercall.args[0], run->hypercall.args[1] * 4096,
                    !!(run->hypercall.args[2] & MAP_GPA_ENCRYPTED));
            run->hypercall.ret = 0;
            break;
        case KVM_EXIT_IO:
            if (run->io.port == 0x1f) {
                fprintf(stderr, "vmm: the guest's hypercall failed\n");
                return 1;
            }
            if (run->io.port == 0x14) {
                break;
            }
            if (run->io.port < 0x10 || run->io.port > 0x13) {
                fprintf(stderr, "vmm: OUT to port 0x%x\n", run->io.port);
                return 1;
            }
            t[run->io.port - 0x10] = now();
            if (run->io.port == 0x13) {
                printf("%.6f %.6f\n", t[1] - t[0], t[3] - t[2]);
                done++;
            }
            break;
        default:
            fprintf(stderr, "vmm: exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
    return 0;
}
