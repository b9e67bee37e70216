#!/bin/bash
# The arm64 libraries a cross-built qemu-system-aarch64 links against and
# runs with in the arm64 rig: Debian's own arm64 packages, downloaded
# (apt-get download, never installed: installing arm64 -dev packages
# beside the host's would replace some of the host's own) and unpacked
# into one folder of the cache, ~/.cache/gmem/arm64-sysroot (one path
# whatever the versions, so that ccache finds the cross build's objects
# again after an update; its .key says what it holds).  libc comes from Debian's cross toolchain
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
"$GM_ROOT/scripts/setup-deps.sh"
# The key takes in the versions apt would download (their file names), so
# that Debian's updates of these packages make a new folder.
debs=$(apt-get download --print-uris -q "${PACKAGES[@]/%/:arm64}" 2>/dev/null |
       awk '{ print $2 }') ||
    gm_die "apt cannot find Debian's arm64 packages: run scripts/setup-deps.sh
  (it adds dpkg's arm64 architecture) and check that the registry is reachable"
key=$(gm_key "${PACKAGES[@]}" "$debs")
root=$GM_CACHE/arm64-sysroot
if [ "$(cat "$root/.key" 2>/dev/null)" = "$key" ]; then
    echo "$root"
    exit 0
fi

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
unset PKG_CONFIG_PATH
exec pkg-config "\$@"
WRAPPER
chmod +x "$root.tmp/pkg-config"
echo "$key" >"$root.tmp/.key"
mv "$root.tmp" "$root"
echo "$root"
