# Pinned upstream inputs.  Sourced by scripts/*.sh.
# QEMU: Debian's source package (upstream 10.2.2 with Debian's patches).
QEMU_SRC_VERSION=1:10.2.2+ds-1
QEMU_SRC_DIR=qemu-10.2.2+ds
QEMU_SHA256_DSC=f1684b3aa5ec500c3389d346c6501dee45041ea91656c6556d4da9023b7987dd
QEMU_SHA256_ORIG=be05230fe47a6937cd29f28f562932c8125f9c93c2a82c625198f7a4aa601dfb
QEMU_SHA256_DEBIAN=ddf75aceab4f8f77374f3cb34fc97b41514895aeb293ce8b2ddd5e072bb0f5c0
QEMU_FILES="qemu_10.2.2+ds-1.dsc qemu_10.2.2+ds.orig.tar.xz qemu_10.2.2+ds-1.debian.tar.xz"
