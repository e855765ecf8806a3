#!/usr/bin/env bash
# Makes the tarball the playbook installs (hangar_tarball): `npm pack` of this checkout, built
# first, unpacked with its production dependencies installed from package-lock.json and packed
# again, so the hosts need neither npm nor a registry. Usage: ansible/pack.sh [OUT_DIR]
# (default ansible/files/); prints the tarball's path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/ansible/files}" && cd "${1:-$repo/ansible/files}" && pwd)
cd "$repo"
# HANGAR_PACK_NO_BUILD=1: dist/ is already built (the test run builds before its lanes).
[ -n "${HANGAR_PACK_NO_BUILD:-}" ] || npm run --silent build >&2
[ -f dist/main/cli.js ] || { echo "pack.sh: dist/main/cli.js is missing: npm run build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tgz=$(npm pack --silent --pack-destination "$work" | tail -n1)
tar -xzf "$work/$tgz" -C "$work"
cp package-lock.json "$work/package/"
# The lockfile's versions, without the test tools; no install scripts (the native parts are prebuilt packages).
(cd "$work/package" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
version=$(node -p "require('./package.json').version")
tar -czf "$out/hangar-$version.tgz" -C "$work" package
echo "$out/hangar-$version.tgz"
