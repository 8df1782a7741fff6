#!/usr/bin/env bash
# apt-install.sh PKG... — install Debian packages quietly and non-interactively,
# only the ones missing. Packaged daemons (nginx, haproxy, ...) are prevented
# from auto-starting: the benchmarks run them with their own config and prefix.
set -euo pipefail

missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "apt: already installed: $*"
  exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then SUDO=(sudo); fi

# policy-rc.d exit 101 = "action forbidden": invoke-rc.d will not start any
# service during this install. Removed again afterwards (only if we made it).
made_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
cleanup() { if ((made_policy)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-q -y -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# A fresh machine may have no (or old) package lists: refresh once, here,
# only because something is missing.
echo "apt: update"
"${SUDO[@]}" apt-get -qq update >/dev/null
echo "apt: installing ${missing[*]}"
log=$(mktemp)
if ! "${SUDO[@]}" apt-get "${apt_opts[@]}" install "${missing[@]}" >"$log" 2>&1; then
  tail -40 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"

# Belt and braces for systemd machines: keep packaged services disabled.
for svc in nginx haproxy; do
  if [[ " ${missing[*]} " == *" $svc"* ]] && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "apt: done"
