# Device set for qemu-system-aarch64, chosen on purpose (configure
# --without-default-devices --with-devices-aarch64=gmem).  Linked into
# QEMU's tree as configs/devices/aarch64-softmmu/gmem.mak by
# scripts/qemu-tree.sh.  The one board is virt: the arm64 rig runs on it
# (TCG, virtualization=on), and so do the guests on the backend in it.
CONFIG_ARM_VIRT=y

# The arm64 rig shares the host's files by virtio-9p over virtio-pci.
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_9P=y

# Needed to link, as for x86 (configs/x86_64-devices.mak): virt's ACPI
# code calls into hw/cxl, which CONFIG_CXL builds.
CONFIG_PXB=y
CONFIG_CXL=y
CONFIG_CXL_MEM_DEVICE=y
CONFIG_PCIE_PORT=y
