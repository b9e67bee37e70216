#!/bin/bash
# Write the hooks (patches/qemu/*.patch) back from build/qemu-src, which
# scripts/qemu-tree.sh makes a git repository: the Debian tree tagged
# "debian", then one commit per hook.  Edit a hook there as any commit
# (`git commit --fixup`, `git rebase -i debian`; a new hook is a new
# commit), then run this: every commit after "debian" becomes a hook, in
# order, named after its subject.  The next build unpacks the tree again
# from the new hooks.
#
#   scripts/qemu-hooks.sh
set -euo pipefail
. "$(dirname "$0")/common.sh"

git -C "$QEMU_SRC" rev-parse -q --verify debian >/dev/null 2>&1 ||
    gm_die "$QEMU_SRC has no tag \"debian\": run scripts/qemu-tree.sh first"
[ -z "$(git -C "$QEMU_SRC" status --porcelain --untracked-files=no)" ] ||
    gm_die "$QEMU_SRC has changes no commit holds: commit them to the hook
  they belong to first (git status there says which files)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$QEMU_SRC" format-patch -q --no-signature --zero-commit --no-numbered --abbrev=7 \
    --filename-max-length=100 -o "$tmp" debian..HEAD
n=$(find "$tmp" -name '*.patch' | wc -l)
[ "$n" -gt 0 ] || gm_die "no commits after \"debian\" in $QEMU_SRC"
rm -f "$GM_ROOT"/patches/qemu/*.patch
mv "$tmp"/*.patch "$GM_ROOT/patches/qemu/"
gm_log "wrote $n hooks to patches/qemu/ (git status there shows what changed)"
