#!/bin/bash
# The arm64 libraries a cross-built qemu-system-aarch64 links against and
# runs with in the arm64 rig: Debian's own arm64 packages, downloaded
# (apt-get download, never installed: installing arm64 -dev packages
# beside the host's would replace some of the host's own) and unpacked
# into one folder of the cache.  libc comes from Debian's cross toolchain
# (libc6-dev-arm64-cross, /usr/aarch64-linux-gnu), which setup-deps.sh
# installs.  Prints the folder's path.
#   scripts/arm64-sysroot.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"

# What QEMU's configure looks for in a KVM-only aarch64 build (glib, fdt
# for virt, numa for the backend's host-nodes/policy, zlib) and what
# those libraries load at run time; the -dev packages whose .pc files
# glib's name (pkg-config reads them even for a dynamic link).
PACKAGES=(
    libglib2.0-0 libglib2.0-dev libpcre2-8-0 libffi8 libmount1 libblkid1
    libselinux1 zlib1g zlib1g-dev libfdt1 libfdt-dev libnuma1 libnuma-dev
    libpcre2-dev libffi-dev libmount-dev libblkid-dev libselinux1-dev
    libsepol-dev
)
key=$(gm_key "${PACKAGES[@]}")
root=$GM_CACHE/arm64-sysroot-$key
if [ -f "$root/.done" ]; then
    echo "$root"
    exit 0
fi

"$GM_ROOT/scripts/setup-deps.sh"
gm_log "downloading Debian's arm64 ${PACKAGES[*]}"
rm -rf "$root" "$root.tmp"
mkdir -p "$root.tmp/deb"
(cd "$root.tmp/deb" && apt-get download -q "${PACKAGES[@]/%/:arm64}" >download.log 2>&1) || {
    tail -5 "$root.tmp/deb/download.log" >&2
    gm_die "apt-get download of arm64 packages failed: run scripts/setup-deps.sh
  (it adds dpkg's arm64 architecture) and check that the registry is reachable"
}
for deb in "$root.tmp"/deb/*.deb; do
    dpkg-deb -x "$deb" "$root.tmp"
done
rm -rf "$root.tmp/deb"
# The -dev packages' library links may be absolute (/lib/...): make each
# point inside this folder, so the cross linker never reaches the host's
# x86 libraries.
find "$root.tmp" -type l | while read -r link; do
    target=$(readlink "$link")
    case $target in
    /*) ln -sfn "$root$target" "$link" ;;
    esac
done
# The pkg-config that QEMU's configure runs (PKG_CONFIG): this folder's
# .pc files only, their /usr prefix put under this folder.
cat >"$root.tmp/pkg-config" <<WRAPPER
#!/bin/sh
export PKG_CONFIG_LIBDIR=$root/usr/lib/aarch64-linux-gnu/pkgconfig:$root/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
exec pkg-config "\$@"
WRAPPER
chmod +x "$root.tmp/pkg-config"
mv "$root.tmp" "$root"
touch "$root/.done"
echo "$root"
