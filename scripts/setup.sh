#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian machine (idempotent): a C
# toolchain and pkg-config, GStreamer 1.22 with the plugins the media tests use (x264enc
# is in -ugly, avdec_h264 in -libav), the RTSP server library, and the brokers the sink
# tests start on 127.0.0.1 (mosquitto, nats-server), the CA certificates model fetches
# over HTTPS verify PyPI with, and the headless browser the console tests drive through
# WebDriver (chromium, chromium-driver).
set -euo pipefail
packages=(
  pkg-config gcc g++ cmake ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools libgstrtspserver-1.0-dev
  mosquitto nats-server
  chromium chromium-driver
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  for attempt in 1 2 3; do
    # An apt install can fail once with a transient dpkg error: retry.
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; then
      break
    fi
    [ "$attempt" -eq 3 ] && { echo "apt-get install failed: ${missing[*]}" >&2; exit 1; }
    echo "apt-get failed (attempt $attempt), retrying" >&2
    sleep 5
  done
fi
