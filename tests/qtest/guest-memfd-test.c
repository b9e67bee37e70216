/*
 * qtest for memory-backend-guest-memfd
 *
 * Without KVM (-accel qtest): the QOM type, its properties, the QAPI
 * schema and the error for a machine without KVM.  With this host's KVM:
 * the payload guest (tests/guest) runs from guest_memfd-backed RAM while
 * the test writes and reads that RAM through QEMU.
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include "qemu/bswap.h"
#include "tests/qtest/libqtest.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"

#define TYPE_GMEM "memory-backend-guest-memfd"

/* The payload's argument file, as tests/guest/payload-abi.h defines it */
#include "../guest/payload-abi.h"

typedef struct QEMU_PACKED PayloadRange {
    uint64_t base;
    uint64_t len;
    uint32_t kind;
    uint32_t host_seed;
} PayloadRange;

typedef struct QEMU_PACKED PayloadArgs {
    uint32_t magic;
    uint32_t flags;
    uint32_t seed;
    uint32_t nranges;
    PayloadRange ranges[2];
} PayloadArgs;

QEMU_BUILD_BUG_ON(offsetof(PayloadArgs, flags) != A_FLAGS);
QEMU_BUILD_BUG_ON(offsetof(PayloadArgs, seed) != A_SEED);
QEMU_BUILD_BUG_ON(offsetof(PayloadArgs, nranges) != A_NRANGES);
QEMU_BUILD_BUG_ON(offsetof(PayloadArgs, ranges) != A_RANGES);
QEMU_BUILD_BUG_ON(offsetof(PayloadRange, len) != R_LEN);
QEMU_BUILD_BUG_ON(offsetof(PayloadRange, kind) != R_KIND);
QEMU_BUILD_BUG_ON(offsetof(PayloadRange, host_seed) != R_HSEED);
QEMU_BUILD_BUG_ON(sizeof(PayloadRange) != R_SIZE);

static uint64_t pattern_word(uint64_t addr, uint32_t seed)
{
    return addr ^ (((uint64_t)seed << 32) | seed);
}

/* Why this host's KVM cannot run the guest_memfd tests, or NULL. */
static const char *kvm_gmem_unavailable(void)
{
    const uint64_t want = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
    int kvm, vm, flags;
    const char *why = NULL;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        return "no usable /dev/kvm";
    }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        close(kvm);
        return "KVM_CREATE_VM failed";
    }
    if (ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0 ||
        ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2) <= 0) {
        why = "host KVM has no guest_memfd (Linux 6.8+ needed)";
    } else {
        flags = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
        if (flags < 0 || (flags & want) != want) {
            why = "host KVM cannot mmap a shared guest_memfd (Linux 6.18+)";
        }
    }
    close(vm);
    close(kvm);
    return why;
}

static bool qlist_has_str(QList *list, const char *key, const char *value)
{
    const QListEntry *e;

    QLIST_FOREACH_ENTRY(list, e) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));
        const char *s = d ? qdict_get_try_str(d, key) : NULL;

        if (s && !strcmp(s, value)) {
            return true;
        }
    }
    return false;
}

static void test_properties(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *resp;
    QList *props;
    static const char *const expected[] = {
        "size", "mmap", "prealloc", "prealloc-threads", "policy",
        "host-nodes", "dump", "merge", "share", "reserve",
    };
    int i;

    resp = qtest_qmp(qts, "{ 'execute': 'qom-list-properties',"
                     "  'arguments': { 'typename': %s } }", TYPE_GMEM);
    props = qdict_get_qlist(resp, "return");
    g_assert(props);
    for (i = 0; i < ARRAY_SIZE(expected); i++) {
        g_assert_true(qlist_has_str(props, "name", expected[i]));
    }
    qobject_unref(resp);

    /* It is a memory backend, usable wherever one is. */
    resp = qtest_qmp(qts, "{ 'execute': 'qom-list-types',"
                     "  'arguments': { 'implements': 'memory-backend' } }");
    g_assert_true(qlist_has_str(qdict_get_qlist(resp, "return"), "name",
                                TYPE_GMEM));
    qobject_unref(resp);
    qtest_quit(qts);
}

static void test_schema(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *resp = qtest_qmp(qts, "{ 'execute': 'query-qmp-schema' }");
    QList *schema = qdict_get_qlist(resp, "return");
    const QListEntry *e;
    bool have_struct = false, have_mmap = false, have_enum = false;

    QLIST_FOREACH_ENTRY(schema, e) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));
        QList *members = qobject_to(QList, qdict_get(d, "members"));
        QList *values = qobject_to(QList, qdict_get(d, "values"));

        if (members && qlist_has_str(members, "name", "mmap")) {
            /* Only our struct has a member called mmap. */
            have_mmap = true;
            have_struct = qlist_has_str(members, "name", "size") &&
                          qlist_has_str(members, "name", "prealloc");
        }
        if (values) {
            const QListEntry *v;

            QLIST_FOREACH_ENTRY(values, v) {
                QString *s = qobject_to(QString, qlist_entry_obj(v));

                if (s && !strcmp(qstring_get_str(s), TYPE_GMEM)) {
                    have_enum = true;
                }
            }
        }
    }
    g_assert_true(have_enum);
    g_assert_true(have_mmap);
    g_assert_true(have_struct);
    qobject_unref(resp);
    qtest_quit(qts);
}

/* The error of a QMP command's response @resp contains @needle. */
static void assert_error(QDict *resp, const char *needle)
{
    QDict *err = qdict_get_qdict(resp, "error");

    g_assert(err);
    if (!strstr(qdict_get_str(err, "desc"), needle)) {
        g_test_message("error was: %s", qdict_get_str(err, "desc"));
    }
    g_assert_nonnull(strstr(qdict_get_str(err, "desc"), needle));
    qobject_unref(resp);
}

/* object-add with the properties @props (JSON) fails, naming @needle. */
static void assert_object_add_fails(QTestState *qts, const char *props,
                                    const char *needle)
{
    g_autofree char *json = g_strdup_printf("{ %s }", props);
    QDict *args = qobject_to(QDict, qobject_from_json(json, &error_abort));
    QDict *resp;

    qdict_put_str(args, "qom-type", TYPE_GMEM);
    qdict_put_str(args, "id", "bad");
    assert_error(qtest_qmp(qts, "{ 'execute': 'object-add', 'arguments': %p }",
                           args), needle);

    /* Nothing is left behind. */
    resp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments':"
                     " { 'path': '/objects/bad', 'property': 'size' } }");
    g_assert(qdict_haskey(resp, "error"));
    qobject_unref(resp);
}

static void test_no_kvm(void)
{
    QTestState *qts = qtest_init("-machine none");

    assert_object_add_fails(qts, "'size': 1048576",
                            "needs the KVM accelerator");
    qtest_quit(qts);
}

/* qom-get of the integer property @prop of @path gives @value. */
static void assert_qom_int(QTestState *qts, const char *path,
                           const char *prop, int64_t value)
{
    QDict *resp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments':"
                            " { 'path': %s, 'property': %s } }", path, prop);

    g_assert_cmpint(qdict_get_int(resp, "return"), ==, value);
    qobject_unref(resp);
}

/*
 * sw-protected-guest's intent-bit: set on the command line (the object
 * exists before the accelerator), read back, counters next to it; bad
 * values and changes once the accelerator exists are refused.
 */
static void test_swp_intent_bit(void)
{
    QTestState *qts = qtest_init("-machine none "
                                 "-object sw-protected-guest,id=swp,intent-bit=40");
    QDict *resp;

    assert_qom_int(qts, "/objects/swp", "intent-bit", 40);
    assert_qom_int(qts, "/objects/swp", "faults-to-private", 0);

    assert_error(qtest_qmp(qts, "{ 'execute': 'qom-set', 'arguments':"
                           " { 'path': '/objects/swp', 'property': 'intent-bit',"
                           "   'value': 41 } }"),
                 "can only be set when the machine is created");
    assert_qom_int(qts, "/objects/swp", "intent-bit", 40);

    assert_error(qtest_qmp(qts, "{ 'execute': 'object-add', 'arguments':"
                           " { 'qom-type': 'sw-protected-guest', 'id': 's1',"
                           "   'intent-bit': 31 } }"),
                 "a GPA bit from 32 to 63, not 31");
    assert_error(qtest_qmp(qts, "{ 'execute': 'object-add', 'arguments':"
                           " { 'qom-type': 'sw-protected-guest', 'id': 's1',"
                           "   'intent-bit': 64 } }"),
                 "a GPA bit from 32 to 63, not 64");

    /* Without it: 0, none. */
    resp = qtest_qmp(qts, "{ 'execute': 'object-add', 'arguments':"
                     " { 'qom-type': 'sw-protected-guest', 'id': 's2' } }");
    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
    assert_qom_int(qts, "/objects/s2", "intent-bit", 0);
    qtest_quit(qts);
}

/*
 * The counters of conversions (by hypercall and by access) that every
 * confidential guest on memory-backend-guest-memfd has: sw-protected-guest,
 * tdx-guest and sev-snp-guest.  Read-only; 0 before a guest ran (and for
 * an object the machine does not use).
 */
static void test_cgs_counters(void)
{
    static const char *const counters[] = {
        "conversions-to-private", "conversions-to-shared",
        "bytes-to-private", "bytes-to-shared", "conversions-rejected",
        "conversions-failed", "faults-retried", "faults-outside-ram",
        "faults-failed", "faults-to-private", "faults-to-shared",
    };
    static const char *const objects[] = {
        "sw-protected-guest,id=c0",
        "tdx-guest,id=c1",
        "sev-snp-guest,id=c2,cbitpos=51,reduced-phys-bits=1",
    };
    g_autofree char *args = g_strdup_printf("-machine none -object %s "
                                            "-object %s -object %s",
                                            objects[0], objects[1],
                                            objects[2]);
    QTestState *qts = qtest_init(args);
    int i, j;

    for (i = 0; i < ARRAY_SIZE(objects); i++) {
        g_autofree char *path = g_strdup_printf("/objects/c%d", i);

        for (j = 0; j < ARRAY_SIZE(counters); j++) {
            assert_qom_int(qts, path, counters[j], 0);
            assert_error(qtest_qmp(qts, "{ 'execute': 'qom-set', "
                                   "'arguments': { 'path': %s, "
                                   "'property': %s, 'value': 1 } }",
                                   path, counters[j]),
                         "is not writable");
        }
    }
    qtest_quit(qts);
}

static void test_kvm_bad_input(void)
{
    const char *why = kvm_gmem_unavailable();
    QTestState *qts;

    if (why) {
        g_test_skip(why);
        return;
    }
    qts = qtest_init("-accel kvm -machine none");
    assert_object_add_fails(qts, "'size': 1000", "not a non-zero multiple");
    assert_object_add_fails(qts, "'size': 1048576, 'share': false",
                            "share=off is not supported");
    assert_object_add_fails(qts, "'size': 1048576, 'merge': true",
                            "merge=on is not supported");
    assert_object_add_fails(qts, "'size': 1048576, 'reserve': false",
                            "reserve=off is not supported");
    assert_object_add_fails(qts, "'size': 1048576, 'mmap': false",
                            "cannot make memory private");
    assert_object_add_fails(qts, "'size': 1048576, 'policy': 'bind',"
                            " 'host-nodes': [ 7 ]", "node 7 does not exist");
    assert_object_add_fails(qts, "'size': 1099511627776000, 'prealloc': true",
                            "cannot preallocate");

    /* A good one still works afterwards. */
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-add', 'arguments':"
                             " { 'qom-type': '" TYPE_GMEM "', 'id': 'good',"
                             "   'size': 1048576, 'prealloc': true } }");
    qtest_qmp_assert_success(qts, "{ 'execute': 'object-del', 'arguments':"
                             " { 'id': 'good' } }");
    qtest_quit(qts);
}

/*
 * tdx-guest and sev-snp-guest on a host whose KVM lacks their VM type: QEMU
 * exits 1, says which VM type KVM lacks, and says on the next line what
 * the host lacks for it (target/i386/cgs-host.c).  A VM type this host
 * offers is not refused: that guest is left out, and said so.
 */
static void test_kvm_cgs_refusals(void)
{
    static const struct {
        const char *object, *name;
        int type;
    } guests[] = {
        { "tdx-guest,id=c0", "TDX", KVM_X86_TDX_VM },
        { "sev-snp-guest,id=c0,cbitpos=51,reduced-phys-bits=1", "SEV-SNP",
          KVM_X86_SNP_VM },
    };
    const char *why = kvm_gmem_unavailable();
    int kvm, types, i, refused = 0;

    if (why) {
        g_test_skip(why);
        return;
    }
    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    g_assert_cmpint(kvm, >=, 0);
    types = MAX(0, ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES));
    close(kvm);

    for (i = 0; i < ARRAY_SIZE(guests); i++) {
        const char *argv[] = {
            qtest_qemu_binary(NULL), "-accel", "kvm", "-nodefaults",
            "-display", "none", "-object", guests[i].object,
            "-object", TYPE_GMEM ",id=m0,size=64M,mmap=off", "-m", "64M",
            "-machine", "q35,memory-backend=m0,confidential-guest-support=c0",
            NULL
        };
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *lacks = NULL, *explains = NULL;
        g_autoptr(GError) gerr = NULL;
        const char *at;
        int status;

        if (types & (1 << guests[i].type)) {
            g_test_message("%s: this host's KVM offers its VM type",
                           guests[i].name);
            continue;
        }
        g_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT,
                              NULL, NULL, &out, &err, &status, &gerr));
        g_test_message("%s: %s", guests[i].name, err);
        g_assert(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        lacks = g_strdup_printf("vm-type %s not supported by KVM\n",
                                guests[i].name);
        at = strstr(err, lacks);
        g_assert_nonnull(at);
        explains = g_strdup_printf("%s%s ", lacks, guests[i].name);
        g_assert_true(g_str_has_prefix(at, explains));
        refused++;
    }
    if (!refused) {
        g_test_skip("this host's KVM offers both VM types");
    }
}

/* Wait until the payload's debug console shows its RESULT line. */
static char *wait_result(const char *console)
{
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (g_get_monotonic_time() < deadline) {
        g_autofree char *out = NULL;
        char *line = NULL;

        if (g_file_get_contents(console, &out, NULL, NULL)) {
            line = strstr(out, "RESULT ");
        }
        if (line && strchr(line, '\n')) {
            return g_strndup(line, strchr(line, '\n') - line);
        }
        g_usleep(20 * 1000);
    }
    return NULL;
}

/*
 * The host writes a pattern into guest RAM through QEMU before the guest
 * runs; the guest checks it, writes its own over a second range; the host
 * reads that back.  All of it is guest_memfd memory.
 */
static void test_kvm_readback(void)
{
    const char *why = kvm_gmem_unavailable();
    const char *payload = getenv("PAYLOAD");
    const uint64_t host_base = 0x200000, host_len = 0x100000;
    const uint64_t guest_base = 0x1000000, guest_len = 0x400000;
    const uint32_t host_seed = 0xc0ffee, guest_seed = 0x5eed;
    g_autofree char *dir = NULL, *args_path = NULL, *console = NULL;
    g_autofree char *result = NULL;
    g_autofree uint64_t *buf = NULL;
    PayloadArgs args = {
        .magic = ARGS_MAGIC, .flags = FLAG_HALT, .seed = guest_seed,
        .nranges = 2,
        .ranges = {
            { host_base, host_len, KIND_HOST, host_seed },
            { guest_base, guest_len, KIND_GUEST, 0 },
        },
    };
    QTestState *qts;
    QDict *resp;
    uint64_t off, word;

    if (why) {
        g_test_skip(why);
        return;
    }
    if (!payload || access(payload, R_OK)) {
        g_test_skip("PAYLOAD does not name the payload guest image");
        return;
    }

    dir = g_dir_make_tmp("gmem-qtest-XXXXXX", NULL);
    args_path = g_build_filename(dir, "args.bin", NULL);
    console = g_build_filename(dir, "console.txt", NULL);
    g_assert_true(g_file_set_contents(args_path, (char *)&args, sizeof(args),
                                      NULL));

    qts = qtest_initf("-accel kvm -cpu host -nodefaults -S"
                      " -object " TYPE_GMEM ",id=ram0,size=64M"
                      " -machine q35,memory-backend=ram0 -m 64M"
                      " -bios %s -fw_cfg name=opt/gmem/args,file=%s"
                      " -chardev file,id=dc,path=%s"
                      " -device isa-debugcon,iobase=0xe9,chardev=dc",
                      payload, args_path, console);

    /* It really is KVM, and the RAM is the guest_memfd backend. */
    resp = qtest_qmp(qts, "{ 'execute': 'query-kvm' }");
    g_assert_true(qdict_get_bool(qdict_get_qdict(resp, "return"), "enabled"));
    qobject_unref(resp);
    resp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                     " 'path': '/machine', 'property': 'memory-backend' } }");
    g_assert_cmpstr(qdict_get_str(resp, "return"), ==, "/objects/ram0");
    qobject_unref(resp);
    resp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                     " 'path': '/objects/ram0', 'property': 'type' } }");
    g_assert_cmpstr(qdict_get_str(resp, "return"), ==, TYPE_GMEM);
    qobject_unref(resp);

    buf = g_malloc0(MAX(host_len, guest_len));
    for (off = 0; off < host_len; off += 4096) {
        buf[off / 8] = cpu_to_le64(pattern_word(host_base + off, host_seed));
    }
    qtest_memwrite(qts, host_base, buf, host_len);

    qtest_qmp_assert_success(qts, "{ 'execute': 'cont' }");
    result = wait_result(console);
    g_assert_nonnull(result);
    g_assert_cmpstr(result, ==, "RESULT PASS pages=0x0000000000000500");

    qtest_memread(qts, guest_base, buf, guest_len);
    for (off = 0; off < guest_len; off += 4096) {
        word = le64_to_cpu(buf[off / 8]);
        g_assert_cmphex(word, ==, pattern_word(guest_base + off, guest_seed));
    }

    qtest_quit(qts);
    unlink(args_path);
    unlink(console);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/guest-memfd/properties", test_properties);
    qtest_add_func("/guest-memfd/schema", test_schema);
    qtest_add_func("/guest-memfd/no-kvm", test_no_kvm);
    qtest_add_func("/sw-protected-guest/intent-bit", test_swp_intent_bit);
    qtest_add_func("/confidential-guests/counters", test_cgs_counters);
    qtest_add_func("/guest-memfd/kvm/bad-input", test_kvm_bad_input);
    qtest_add_func("/guest-memfd/kvm/readback", test_kvm_readback);
    qtest_add_func("/guest-memfd/kvm/cgs-refusals", test_kvm_cgs_refusals);

    return g_test_run();
}
