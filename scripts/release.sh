#!/usr/bin/env bash
# Cuts a release of the version in Cargo.toml ([workspace.package] version, shared by every
# crate): checks that CHANGELOG.md has a section for it and that the tree is committed,
# builds the Debian package with the commit recorded (NV_BUILD_COMMIT), a source tarball
# (git archive), and SHA256SUMS over both, all in OUT_DIR.
#
# Usage: scripts/release.sh [OUT_DIR]          (default: dist/)
# Environment: NV_FEATURES (passed to scripts/package-deb.sh), NV_ALLOW_DIRTY=1 (for a dry
# run from a tree with uncommitted changes).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=${1:-dist}
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "release: no version in [workspace.package]" >&2; exit 1; }
echo "$version" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$' \
    || { echo "release: $version is not a semantic version" >&2; exit 1; }
# Every crate inherits the workspace version; a crate with its own would drift.
if grep -l '^version = "' crates/*/Cargo.toml >/dev/null 2>&1; then
    echo "release: crates with their own version: $(grep -l '^version = "' crates/*/Cargo.toml)" >&2
    exit 1
fi
grep -q "^## \[$version\]" CHANGELOG.md \
    || { echo "release: CHANGELOG.md has no section \"## [$version]\"" >&2; exit 1; }
if [ "${NV_ALLOW_DIRTY:-0}" != 1 ] && [ -n "$(git status --porcelain)" ]; then
    echo "release: uncommitted changes (NV_ALLOW_DIRTY=1 for a dry run)" >&2
    exit 1
fi
commit=$(git rev-parse --short=12 HEAD)
export NV_BUILD_COMMIT=$commit

mkdir -p "$out_dir"
deb=$(./scripts/package-deb.sh "$out_dir" | tail -n 1)
src="$out_dir/nextvision-$version.tar.gz"
git archive --format=tar.gz --prefix="nextvision-$version/" -o "$src" HEAD
(cd "$out_dir" && sha256sum "$(basename "$deb")" "$(basename "$src")" > SHA256SUMS)
echo "release $version ($commit):"
sed 's/^/  /' "$out_dir/SHA256SUMS"
