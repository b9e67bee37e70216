/*
 * What a host lacks for a confidential guest's KVM VM type
 *
 * Copyright (c) 2026 The guest-memfd project authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef I386_CGS_HOST_H
#define I386_CGS_HOST_H

/**
 * cgs_host_explain_vm_type:
 * @type: a KVM VM type (KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM, KVM_X86_SNP_VM
 *        or KVM_X86_TDX_VM) that this host's KVM does not offer
 *
 * Tell the user, as a hint after the error, what the host lacks for it:
 * the CPU, KVM's module, the module's support, or the feature being
 * enabled (firmware, module parameter).  Nothing for other types.
 */
void cgs_host_explain_vm_type(int type);

#endif
