#!/usr/bin/env bash
# Runs every fuzz target for a set time (default 60 s each).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Stable drivers always run (crates/nextvision/src/fuzz_drivers.rs); the libFuzzer targets in
# fuzz/ run too when a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`) exist.
# Both call the same checks (crates/nextvision/src/fuzz.rs).
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "$0")/.."
for target in fuzz_config_parser fuzz_source_url fuzz_api_feed_bodies fuzz_zone_edit_bodies; do
    NV_FUZZ_SECS="$secs" cargo test -p nextvision --lib "$target" -- --ignored --nocapture --exact "fuzz_drivers::$target"
done
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz/nightly not available: libFuzzer targets in fuzz/ skipped"
    exit 0
fi
# Seed corpora: the example config and every broken fixture for the config parser.
corpus="${CARGO_TARGET_DIR:-target}/fuzz-corpus"
mkdir -p "$corpus/config" "$corpus/api_body" "$corpus/source_url" "$corpus/redact" "$corpus/zones_body"
cp examples/nextvision.toml crates/nextvision/tests/fixtures/broken/*.toml "$corpus/config/"
printf '%s' '{"name":"cam","source":"rtsp://admin:Zq9SecretPw@127.0.0.1:9/s","queue_depth":4,"stages":[{"kind":"blob-detector"},{"kind":"counter"}]}' > "$corpus/api_body/seed1.json"
printf '%s' 'rtsp://viewer:Pl4nt@d/S3cr:t#9x7@127.0.0.1:8554/test' > "$corpus/source_url/seed1"
cp "$corpus/source_url/seed1" "$corpus/redact/seed1"
printf '%s' '{"zones":[{"name":"bench","points":[[0.1,0.5],[0.4,0.5],[0.4,0.9]]}],"lines":[{"name":"gate","from":[0.5,1.0],"to":[0.5,0.0]}],"anchor":"center"}' > "$corpus/zones_body/seed1.json"
for target in config api_body source_url redact zones_body; do
    (cd fuzz && cargo +nightly fuzz run "$target" "../$corpus/$target" -- -max_total_time="$secs" -max_len=65536)
done
