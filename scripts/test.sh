#!/usr/bin/env bash
# The whole test suite: format check, lints, then every test in the workspace, with the
# optional features enabled: the Kafka sink (tested against librdkafka's mock cluster) and
# the ONNX model detector (tract; its tests fetch onnx and a PP-OCR model from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
features="nextvision/kafka,nextvision/model"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features "$features" -- -D warnings
cargo test --workspace --features "$features"
