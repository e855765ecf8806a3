#!/usr/bin/env bash
# Installs what `npm test` and `npm run demo` need on a fresh Debian machine, and nothing
# when it is already there. Debian packages come from apt, npm packages from the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server: the queue; qemu-system-x86 + qemu-utils: microVMs; nftables, iproute2, procps:
# taps, egress and namespaces; systemd: systemd-analyze checks the unit files (it does not run);
# curl: the job-started hook (the gate) run by sim runners on this host, as in the runner image.
# chromium: the dashboard's browser tests (playwright-core drives it); prometheus: scrapes the
# control and the agent in the metrics tests.
# Guest packages (kernel, busybox) are not installed: `hangar image build` unpacks their .debs.
# ansible, ansible-lint: ansible/ is syntax-checked, linted and applied to a debootstrapped root (test/ansible/).
packages=(redis-server openssl qemu-system-x86 qemu-utils nftables iproute2 procps systemd debootstrap e2fsprogs curl chromium prometheus ansible ansible-lint ${HANGAR_EXTRA_PACKAGES:-})
need=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # policy-rc.d keeps the packaged redis-server from starting a system instance: tests and
  # the demo start their own, on a free port, and stop it afterwards.
  if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "$sudo" ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm packages from the lockfile, when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` installs the lockfile's versions. Not `npm ci`: the registry this project is
  # built against lacks some other platforms' optional binaries (e.g. msgpackr-extract for
  # darwin-arm64), so the lockfile cannot list them and `npm ci` calls it out of sync.
  echo "setup: npm install (from package-lock.json)"
  npm install --no-audit --no-fund
fi
