#!/usr/bin/env bash
# Tracker suite: generated scenes with exact ground truth, our tracker and Roboflow
# `trackers` 2.6.1 (SORT, ByteTrack, OC-SORT) on identical detections, all scored with
# py-motmetrics (MOTA, IDF1, ID switches) plus HOTA computed by tracker_compare.py from its
# definition (checked by its selftest first). Every scene runs with two seeds. Two virtual
# environments (cached under target/tracker-bench/): trackers
# 2.6.1 needs numpy 2, py-motmetrics needs numpy < 2.
#
#   ./scripts/tracker_bench.sh            # prints the Markdown table of BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
work="${CARGO_TARGET_DIR:-target}/tracker-bench"
mkdir -p "$work"
if [ ! -x "$work/venv-trackers/bin/python" ]; then
  python3 -m venv "$work/venv-trackers"
  "$work/venv-trackers/bin/pip" install --quiet "trackers==2.6.1"
fi
if [ ! -x "$work/venv-mm/bin/python" ]; then
  python3 -m venv "$work/venv-mm"
  "$work/venv-mm/bin/pip" install --quiet "motmetrics==1.4.0" "numpy<2" "pandas<2.3" "scipy<1.15"
fi
cargo run --release -q -p nv-stages --example tracker_suite -- --export "$work/scenes" > "$work/ours.md"
"$work/venv-trackers/bin/python" scripts/tracker_compare.py run "$work/scenes"
"$work/venv-mm/bin/python" scripts/tracker_compare.py selftest
"$work/venv-mm/bin/python" scripts/tracker_compare.py score "$work/scenes" "$work/ours.md"
