#!/usr/bin/env bash
# Installs the ONNX Runtime shared library for the optional `ort` backend of the model
# detector (cargo feature `ort`, `backend = "onnxruntime"`). Never needed by the default
# build, its tests or CI.
#
# The library comes from the PyPI `onnxruntime` wheel (CPU build, x86_64 Linux), pinned by
# version and sha256 (wheel and library), fetched with `pip download --no-deps` and
# unpacked into the cache directory the backend searches:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/nextvision/onnxruntime/VERSION/libonnxruntime.so.VERSION
# Afterwards the backend finds it without configuration; ORT_DYLIB_PATH overrides it.
#
#   ./scripts/fetch-onnxruntime.sh          # fetch once, verify, print the path
#
# Needs python3 with pip (only to download and unzip; nothing is installed into Python).
set -euo pipefail

VERSION=1.32.0
WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
LIB=libonnxruntime.so.$VERSION
LIB_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
SHARED=libonnxruntime_providers_shared.so
SHARED_SHA256=8ef51f6bf2c621fc129f625b22241fa6f9a5870bc08eaf2fdd279169ec40d09a

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "fetch-onnxruntime: only Linux x86_64 is pinned here (this is $(uname -s)-$(uname -m));" >&2
  echo "  install ONNX Runtime $VERSION yourself and set ORT_DYLIB_PATH to its libonnxruntime" >&2
  exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/nextvision/onnxruntime/$VERSION"
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$cache/$LIB" ] && [ "$(sha "$cache/$LIB")" = "$LIB_SHA256" ] \
  && [ -f "$cache/$SHARED" ] && [ "$(sha "$cache/$SHARED")" = "$SHARED_SHA256" ]; then
  echo "$cache/$LIB"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The wheel is chosen by explicit tags, not by this machine's Python: the library inside is
# the same for every CPython tag.
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  "onnxruntime==$VERSION" -d "$tmp" >&2
if [ ! -f "$tmp/$WHEEL" ]; then
  echo "fetch-onnxruntime: pip did not download $WHEEL (got: $(ls "$tmp"))" >&2
  exit 1
fi
got=$(sha "$tmp/$WHEEL")
if [ "$got" != "$WHEEL_SHA256" ]; then
  echo "fetch-onnxruntime: $WHEEL has sha256 $got, expected $WHEEL_SHA256" >&2
  exit 1
fi
python3 - "$tmp/$WHEEL" "$tmp" "$LIB" "$SHARED" <<'EOF'
import sys, zipfile
wheel, out, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(f"onnxruntime/capi/{name}"))
EOF
for pair in "$LIB:$LIB_SHA256" "$SHARED:$SHARED_SHA256"; do
  f=${pair%%:*}
  want=${pair#*:}
  got=$(sha "$tmp/$f")
  if [ "$got" != "$want" ]; then
    echo "fetch-onnxruntime: $f inside $WHEEL has sha256 $got, expected $want" >&2
    exit 1
  fi
done
mkdir -p "$cache"
chmod 755 "$tmp/$LIB" "$tmp/$SHARED"
mv "$tmp/$LIB" "$tmp/$SHARED" "$cache/"
echo "$cache/$LIB"
