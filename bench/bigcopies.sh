#!/usr/bin/env bash
# bigcopies.sh — the large memcpy calls of the release gateway per keep-alive request, by caller.
#
# Runs target/release/portcullis under gdb with a breakpoint on memcpy of MIN bytes or more
# (default 512) on a one-route config in front of the load bench's upstream, sends one warm-up
# request, then N keep-alive requests on one connection (default 5), and prints each copy's size
# and calling function with how many times it was seen during those N requests. A future of
# several KiB moved between async layers shows up here first (session 9 found three 5 KiB
# copies per request this way). Needs gdb and curl; only 127.0.0.1 is used; every wait is bounded.
#
#   bench/bigcopies.sh
#   MIN=256 N=10 GW_BIN=/tmp/old/portcullis UPSTREAM_BIN=.../bench-upstream bench/bigcopies.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MIN="${MIN:-512}"
N="${N:-5}"
UP_PORT="${UP_PORT:-19481}"
GW_PORT="${GW_PORT:-19501}"
GW_BIN="${GW_BIN:-$ROOT/target/release/portcullis}"
UPSTREAM_BIN="${UPSTREAM_BIN:-/tmp/bench-up-target/release/bench-upstream}"
OUT="$(mktemp -d /tmp/portcullis-bigcopies-XXXXXX)"
for tool in gdb curl; do command -v "$tool" >/dev/null || { echo "bigcopies.sh: needs $tool" >&2; exit 1; }; done
[[ -x "$GW_BIN" && -x "$UPSTREAM_BIN" ]] || { echo "bigcopies.sh: needs $GW_BIN and $UPSTREAM_BIN" >&2; exit 1; }

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
cat >"$OUT/gw.toml" <<CFG
[server]
listen = "127.0.0.1:$GW_PORT"
workers = 1
default_class = "open"

[classes.open]
errors = "partner"

[upstreams.up]
url = "http://127.0.0.1:$UP_PORT"

[[routes]]
path = "/plain/"
class = "open"
upstream = "up"
CFG
cat >"$OUT/gdb.cmds" <<CMDS
set pagination off
set breakpoint pending on
set print frame-arguments none
handle SIGPIPE nostop noprint
break memcpy if \$rdx >= $MIN
commands
silent
printf "MEMCPY %d\n", \$rdx
bt 2
continue
end
run
CMDS
"$UPSTREAM_BIN" --addr "127.0.0.1:$UP_PORT" 2>/dev/null &
PIDS+=($!)
RUST_LOG=warn timeout 180 gdb -q -batch -x "$OUT/gdb.cmds" --args "$GW_BIN" serve --config "$OUT/gw.toml" \
  >"$OUT/gdb.out" 2>&1 &
PIDS+=($!)
url="http://127.0.0.1:$GW_PORT/plain/bigcopies"
code=""
for _ in $(seq 1 120); do
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url" || true)
  [[ "$code" == "200" ]] && break
  sleep 0.5
done
[[ "$code" == "200" ]] || { echo "bigcopies.sh: $url answered $code (gdb's log: $OUT/gdb.out)" >&2; exit 1; }
sleep 2
before=$(grep -c '^MEMCPY' "$OUT/gdb.out" || true)
args=()
for _ in $(seq 1 "$N"); do args+=(-o /dev/null "$url"); done
curl -s -m 60 "${args[@]}" || { echo "bigcopies.sh: the keep-alive requests failed" >&2; exit 1; }
sleep 3
echo "memcpy calls of $MIN bytes or more during $N keep-alive requests (count, size, caller):"
awk -v n0="$before" '/^MEMCPY/ {n++} n > n0' "$OUT/gdb.out" | grep -E '^MEMCPY|^#1' |
  sed -E 's/ \(\) at .*//; s/0x[0-9a-f]+ in //; s/::h[0-9a-f]{16}//g' | paste - - | sort | uniq -c | sort -rn | cut -c1-180
rm -rf "$OUT"
