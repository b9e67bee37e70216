/*
 * memory-backend-guest-memfd: guest RAM in a KVM guest_memfd
 *
 * A guest_memfd is memory that KVM hands to the guest from the file itself
 * (KVM_MEM_GUEST_MEMFD memslots).  With mmap=on the file is created
 * mappable and shared (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
 * Linux 6.18+) and QEMU maps it as the RAM's host memory: the guest's RAM
 * lives in the guest_memfd and nowhere else.
 *
 * With mmap=off the memory is private-capable: KVM serves private pages
 * from the guest_memfd, and shared pages from a memfd that the backend
 * owns; a conversion discards the side that is dropped (QEMU's
 * RAM_GUEST_MEMFD RAM blocks and RamBlockAttributes).  Private memory needs
 * a VM type that can make memory private, such as sw-protected-guest.
 *
 * mmap=on in such a VM (a confidential guest that needs guest_memfd)
 * needs a kernel that converts guest_memfd pages in place: the one
 * guest_memfd, mapped, holds shared and private pages, and the host's
 * mapping of a private page faults (RAM_GUEST_MEMFD_MMAP and
 * RAM_GUEST_MEMFD together).
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <linux/kvm.h>
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/memfd.h"
#include "qemu/thread.h"
#include "qemu/thread-context.h"
#include "qemu/units.h"
#include "hw/boards.h"
#include "migration/blocker.h"
#include "migration/misc.h"
#include "qapi/qapi-commands-migration.h"
#include "system/confidential-guest-support.h"
#include "system/guest-memfd.h"
#include "system/hostmem.h"
#include "system/kvm.h"
#include "system/ramblock.h"
#include "system/runstate.h"

OBJECT_DECLARE_SIMPLE_TYPE(HostMemoryBackendGuestMemfd,
                           MEMORY_BACKEND_GUEST_MEMFD)

struct HostMemoryBackendGuestMemfd {
    HostMemoryBackend parent_obj;

    bool mmap;
    /* mmap=off: every migration; mmap=on: CPR, see gmem_migration_init() */
    Error *migration_blocker;
    /* mmap=on: what can only be refused once a migration starts */
    NotifierWithReturn migration_notifier;
    VMChangeStateEntry *vm_state_entry;
};

#define GMEM_SHARED_FLAGS \
    (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)

/* Do not split preallocation into pieces smaller than this. */
#define GMEM_PREALLOC_MIN_CHUNK (64 * MiB)

static bool gmem_check_host_nodes(HostMemoryBackend *backend, Error **errp)
{
    unsigned long node;

    for (node = find_first_bit(backend->host_nodes, MAX_NODES);
         node < MAX_NODES;
         node = find_next_bit(backend->host_nodes, MAX_NODES, node + 1)) {
        g_autofree char *path =
            g_strdup_printf("/sys/devices/system/node/node%lu", node);

        if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
            error_setg(errp, "%s: host-nodes: host NUMA node %lu does not "
                       "exist", TYPE_MEMORY_BACKEND_GUEST_MEMFD, node);
            error_append_hint(errp, "The host's nodes are listed in "
                              "/sys/devices/system/node/online.\n");
            return false;
        }
    }
    return true;
}

/* MemAvailable from /proc/meminfo, or 0 if it cannot be read. */
static uint64_t gmem_host_available(void)
{
    g_autofree char *meminfo = NULL;
    const char *p, *end;
    uint64_t kib;

    if (!g_file_get_contents("/proc/meminfo", &meminfo, NULL, NULL)) {
        return 0;
    }
    p = strstr(meminfo, "MemAvailable:");
    if (!p || qemu_strtou64(p + strlen("MemAvailable:"), &end, 10, &kib)) {
        return 0;
    }
    return kib * KiB;
}

/* A number in a cgroup file; false if it is missing or "max". */
static bool gmem_cgroup_read(const char *dir, const char *file, uint64_t *val)
{
    g_autofree char *path = g_build_filename(dir, file, NULL);
    g_autofree char *text = NULL;
    const char *end;

    return g_file_get_contents(path, &text, NULL, NULL) &&
           !qemu_strtou64(text, &end, 10, val) && (!*end || *end == '\n');
}

/*
 * The least room max_file - cur_file (memory.max or memory.high -
 * memory.current; cgroup v1: limit_in_bytes - usage_in_bytes) leaves in
 * cgroup dir under base and its ancestors, "/" included (in a cgroup
 * namespace, the container's own cgroup).
 */
static void gmem_cgroup_walk(const char *base, const char *dir,
                             const char *max_file, const char *cur_file,
                             uint64_t *room, char **limited,
                             const char **limit_file)
{
    g_autofree char *path = g_strdup(dir);

    for (;;) {
        g_autofree char *sys = g_build_filename(base, path, NULL);
        uint64_t max, cur;
        char *slash;

        if (gmem_cgroup_read(sys, max_file, &max) &&
            gmem_cgroup_read(sys, cur_file, &cur)) {
            uint64_t left = max > cur ? max - cur : 0;

            if (left < *room) {
                *room = left;
                g_free(*limited);
                *limited = g_strdup(path);
                *limit_file = max_file;
            }
        }
        slash = strrchr(path, '/');
        if (!slash || !path[1]) {
            break;
        }
        slash[slash == path] = '\0';     /* "/a" becomes "/" */
    }
}

uint64_t guest_memfd_cgroup_room(char **limited, const char **limit_file)
{
    g_autofree char *self = NULL;
    g_auto(GStrv) lines = NULL;
    uint64_t room = UINT64_MAX;
    int i;

    *limited = NULL;
    if (!g_file_get_contents("/proc/self/cgroup", &self, NULL, NULL)) {
        return room;
    }
    /* "hierarchy-id:controllers:path"; v2 is "0::path" */
    lines = g_strsplit(self, "\n", -1);
    for (i = 0; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit(lines[i], ":", 3);
        g_auto(GStrv) controllers = NULL;

        if (g_strv_length(f) != 3 || f[2][0] != '/') {
            continue;
        }
        if (!strcmp(f[0], "0") && !f[1][0]) {
            /*
             * Above memory.high the kernel reclaims the cgroup's other
             * pages (QEMU's), and a guest's guest_memfd page is refused
             * there on kernels that draw the line (gmem-memcg).
             */
            gmem_cgroup_walk("/sys/fs/cgroup", f[2], "memory.max",
                             "memory.current", &room, limited, limit_file);
            gmem_cgroup_walk("/sys/fs/cgroup", f[2], "memory.high",
                             "memory.current", &room, limited, limit_file);
            continue;
        }
        controllers = g_strsplit(f[1], ",", -1);
        if (g_strv_contains((const char * const *)controllers, "memory")) {
            gmem_cgroup_walk("/sys/fs/cgroup/memory", f[2],
                             "memory.limit_in_bytes", "memory.usage_in_bytes",
                             &room, limited, limit_file);
        }
    }
    return room;
}

/*
 * NULL if @want more bytes fit in QEMU's memory cgroup, else why not:
 * "QEMU's memory cgroup X allows Y more (its limit file)".
 */
static char *gmem_cgroup_shortfall(uint64_t want, const char **limit)
{
    g_autofree char *cgroup = NULL;
    g_autofree char *have = NULL;
    const char *limit_file = NULL;
    uint64_t room = guest_memfd_cgroup_room(&cgroup, &limit_file);

    if (want <= room) {
        return NULL;
    }
    if (limit) {
        *limit = limit_file;
    }
    have = size_to_str(room);
    return g_strdup_printf("QEMU's memory cgroup %s allows %s more (%s)",
                           cgroup, have, limit_file);
}

/* Everything that can be refused before a guest_memfd is created. */
static bool gmem_backend_check(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendGuestMemfd *gm = MEMORY_BACKEND_GUEST_MEMFD(backend);
    const char *type = TYPE_MEMORY_BACKEND_GUEST_MEMFD;
    size_t pagesize = qemu_real_host_page_size();
    int64_t flags;
    g_autofree char *shortfall = NULL;
    const char *limit = NULL;

    if (!kvm_enabled()) {
        error_setg(errp, "%s needs the KVM accelerator: a guest_memfd is "
                   "memory that KVM provides", type);
        error_append_hint(errp, "Start QEMU with -accel kvm.\n");
        return false;
    }
    if (!backend->size || !QEMU_IS_ALIGNED(backend->size, pagesize)) {
        error_setg(errp, "%s: size 0x%" PRIx64 " is not a non-zero multiple "
                   "of the host page size (0x%zx)", type, backend->size,
                   pagesize);
        return false;
    }
    if (!backend->share) {
        error_setg(errp, "%s: share=off is not supported: the guest's "
                   "memory is the guest_memfd's own pages", type);
        return false;
    }
    if (!backend->reserve) {
        error_setg(errp, "%s: reserve=off is not supported: a guest_memfd "
                   "reserves no swap space, so there is nothing to turn off",
                   type);
        return false;
    }
    if (!gmem_check_host_nodes(backend, errp)) {
        return false;
    }

    flags = kvm_guest_memfd_supported_flags();
    if (flags < 0) {
        error_setg(errp, "%s: this host's KVM cannot back this VM's memory "
                   "with a guest_memfd (the VM has no %s)", type,
                   kvm_guest_memfd_missing_caps());
        error_append_hint(errp, "KVM offers a guest_memfd to every VM from "
                          "Linux 6.18 on; before that, from 6.8 on, only to "
                          "x86 VMs with private memory (sw-protected-guest, "
                          "SEV-SNP, TDX).\n");
        return false;
    }

    if (kvm_guest_memfd_stop_at_memory_high() &&
        !kvm_guest_memfd_memcg_high_supported()) {
        error_setg(errp, "%s: -accel kvm,stop-at-memory-high=on, but this "
                   "host's KVM cannot refuse a guest's guest_memfd page "
                   "above memory.high (no GUEST_MEMFD_FLAG_MEMCG_HIGH: the "
                   "project's gmem-memcg kernel series adds it)", type);
        error_append_hint(errp, "Without the option, the kernel throttles "
                          "QEMU above memory.high.\n");
        return false;
    }

    if (gm->mmap) {
        if (backend->guest_memfd && !kvm_guest_memfd_in_place_supported()) {
            const char *cgs = object_get_typename(OBJECT(current_machine->cgs));

            if (kvm_guest_memfd_in_place_host_supported()) {
                /* KVM does it, but not for this VM type: SEV-SNP, TDX */
                error_setg(errp, "%s: mmap=on memory is mapped by the host "
                           "and converted in place, which this host's KVM "
                           "does, but not in the VM of the confidential "
                           "guest '%s': the hardware protects its private "
                           "pages, and KVM converts pages in place only for "
                           "software-protected VMs", type, cgs);
            } else {
                error_setg(errp, "%s: mmap=on memory is mapped by the host, "
                           "but the confidential guest '%s' needs private "
                           "memory, and this host's KVM cannot convert "
                           "guest_memfd pages between private and shared in "
                           "place (no KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES: "
                           "the project's gmem-in-place kernel series, with "
                           "kvm.gmem_in_place_conversion=1, does it for "
                           "software-protected VMs)", type, cgs);
            }
            error_append_hint(errp, "Use mmap=off.\n");
            return false;
        }
        if ((flags & GMEM_SHARED_FLAGS) != GMEM_SHARED_FLAGS) {
            error_setg(errp, "%s: mmap=on needs a guest_memfd that QEMU can "
                       "map, but this host's KVM does not offer "
                       "GUEST_MEMFD_FLAG_MMAP and GUEST_MEMFD_FLAG_INIT_SHARED "
                       "(it offers flags 0x%" PRIx64 "; Linux 6.18 or later "
                       "has them)", type, flags);
            return false;
        }
    } else {
        if (!kvm_private_memory_supported()) {
            error_setg(errp, "%s: mmap=off keeps the guest's memory private, "
                       "but this KVM VM cannot make memory private "
                       "(no KVM_MEMORY_ATTRIBUTE_PRIVATE)", type);
            error_append_hint(errp, "Use mmap=on, or a VM type with private "
                              "memory.\n");
            return false;
        }
    }

    if (backend->prealloc) {
        uint64_t avail = gmem_host_available();

        if (avail && backend->size > avail) {
            g_autofree char *want = size_to_str(backend->size);
            g_autofree char *have = size_to_str(avail);

            error_setg(errp, "%s: cannot preallocate %s: the host has %s "
                       "available", type, want, have);
            return false;
        }
    }
    /*
     * Past its memory cgroup's memory.max, the kernel kills QEMU rather
     * than fail the allocation, past memory.high it reclaims QEMU's own
     * memory: refuse to preallocate more; warn otherwise (the guest may
     * never touch all of it).
     */
    shortfall = gmem_cgroup_shortfall(backend->size, &limit);
    if (shortfall) {
        g_autofree char *want = size_to_str(backend->size);

        if (backend->prealloc) {
            error_setg(errp, "%s: cannot preallocate %s: %s", type, want,
                       shortfall);
            return false;
        }
        warn_report("%s: the guest can use %s, but %s: if the guest touches "
                    "more than that, %s", type, want, shortfall,
                    strcmp(limit, "memory.high") ? "the kernel kills QEMU" :
                    kvm_guest_memfd_stop_at_memory_high() && gm->mmap ?
                    "the VM stops until there is room" :
                    "the kernel throttles QEMU and reclaims its memory");
    }
    return true;
}

static bool gmem_migrate_capability(MigrationCapability cap)
{
    g_autoptr(MigrationCapabilityStatusList) caps =
        qmp_query_migrate_capabilities(NULL);
    MigrationCapabilityStatusList *l;

    for (l = caps; l; l = l->next) {
        if (l->value->capability == cap) {
            return l->value->state;
        }
    }
    return false;
}

/*
 * What migrating an mmap=on backend needs that QEMU's own checks do not
 * know, when a migration (or cpr-reboot) starts.
 */
static int gmem_migration_notify(NotifierWithReturn *notifier,
                                 MigrationEvent *e, Error **errp)
{
    HostMemoryBackendGuestMemfd *gm =
        container_of(notifier, HostMemoryBackendGuestMemfd,
                     migration_notifier);
    HostMemoryBackend *backend = MEMORY_BACKEND(gm);
    g_autofree char *name = NULL;

    if (e->type != MIG_EVENT_PRECOPY_SETUP ||
        !host_memory_backend_is_mapped(backend)) {
        return 0;
    }
    name = host_memory_backend_get_name(backend);
    if (gmem_migrate_capability(MIGRATION_CAPABILITY_X_IGNORE_SHARED)) {
        error_setg(errp, "%s '%s' cannot be migrated with x-ignore-shared: "
                   "a guest_memfd cannot be shared with the destination, so "
                   "the guest's RAM would not reach it",
                   TYPE_MEMORY_BACKEND_GUEST_MEMFD, name);
        return -EINVAL;
    }
    if (runstate_is_running() && !kvm_guest_memfd_dirty_log_supported()) {
        error_setg(errp, "%s '%s' cannot be migrated while the guest runs: "
                   "this host's KVM cannot log dirty pages of guest_memfd "
                   "memory (KVM_MEM_LOG_DIRTY_PAGES with "
                   "KVM_MEM_GUEST_MEMFD); stop the VM first, or use a kernel "
                   "that logs them", TYPE_MEMORY_BACKEND_GUEST_MEMFD, name);
        return -EBUSY;
    }
    return 0;
}

/*
 * A guest resumed during the migration of a stopped VM writes pages that
 * KVM does not log where it cannot log guest_memfd memory: fail the
 * migration rather than let it carry stale pages.
 */
static void gmem_vm_state_change(void *opaque, bool running, RunState state)
{
    HostMemoryBackend *backend = opaque;
    g_autofree char *name = NULL;
    Error *err = NULL;

    if (!running || !migration_is_running() ||
        !host_memory_backend_is_mapped(backend) ||
        kvm_guest_memfd_dirty_log_supported()) {
        return;
    }
    name = host_memory_backend_get_name(backend);
    error_setg(&err, "%s '%s': the guest was resumed during migration, and "
               "this host's KVM cannot log dirty pages of guest_memfd memory",
               TYPE_MEMORY_BACKEND_GUEST_MEMFD, name);
    migration_file_set_error(-EBUSY, err);
}

/*
 * With mmap=off, or mmap=on in a VM with private memory, the guest's
 * private pages are in a guest_memfd that the host cannot read: no
 * migration or snapshot of any kind.
 *
 * With mmap=on all of the memory is mapped into QEMU, which reads and
 * writes it like any shared RAM, so a stopped guest can be saved,
 * restored and migrated.  A running guest can only be migrated where KVM
 * logs the pages it dirties in guest_memfd memslots, which Linux up to 7.2
 * refuses (kvm_guest_memfd_dirty_log_supported()).  CPR would hand the
 * file itself to a new QEMU, whose VM cannot use it: a guest_memfd
 * belongs to the VM that created it.
 */
static bool gmem_migration_init(HostMemoryBackendGuestMemfd *gm,
                                const char *name, Error **errp)
{
    if (!gm->mmap || MEMORY_BACKEND(gm)->guest_memfd) {
        error_setg(&gm->migration_blocker, "%s '%s' cannot be migrated or "
                   "snapshotted: %s the guest's private pages are in a "
                   "guest_memfd that the host cannot read",
                   TYPE_MEMORY_BACKEND_GUEST_MEMFD, name,
                   gm->mmap ? "in a VM with private memory," :
                              "with mmap=off");
        return migrate_add_blocker(&gm->migration_blocker, errp) == 0;
    }

    error_setg(&gm->migration_blocker, "%s '%s' cannot be migrated with "
               "cpr-transfer or cpr-exec: a guest_memfd belongs to the KVM VM "
               "that created it, which the new QEMU does not have",
               TYPE_MEMORY_BACKEND_GUEST_MEMFD, name);
    if (migrate_add_blocker_modes(&gm->migration_blocker,
                                  BIT(MIG_MODE_CPR_TRANSFER) |
                                  BIT(MIG_MODE_CPR_EXEC), errp)) {
        return false;
    }
    migration_add_notifier_modes(&gm->migration_notifier,
                                 gmem_migration_notify,
                                 BIT(MIG_MODE_NORMAL) |
                                 BIT(MIG_MODE_CPR_REBOOT));
    gm->vm_state_entry =
        qemu_add_vm_change_state_handler(gmem_vm_state_change, gm);
    return true;
}

static bool gmem_backend_alloc(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendGuestMemfd *gm = MEMORY_BACKEND_GUEST_MEMFD(backend);
    g_autofree char *name = NULL;
    uint32_t ram_flags;
    int fd;

    if (!gmem_backend_check(backend, errp)) {
        return false;
    }

    name = host_memory_backend_get_name(backend);
    if (gm->mmap) {
        /*
         * The guest_memfd is the memory, mapped shared; in a VM with
         * private memory its pages also become private in place.
         */
        fd = kvm_create_guest_memfd(backend->size, GMEM_SHARED_FLAGS, errp);
        ram_flags = RAM_SHARED | RAM_GUEST_MEMFD_MMAP |
                    (backend->guest_memfd ? RAM_GUEST_MEMFD : 0);
    } else {
        /*
         * The memfd holds the shared pages; QEMU creates the guest_memfd
         * for the private ones (RAM_GUEST_MEMFD).
         */
        fd = qemu_memfd_create(TYPE_MEMORY_BACKEND_GUEST_MEMFD, backend->size,
                               false, 0, 0, errp);
        ram_flags = RAM_SHARED | RAM_GUEST_MEMFD;
    }
    if (fd < 0) {
        return false;
    }

    backend->aligned = true;
    if (!memory_region_init_ram_from_fd(&backend->mr, OBJECT(backend), name,
                                        backend->size, ram_flags, fd, 0,
                                        errp)) {
        close(fd);
        return false;
    }

    return gmem_migration_init(gm, name, errp);
}

typedef struct GmemPreallocJob {
    QemuThread thread;
    int fd;
    const unsigned long *shared;    /* mmap=off, at run time; else NULL */
    uint64_t first, last;           /* host pages [first, last) */
    int err;
} GmemPreallocJob;

static int gmem_fallocate(GmemPreallocJob *job, uint64_t first, uint64_t last)
{
    uint64_t page = qemu_real_host_page_size();

    /* guest_memfd only allocates with KEEP_SIZE; the size is set anyway. */
    if (fallocate(job->fd, FALLOC_FL_KEEP_SIZE, first * page,
                  (last - first) * page)) {
        return errno;
    }
    return 0;
}

static void *gmem_prealloc_thread(void *opaque)
{
    GmemPreallocJob *job = opaque;
    uint64_t i, next;

    if (!job->shared) {
        job->err = gmem_fallocate(job, job->first, job->last);
        return NULL;
    }
    /* Only the pages that are shared now: private ones are not here. */
    for (i = find_next_bit(job->shared, job->last, job->first);
         i < job->last && !job->err;
         i = find_next_bit(job->shared, job->last, next)) {
        next = find_next_zero_bit(job->shared, job->last, i);
        job->err = gmem_fallocate(job, i, next);
    }
    return NULL;
}

/*
 * qom-set prealloc=true on a running mmap=off backend: the shared pages
 * the memfd does not hold yet must fit in QEMU's memory cgroup, as at
 * creation (gmem_backend_check()).  The memfd says what it holds; a
 * guest_memfd does not (mmap=on is not checked at run time).
 */
static bool gmem_prealloc_fits(HostMemoryBackend *backend,
                               const unsigned long *shared, uint64_t pages,
                               Error **errp)
{
    uint64_t want = bitmap_count_one(shared, pages) *
                    qemu_real_host_page_size();
    g_autofree char *shortfall = NULL;
    struct stat st;

    if (!fstat(memory_region_get_fd(&backend->mr), &st)) {
        uint64_t held = (uint64_t)st.st_blocks * 512;

        want = want > held ? want - held : 0;
    }
    shortfall = gmem_cgroup_shortfall(want, NULL);
    if (shortfall) {
        g_autofree char *name = host_memory_backend_get_name(backend);
        g_autofree char *w = size_to_str(want);

        error_setg(errp, "%s '%s': cannot preallocate %s more of shared "
                   "memory: %s", TYPE_MEMORY_BACKEND_GUEST_MEMFD, name, w,
                   shortfall);
        return false;
    }
    return true;
}

/*
 * Allocate the file behind the mapping with fallocate(), in up to
 * prealloc-threads pieces at once (no more than the host has CPUs), the
 * threads created in prealloc-context if one is set: the guest_memfd with
 * mmap=on, the memfd of the shared side with mmap=off.  A backend that is
 * not mapped yet is allocated whole (all its memory starts shared); once
 * mapped, mmap=off allocates only the pages that are shared now, so that
 * no private page gets a shared copy.  Runs after the NUMA policy is bound
 * to the mapping, which guest_memfd and shmem apply to their own
 * allocations.
 */
static bool gmem_prealloc(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendGuestMemfd *gm = MEMORY_BACKEND_GUEST_MEMFD(backend);
    RAMBlock *rb = backend->mr.ram_block;
    uint64_t page = qemu_real_host_page_size();
    uint64_t pages = backend->size / page;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t nthreads = MAX(1, MIN(backend->prealloc_threads,
                                   backend->size / GMEM_PREALLOC_MIN_CHUNK));
    const unsigned long *shared = NULL;
    g_autofree GmemPreallocJob *jobs = NULL;
    uint64_t i, chunk, started = 0;
    int err = 0;

    if (cpus > 0) {
        nthreads = MIN(nthreads, cpus);
    }
    if (!gm->mmap && rb->attributes &&
        host_memory_backend_is_mapped(backend)) {
        shared = rb->attributes->bitmap;
        if (!gmem_prealloc_fits(backend, shared, pages, errp)) {
            return false;
        }
    }
    chunk = DIV_ROUND_UP(pages, nthreads);
    jobs = g_new0(GmemPreallocJob, nthreads);
    for (i = 0; i < nthreads && i * chunk < pages; i++) {
        jobs[i].fd = memory_region_get_fd(&backend->mr);
        jobs[i].shared = shared;
        jobs[i].first = i * chunk;
        jobs[i].last = MIN(pages, (i + 1) * chunk);
        if (i + 1 == nthreads || (i + 1) * chunk >= pages) {
            gmem_prealloc_thread(&jobs[i]);
        } else if (backend->prealloc_context) {
            thread_context_create_thread(backend->prealloc_context,
                                         &jobs[i].thread, "gmem-prealloc",
                                         gmem_prealloc_thread, &jobs[i],
                                         QEMU_THREAD_JOINABLE);
            started = i + 1;
        } else {
            qemu_thread_create(&jobs[i].thread, "gmem-prealloc",
                               gmem_prealloc_thread, &jobs[i],
                               QEMU_THREAD_JOINABLE);
            started = i + 1;
        }
    }
    for (i = 0; i < started; i++) {
        qemu_thread_join(&jobs[i].thread);
    }
    for (i = 0; i < nthreads && !err; i++) {
        err = jobs[i].err;
    }
    if (err) {
        g_autofree char *name = host_memory_backend_get_name(backend);
        g_autofree char *want = size_to_str(backend->size);

        error_setg_errno(errp, err, "%s '%s': cannot preallocate %s of %s",
                         TYPE_MEMORY_BACKEND_GUEST_MEMFD, name, want,
                         gm->mmap ? "guest_memfd" : "shared memory");
        return false;
    }
    return true;
}

static bool gmem_backend_check_merge(HostMemoryBackend *backend, bool merge,
                                     Error **errp)
{
    if (merge) {
        error_setg(errp, "%s: merge=on is not supported: KSM merges only "
                   "anonymous private memory", TYPE_MEMORY_BACKEND_GUEST_MEMFD);
        return false;
    }
    return true;
}

static bool gmem_backend_get_mmap(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_GUEST_MEMFD(obj)->mmap;
}

static void gmem_backend_set_mmap(Object *obj, bool value, Error **errp)
{
    if (host_memory_backend_mr_inited(MEMORY_BACKEND(obj))) {
        error_setg(errp, "cannot change property 'mmap' of %s after it is "
                   "created", TYPE_MEMORY_BACKEND_GUEST_MEMFD);
        return;
    }
    MEMORY_BACKEND_GUEST_MEMFD(obj)->mmap = value;
}

/* Bytes of the backend's memory that are shared now. */
static uint64_t gmem_shared_bytes(HostMemoryBackend *backend)
{
    RAMBlock *rb = backend->mr.ram_block;

    if (!rb) {
        return 0;
    }
    if (!rb->attributes) {
        /* mmap=on in a VM without private memory: all of it, always */
        return backend->size;
    }
    return bitmap_count_one(rb->attributes->bitmap,
                            rb->attributes->bitmap_size) *
           qemu_real_host_page_size();
}

static void gmem_backend_get_shared_bytes(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    uint64_t value = gmem_shared_bytes(MEMORY_BACKEND(obj));

    visit_type_uint64(v, name, &value, errp);
}

static void gmem_backend_get_private_bytes(Object *obj, Visitor *v,
                                           const char *name, void *opaque,
                                           Error **errp)
{
    HostMemoryBackend *backend = MEMORY_BACKEND(obj);
    uint64_t value = backend->mr.ram_block ?
                     backend->size - gmem_shared_bytes(backend) : 0;

    visit_type_uint64(v, name, &value, errp);
}

static void gmem_backend_instance_init(Object *obj)
{
    HostMemoryBackend *backend = MEMORY_BACKEND(obj);

    MEMORY_BACKEND_GUEST_MEMFD(obj)->mmap = true;
    backend->share = true;
    backend->merge = false;
}

static void gmem_backend_instance_finalize(Object *obj)
{
    HostMemoryBackendGuestMemfd *gm = MEMORY_BACKEND_GUEST_MEMFD(obj);

    migrate_del_blocker(&gm->migration_blocker);
    migration_remove_notifier(&gm->migration_notifier);
    if (gm->vm_state_entry) {
        qemu_del_vm_change_state_handler(gm->vm_state_entry);
    }
}

static void gmem_backend_class_init(ObjectClass *oc, const void *data)
{
    HostMemoryBackendClass *bc = MEMORY_BACKEND_CLASS(oc);

    bc->alloc = gmem_backend_alloc;
    bc->prealloc = gmem_prealloc;
    bc->check_merge = gmem_backend_check_merge;

    object_class_property_add_bool(oc, "mmap", gmem_backend_get_mmap,
                                   gmem_backend_set_mmap);
    object_class_property_set_description(oc, "mmap",
        "Create the guest_memfd mappable and shared (Linux 6.18+) and "
        "map it as the RAM's host memory");
    object_class_property_add(oc, "shared-bytes", "uint64",
                              gmem_backend_get_shared_bytes, NULL, NULL, NULL);
    object_class_property_set_description(oc, "shared-bytes",
        "Bytes of the memory that are shared with the host now");
    object_class_property_add(oc, "private-bytes", "uint64",
                              gmem_backend_get_private_bytes, NULL, NULL, NULL);
    object_class_property_set_description(oc, "private-bytes",
        "Bytes of the memory that are private to the guest now");
}

static const TypeInfo gmem_backend_info = {
    .name = TYPE_MEMORY_BACKEND_GUEST_MEMFD,
    .parent = TYPE_MEMORY_BACKEND,
    .instance_size = sizeof(HostMemoryBackendGuestMemfd),
    .instance_init = gmem_backend_instance_init,
    .instance_finalize = gmem_backend_instance_finalize,
    .class_init = gmem_backend_class_init,
};

static void gmem_backend_register_types(void)
{
    type_register_static(&gmem_backend_info);
}

type_init(gmem_backend_register_types);
