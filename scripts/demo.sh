#!/usr/bin/env bash
# The main job: four generated feeds through three stages, live summary, clean shutdown.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo run --release -p nextvision -- demo "$@"
