# Shared settings for the project's scripts.  Source it; do not run it.
GM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GM_BUILD=${GM_BUILD:-$GM_ROOT/build}
# Downloads and ccache live outside the clone so a fresh clone reuses them.
GM_CACHE=${GM_CACHE:-$HOME/.cache/gmem}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# QEMU's configure names the compiler itself, so meson never adds ccache:
# put ccache's compiler links first instead.
[ -d /usr/lib/ccache ] && export PATH=/usr/lib/ccache:$PATH
# Share the cache between clones at different paths (CI clones afresh).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$GM_ROOT}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
QEMU_SRC=$GM_BUILD/qemu-src
QEMU_BUILD=$GM_BUILD/qemu-build
QEMU_BIN=$QEMU_BUILD/qemu-system-x86_64
QEMU_ASAN_BUILD=$GM_BUILD/qemu-asan
QEMU_ASAN_BIN=$QEMU_ASAN_BUILD/qemu-system-x86_64
QEMU_NOKVM_BUILD=$GM_BUILD/qemu-nokvm
QEMU_NOKVM_BIN=$QEMU_NOKVM_BUILD/qemu-system-x86_64
QEMU_ARM64_BUILD=$GM_BUILD/qemu-arm64
QEMU_ARM64_BIN=$QEMU_ARM64_BUILD/qemu-system-aarch64
. "$GM_ROOT/configs/pins.sh"

gm_log() { echo "[$(basename "$0" .sh)] $*" >&2; }
gm_die() { echo "[$(basename "$0" .sh)] error: $*" >&2; exit 1; }

# gm_key ITEM...: the cache key of what a build script makes: a hash of
# the script itself and of each ITEM (a file's contents, or else the
# text), so that changing how a thing is built, not only its inputs,
# makes a new key.  The one place the project computes cache keys.
gm_key() {
    local item
    {
        cat "$0"
        for item in "$@"; do
            if [ -f "$item" ]; then cat "$item"; else printf '%s\n' "$item"; fi
        done
    } | sha256sum | cut -c1-16
}

# gm_built OUT KEY: whether OUT exists and was built for KEY (OUT.key).
gm_built() { [ -f "$1" ] && [ "$(cat "$1.key" 2>/dev/null)" = "$2" ]; }
