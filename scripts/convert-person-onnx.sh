#!/usr/bin/env bash
# Converts the catalog's person detector (TensorFlow frozen graph, `person-ssdlite`) to ONNX,
# cut where the pure-Rust route cuts it (input `Preprocessor/sub:0` [1, 300, 300, 3] NHWC,
# values v*2/255-1; outputs `Squeeze:0` box encodings [1, 1917, 4] and `concat_1:0` class
# logits [1, 1917, 2]), for the ONNX Runtime backend and the side-by-side benchmark:
#
#   ./scripts/convert-person-onnx.sh      # prints the path of the .onnx file
#   nextvision models bench person-ssdlite --onnx "$(./scripts/convert-person-onnx.sh)"
#
# Offline tooling, never needed by the default build, its tests or the pure-Rust detector:
# tf2onnx runs in a private virtual environment (pinned packages, ~1.5 GB, under the cache
# directory). tf2onnx names and orders nodes differently from run to run (even with
# PYTHONHASHSEED fixed), so the file's bytes cannot be pinned; instead every conversion is
# checked against TensorFlow itself (scripts/convert-person-onnx-check.py: both outputs on a
# fixed input, max difference <= 1e-3; measured 3.4e-5), and the accepted file's sha256 is
# kept next to it and checked on every later use:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/nextvision/models/person-ssdlite-onnx/person_ssdlite.onnx
set -euo pipefail
cd "$(dirname "$0")/.."

root="${XDG_CACHE_HOME:-$HOME/.cache}/nextvision"
out="$root/models/person-ssdlite-onnx/person_ssdlite.onnx"
venv="$root/venv-tf2onnx"
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$out" ] && [ -f "$out.sha256" ] && [ "$(sha "$out")" = "$(cat "$out.sha256")" ]; then
  echo "$out"
  exit 0
fi

graph="$root/models/person-ssdlite/frozen_inference_graph.pb"
if [ ! -f "$graph" ]; then
  cargo run --release -q -p nextvision --features model -- models fetch person-ssdlite >&2
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 \
    onnxruntime==1.32.0 protobuf==7.36.2 numpy==2.4.6 >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
converted="$tmp/person_ssdlite.onnx"
"$venv/bin/python" -m tf2onnx.convert --graphdef "$graph" \
  --inputs "Preprocessor/sub:0[1,300,300,3]" --outputs Squeeze:0,concat_1:0 \
  --opset 13 --output "$converted" >"$tmp/convert.log" 2>&1 || {
  tail -20 "$tmp/convert.log" >&2
  exit 1
}
"$venv/bin/python" scripts/convert-person-onnx-check.py "$graph" "$converted" \
  2>"$tmp/check.log" || {
  tail -5 "$tmp/check.log" >&2
  echo "convert-person-onnx: the conversion does not match TensorFlow; kept nothing" >&2
  exit 1
}
grep '^convert-person-onnx:' "$tmp/check.log" >&2 || true
mkdir -p "$(dirname "$out")"
sha "$converted" >"$converted.sha256"
mv "$converted" "$out"
mv "$converted.sha256" "$out.sha256"
echo "$out"
