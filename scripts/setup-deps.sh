#!/bin/bash
# Install everything the project needs to build QEMU, the payloads and the
# kernel, from Debian's package registry only.
#
# Extra suites are added with pins that keep every package the machine
# already has coming from where it came from:
#   bookworm-backports  meson (QEMU 10.2 needs meson >= 1.5)
#   trixie              python3-pycotap (QEMU's configure wants it)
#   sid                 the QEMU source package (deb-src) and linux-source-7.2
#                       (downloaded by kernel-patches/build.sh, never installed)
# Nothing is ever installed from trixie or backports unless named here.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "setup-deps: run as root (apt-get install is needed)" >&2; exit 1; }

. "$(dirname "$0")/common.sh"
mkdir -p "$GM_CACHE"
# Done once for each version of this script (its package list).
STAMP="$GM_CACHE/deps-$(gm_key).stamp"
[ -e "$STAMP" ] && exit 0

SRC=/etc/apt/sources.list.d/gmem-extra.sources
cat > "$SRC.tmp" <<'SOURCES'
# Added by guest-memfd project setup (scripts/setup-deps.sh).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
mv "$SRC.tmp" "$SRC"

# Never take anything from trixie or backports by default.  Only the
# packages asked for by name with a release below come from there.
cat > /etc/apt/preferences.d/gmem-pins <<'PINS'
Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: *
Pin: release n=sid
Pin-Priority: 1

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
PINS

# arm64 packages for the arm64 rig (busybox-static:arm64, downloaded by
# tests/rig/build-initramfs.sh --arch arm64; nothing arm64 is installed).
dpkg --add-architecture arm64

echo "setup-deps: apt-get update" >&2
if ! apt-get update -q >/dev/null; then
    echo "setup-deps: apt-get update failed: is Debian's package registry reachable?" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT="apt-get install -y -q --no-install-recommends"

# QEMU build dependencies (KVM+TCG, fdt, slirp, virtfs) and tooling;
# gcc-multilib lets configure build QEMU's x86 option ROMs (linuxboot_dma.bin
# for -kernel), seabios gives the firmware QEMU's own qtests boot; kmod
# reads the dependencies of Debian's kernel modules for the old-kernel rigs;
# gnuplot draws the benchmark's plot.
$APT build-essential ninja-build pkg-config ccache dpkg-dev \
    python3 python3-venv python3-setuptools python3-wheel \
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev libslirp-dev \
    libcap-ng-dev libattr1-dev libnuma-dev flex bison bzip2 xz-utils file \
    busybox-static cpio gzip bc libelf-dev libssl-dev \
    gcc-multilib seabios kmod gnuplot-nox >/dev/null
# The arm64 rig: Debian's cross compiler for its kernel and selftests.
$APT gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
# Debian's libvirt, for the test that runs a domain under a real libvirtd
# (tests/e2e/test_libvirt.py; no systemd needed, the test starts the daemon).
$APT libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients >/dev/null
$APT -t bookworm-backports meson >/dev/null
$APT python3-pycotap/trixie >/dev/null

touch "$STAMP"
echo "setup-deps: done" >&2
