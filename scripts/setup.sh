#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  for attempt in 1 2 3; do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; then
      break
    fi
    echo "apt-get failed (attempt $attempt), retrying" >&2
    sleep 3
  done
fi
