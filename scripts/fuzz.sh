#!/usr/bin/env bash
# Runs every fuzz driver for a set time (default 60 s each) on the stable toolchain.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# With a nightly toolchain and cargo-fuzz installed, the libFuzzer targets in fuzz/ run too.
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
for target in fuzz_config_parser fuzz_source_url fuzz_api_feed_bodies; do
    NV_FUZZ_SECS="$secs" cargo test -p nextvision --bin nextvision "$target" -- --ignored --nocapture --exact "fuzz_drivers::$target"
done
if cargo +nightly fuzz --help >/dev/null 2>&1; then
    for target in redact source_url; do
        (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$secs")
    done
else
    echo "cargo-fuzz/nightly not available: libFuzzer targets in fuzz/ skipped"
fi
