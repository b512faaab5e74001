#!/usr/bin/env bash
# Install the Debian packages sharded needs to build, test and demo, if any are missing.
# Quiet when everything is present. Non-interactive; runs apt-get update at most once.
# The distro's postgresql and redis services are not needed: our scripts start their own
# throwaway servers, so service start-up during installation is suppressed when we can.
set -euo pipefail

PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 libsqlite3-dev libhiredis-dev
  libpq-dev libjson-c-dev libcmocka-dev postgresql redis-server jq rsync psmisc sqlite3 procps
  man-db systemd iproute2 python3 python3-prometheus-client vim tar strace clang
  libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
  echo "deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep dpkg from starting services we never use (policy-rc.d exit 101 = "action forbidden").
# Only if no policy is in place already, and removed again however we exit.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" </dev/null
