#!/usr/bin/env bash
# The web console's CPU cost: a 4-feed daemon's own CPU time (utime + stime from /proc)
# over SECS seconds with no page open, with the feed grid open in headless Chromium, with
# one feed page (live MJPEG) open, and with the event list (live over SSE) open. Needs a
# release build and chromium:
#   cargo build --release -p nextvision && ./scripts/bench-console.sh
# Env: BIN (default target/release/nextvision), SECS (default 60), ROUNDS (default 2).
set -euo pipefail
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/nextvision}
SECS=${SECS:-60}
ROUNDS=${ROUNDS:-2}
dir=$(mktemp -d)
trap 'kill "${browser:-}" "${daemon:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
{
  echo '[api]'
  echo 'listen = "127.0.0.1:0"'
  for i in 1 2 3 4; do
    cat <<EOF
[[feeds]]
name = "cam$i"
source = "synthetic:640x480@15"
snapshot_fps = 5.0
[[feeds.stages]]
kind = "motion-detector"
[[feeds.stages]]
kind = "tracker"
[[feeds.stages]]
kind = "zones"
zones = [{ name = "door", points = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.6], [0.1, 0.6]] }]
lines = [{ name = "gate", from = [0.75, 0.2], to = [0.75, 0.9] }]
EOF
  done
} > "$dir/nv.toml"
"$BIN" run "$dir/nv.toml" 2> "$dir/log" &
daemon=$!
base=""
for _ in $(seq 100); do
  base=$(grep -o 'API on http://[0-9.:]*' "$dir/log" | sed 's/API on //' || true)
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "$base" ] || { cat "$dir/log" >&2; exit 1; }
tck=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
measure() {
  local a b
  a=$(ticks)
  sleep "$SECS"
  b=$(ticks)
  awk -v d=$((b - a)) -v t="$tck" -v s="$SECS" -v l="$1" \
    'BEGIN { printf "%-22s %6.2f%% of one core\n", l, 100 * d / t / s }'
}
open_page() {
  chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$dir/profile" --window-size=1280,900 "$1" >/dev/null 2>&1 &
  browser=$!
  # Let the page load and its first requests settle before measuring.
  sleep 5
}
close_page() { kill "$browser"; wait "$browser" 2>/dev/null || true; browser=""; }
sleep 5
for r in $(seq "$ROUNDS"); do
  echo "round $r ($SECS s each)"
  measure "no page"
  open_page "$base/"
  measure "grid page open"
  close_page
  open_page "$base/#/feed/cam1"
  measure "feed page open"
  close_page
  open_page "$base/#/events"
  measure "event list open"
  close_page
done
