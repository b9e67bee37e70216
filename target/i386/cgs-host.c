/*
 * What a host lacks for a confidential guest's KVM VM type
 *
 * tdx-guest and sev-snp-guest (and sev-guest) ask KVM for a VM type of
 * their own.  When KVM does not offer it, QEMU can only say so; the user
 * needs to know which of the CPU, the firmware and the kernel module's
 * settings is missing.  KVM's module parameters tell: kvm_intel.tdx,
 * kvm_amd.sev, sev_es and sev_snp are read-only and say whether the
 * module found the feature usable when it loaded.
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <linux/kvm.h>
#include "qemu/error-report.h"
#include "target/i386/cpu.h"
#include "target/i386/host-cpu.h"
#include "target/i386/cgs-host.h"

typedef struct CgsVmType {
    int type;
    const char *name;           /* as users know it */
    const char *vendor;         /* the CPU vendor that has it */
    const char *module;         /* KVM's module for that vendor */
    const char *param;          /* its parameter that says it is on */
    const char *cpu;            /* which CPUs have it */
    const char *firmware;       /* what the firmware must enable */
    const char *kconfig;        /* what the host kernel must be built with */
} CgsVmType;

static const CgsVmType cgs_vm_types[] = {
    {
        .type = KVM_X86_SEV_VM, .name = "SEV", .vendor = CPUID_VENDOR_AMD,
        .module = "kvm_amd", .param = "sev",
        .cpu = "an AMD EPYC CPU",
        .firmware = "SME and SEV enabled in the firmware (BIOS)",
        .kconfig = "CONFIG_KVM_AMD_SEV",
    }, {
        .type = KVM_X86_SEV_ES_VM, .name = "SEV-ES",
        .vendor = CPUID_VENDOR_AMD, .module = "kvm_amd", .param = "sev_es",
        .cpu = "an AMD EPYC CPU of the 7002 series or later",
        .firmware = "SME, SEV and SEV-ES ASIDs enabled in the firmware (BIOS)",
        .kconfig = "CONFIG_KVM_AMD_SEV",
    }, {
        .type = KVM_X86_SNP_VM, .name = "SEV-SNP",
        .vendor = CPUID_VENDOR_AMD, .module = "kvm_amd", .param = "sev_snp",
        .cpu = "an AMD EPYC CPU of the 7003 series or later",
        .firmware = "SME, SEV-SNP and the RMP table enabled in the firmware "
                    "(BIOS), and SEV firmware 1.51 or later",
        .kconfig = "CONFIG_KVM_AMD_SEV",
    }, {
        .type = KVM_X86_TDX_VM, .name = "TDX", .vendor = CPUID_VENDOR_INTEL,
        .module = "kvm_intel", .param = "tdx",
        .cpu = "an Intel Xeon CPU with TDX (4th generation Xeon Scalable "
               "or later)",
        .firmware = "TME-MK and TDX enabled in the firmware (BIOS), with the "
                    "TDX module loaded",
        .kconfig = "CONFIG_KVM_INTEL_TDX (Linux 6.16 or later)",
    },
};

/* A module parameter's value, without its newline; NULL if it has none. */
static char *cgs_module_param(const char *module, const char *param)
{
    g_autofree char *path = g_strdup_printf("/sys/module/%s/parameters/%s",
                                            module, param);
    char *value = NULL;

    if (!g_file_get_contents(path, &value, NULL, NULL)) {
        return NULL;
    }
    return g_strchomp(value);
}

void cgs_host_explain_vm_type(int type)
{
    g_autofree char *module_dir = NULL;
    g_autofree char *value = NULL;
    const CgsVmType *t = NULL;
    char vendor[CPUID_VENDOR_SZ + 1];
    int family, model, stepping;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cgs_vm_types); i++) {
        if (cgs_vm_types[i].type == type) {
            t = &cgs_vm_types[i];
        }
    }
    if (!t) {
        return;
    }

    host_cpu_vendor_fms(vendor, &family, &model, &stepping);
    if (strcmp(vendor, t->vendor)) {
        error_printf("%s needs %s; this host's CPU vendor is %s.\n",
                     t->name, t->cpu, vendor);
        return;
    }
    module_dir = g_strdup_printf("/sys/module/%s", t->module);
    if (!g_file_test(module_dir, G_FILE_TEST_IS_DIR)) {
        error_printf("%s needs KVM's %s module, which is not loaded "
                     "(modprobe %s; the kernel log says why it did not "
                     "load).\n", t->name, t->module, t->module);
        return;
    }
    value = cgs_module_param(t->module, t->param);
    if (!value) {
        error_printf("%s needs a host kernel whose %s has %s support (built "
                     "with %s); this one's %s has no '%s' parameter.\n",
                     t->name, t->module, t->name, t->kconfig, t->module,
                     t->param);
    } else if (strcmp(value, "Y") && strcmp(value, "1")) {
        error_printf("%s is off in this host's KVM (%s.%s=%s): it needs %s, "
                     "%s, and %s loaded with %s=1; the kernel log says why "
                     "%s found it unusable.\n", t->name, t->module, t->param,
                     value, t->cpu, t->firmware, t->module, t->param,
                     t->module);
    } else {
        error_printf("%s is on in this host's KVM (%s.%s=%s), but KVM does "
                     "not offer its VM type: the kernel is older than QEMU "
                     "expects.\n", t->name, t->module, t->param, value);
    }
}
