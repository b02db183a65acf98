#!/usr/bin/env bash
# The whole test suite: format check, lints, then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
