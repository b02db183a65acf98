#!/usr/bin/env bash
# The whole test suite: format check, lints, then every test in the workspace, with the
# optional Kafka sink enabled (its tests run against librdkafka's mock cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
features="nextvision/kafka"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features "$features" -- -D warnings
cargo test --workspace --features "$features"
