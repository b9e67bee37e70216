# Device set for qemu-system-x86_64, chosen on purpose (configure
# --without-default-devices --with-devices-x86_64=gmem).  Linked into QEMU's
# tree as configs/devices/x86_64-softmmu/gmem.mak by scripts/qemu-tree.sh.

# Boards: q35 (pc-dimm hotplug through ACPI) and microvm.
CONFIG_Q35=y
CONFIG_MICROVM=y

# The payload's channels: isa-debugcon and isa-debug-exit.
CONFIG_ISA_DEBUG=y

# The nested rig shares the host's files by virtio-9p; a virtio console
# and serial are enough for the rest.
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_9P=y
CONFIG_VIRTIO_SERIAL=y

# Memory devices (pc-dimm comes with q35 through CONFIG_DIMM).
CONFIG_VIRTIO_MEM=y

# Confidential guests whose private memory comes from the backend.
CONFIG_SEV=y
CONFIG_TDX=y

# Needed to link: q35's ACPI code (ACPI_X86 -> ACPI_CXL) calls into
# hw/cxl, whose stubs lack cxl_fmws_get_all_sorted() when CONFIG_CXL is
# off, and --without-default-devices leaves it off (CXL depends on PXB).
CONFIG_PXB=y
CONFIG_CXL=y
CONFIG_CXL_MEM_DEVICE=y
# CXL root ports derive from pcie-root-port (also wanted for hotplug).
CONFIG_PCIE_PORT=y
