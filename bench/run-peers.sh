#!/usr/bin/env bash
# run-peers.sh — measures portcullis beside nginx and HAProxy with ../shared/bench/peers.sh.
#
# Builds the release binary, makes the yardstick's keys and tokens (same layout and commands as
# peers.sh's make_keys, which then reuses them), renders bench/rows.tsv with the tokens, the API
# key and the client id, and runs peers.sh with the gateway started as GATEWAY_CMD. The gateway's
# config (bench/peers.toml) is rendered when peers.sh starts it: peers.sh substitutes {UPSTREAM}
# and {KEYS} in GATEWAY_CMD, which calls this script back with `--serve UPSTREAM KEYS`.
#
#   bench/run-peers.sh                                    # all peer rows + 6 gateway rows
#   RUNS=1 DURATION=2s WARMUP=0 ROWS="direct haproxy gw-plain" bench/run-peers.sh
#   REDIS=1 bench/run-peers.sh                            # [state] backend = "redis" on a
#       redis-server this script starts on 127.0.0.1:$REDIS_PORT [18379] (no persistence):
#       row gw-ratelimit-redis (the /ratelimit/ route, one EVALSHA per request) beside
#       haproxy-ratelimit and gw-plain
#   UNCACHED=1 bench/run-peers.sh                         # verified-token cache off ([jwt]
#       cache_entries = 0): rows gw-{hs,rs,es}256-uncached beside the HAProxy JWT rows, i.e. a
#       signature verification on every request (the yardstick's tokens are fixed, so with the
#       cache on every request after the first is a cache hit)
#
# Environment: everything peers.sh takes (RUNS, DURATION, WARMUP, ROWS, PIN, OUT, ...), plus
#   SHARED   path to the shared bench dir [../shared/bench from the repo root]
#   GW_LOG   RUST_LOG for the gateway [info,access=off]: operator level, access log off like
#            the peers (`no log` / `access_log off`)
#   SKIP_BUILD=1  use the existing target/release/portcullis
#   UNCACHED=1    see above
#   CORES=2       several cores: the gateway with 2 workers, HAProxy with nbthread 2 and nginx
#                 with 2 worker processes, nothing pinned (PIN=0): SUT, upstream and wrk share
#                 both cores. The shared yardstick is copied to $OUT/yardstick and only the
#                 copy's peer configs are changed. On a 2-core machine this shows how each
#                 proxy behaves when it may use both cores against a competing load generator,
#                 not how it scales (see BENCHMARKS.md).
#   SAME_HEADERS=1  rows direct, haproxy and gw-plain, with HAProxy's plain frontend (in a copy
#                 of the yardstick) also writing the headers a portcullis forward adds: Via both
#                 ways, a request id both ways, X-Forwarded-Proto and -Host, a W3C traceparent,
#                 Host set to the upstream. The two proxies then send the upstream the same head.
#   CHART=1       also render $OUT/chart.svg (bench/chart.py) from the run's results.csv
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BIN="$ROOT/target/release/portcullis"

render_config() {   # render_config UPSTREAM KEYS OUTFILE
  local up=$1 keys=$2 out=$3 hash cid
  hash=$(printf '%s' "$(cat "$keys/apikey.txt")" | sha256sum | cut -d' ' -f1)
  cid=$(cat "$keys/clientid.txt")
  python3 - "$HERE/peers.toml" "$out" "$up" "$keys" "$hash" "$cid" <<'PY'
import os, sys
tpl, out, up, keys, h, cid = sys.argv[1:]
s = open(tpl).read()
s = (s.replace("{UPSTREAM}", up).replace("{KEYS}", keys)
      .replace("@API_KEY_SHA256@", h).replace("@CLIENT_ID@", cid))
if os.environ.get("UNCACHED") == "1":
    s = s.replace("[jwt]\n", "[jwt]\ncache_entries = 0\n", 1)
if os.environ.get("REDIS") == "1":
    port = os.environ.get("REDIS_PORT", "18379")
    s += f'\n[state]\nbackend = "redis"\nurl = "redis://127.0.0.1:{port}/0"\nkey_prefix = "bench:"\n'
open(out, "w").write(s)
PY
}

# ---- called back by peers.sh as GATEWAY_CMD: render the config, become the gateway
if [[ "${1:-}" == "--serve" ]]; then
  up=$2 keys=$3
  cfg="$keys/../portcullis-peers.toml"
  render_config "$up" "$keys" "$cfg"
  if [[ "${CORES:-1}" == "2" ]]; then sed -i 's/^workers = 1 /workers = 2 /' "$cfg"; fi
  export RUST_LOG="${GW_LOG:-info,access=off}"
  exec "$BIN" serve --config "$cfg"
fi

SHARED="${SHARED:-$ROOT/../shared/bench}"
[[ -x "$SHARED/peers.sh" ]] || { echo "run-peers.sh: $SHARED/peers.sh not found (set SHARED, or use bench/compare.sh)" >&2; exit 1; }
SHARED="$(cd "$SHARED" && pwd)"

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x "$BIN" ]] || { echo "run-peers.sh: $BIN missing" >&2; exit 1; }

export OUT="${OUT:-/tmp/peers-bench-$(date +%Y%m%d-%H%M%S)}"
export KEYS_DIR="${KEYS_DIR:-$OUT/keys}"
mkdir -p "$KEYS_DIR"
export CORES="${CORES:-1}"
if [[ "$CORES" == "2" ]]; then
  mkdir -p "$OUT/yardstick"
  cp -r "$SHARED/." "$OUT/yardstick/"
  rm -rf "$OUT/yardstick/results"
  sed -i 's/^\(\s*\)nbthread 1/\1nbthread 2/' "$OUT/yardstick/conf/haproxy.cfg"
  sed -i 's/^worker_processes 1;/worker_processes 2;/' "$OUT/yardstick/conf/nginx-proxy.conf" \
    "$OUT/yardstick/conf/nginx-limitreq.conf"
  grep -q "nbthread 2" "$OUT/yardstick/conf/haproxy.cfg" || { echo "run-peers.sh: could not set nbthread 2" >&2; exit 1; }
  SHARED="$OUT/yardstick"
  export PIN=0
fi
if [[ "${SAME_HEADERS:-0}" == "1" ]]; then
  # HAProxy's plain frontend also writes what a portcullis forward adds to the request and the
  # response (in a copy of the yardstick; the shared one is not changed).
  if [[ "$SHARED" != "$OUT/yardstick" ]]; then
    mkdir -p "$OUT/yardstick"
    cp -r "$SHARED/." "$OUT/yardstick/"
    rm -rf "$OUT/yardstick/results"
    SHARED="$OUT/yardstick"
  fi
  python3 - "$SHARED/conf/haproxy.cfg" "$HERE/same-headers.cfg" <<'PY'
import sys
p, rules = sys.argv[1], open(sys.argv[2]).read()
s = open(p).read()
anchor = "frontend fe_plain\n    bind 127.0.0.1:@P_PLAIN@\n"
if anchor not in s:
    sys.exit("run-peers.sh: SAME_HEADERS=1 could not find fe_plain in " + p)
open(p, "w").write(s.replace(anchor, anchor + rules, 1))
PY
fi

# ---- keys and tokens: what peers.sh's make_keys does (it reuses keys that exist)
k="$KEYS_DIR"
[[ -s $k/hs256.secret ]] || printf '%s' "portcullis-bench-hs256-secret-0123456789abcdef" >"$k/hs256.secret"
if [[ ! -s $k/rs256.key ]]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k/rs256.key" 2>/dev/null
  openssl pkey -in "$k/rs256.key" -pubout -out "$k/rs256.pub"
fi
if [[ ! -s $k/es256.key ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$k/es256.key"
  openssl pkey -in "$k/es256.key" -pubout -out "$k/es256.pub"
fi
python3 "$SHARED/mkjwt.py" HS256 "$(cat "$k/hs256.secret")" >"$k/hs256.jwt"
python3 "$SHARED/mkjwt.py" RS256 "$k/rs256.key" >"$k/rs256.jwt"
python3 "$SHARED/mkjwt.py" ES256 "$k/es256.key" >"$k/es256.jwt"
[[ -s $k/apikey.txt ]] || printf 'pk_bench_%s' "$(openssl rand -hex 24)" >"$k/apikey.txt"
[[ -s $k/clientid.txt ]] || printf 'client-bench-0001' >"$k/clientid.txt"

# ---- rows: literal headers, so the tokens go in now (valid 24 h; peers.sh re-mints its own
#      copies with the same keys, both verify)
ROWS_FILE="$OUT/rows.tsv"
python3 - "$HERE/rows.tsv" "$ROWS_FILE" "$k" <<'PY'
import os, sys
tpl, out, k = sys.argv[1:]
rd = lambda n: open(f"{k}/{n}").read().strip()
s = open(tpl).read()
for ph, val in [("@HS256@", rd("hs256.jwt")), ("@RS256@", rd("rs256.jwt")), ("@ES256@", rd("es256.jwt")),
                ("@API_KEY@", rd("apikey.txt")), ("@CLIENT_ID@", rd("clientid.txt"))]:
    s = s.replace(ph, val)
rows = [l for l in s.splitlines() if l and not l.startswith("#")]
if os.environ.get("REDIS") != "1":
    rows = [l for l in rows if l.split("\t")[0] != "gw-ratelimit-redis"]
if os.environ.get("UNCACHED") == "1":
    # same routes, named for what they measure: a verification per request
    rows = [l.replace("\t", "-uncached\t", 1) for l in rows if l.split("\t")[0] in ("gw-hs256", "gw-rs256", "gw-es256")]
    rows.insert(0, s.splitlines()[[l.split("\t")[0] for l in s.splitlines()].index("gw-plain")])
open(out, "w").write("".join(l + "\n" for l in rows))
PY
# the config is checked up front, so a refusal shows here and not as a silent start failure
render_config "127.0.0.1:18080" "$k" "$OUT/portcullis-check.toml"
"$BIN" check "$OUT/portcullis-check.toml" >/dev/null

GW_ROWS="gw-plain gw-ratelimit gw-hs256 gw-rs256 gw-es256 gw-apikey"
PEER_ROWS="direct nginx nginx-limitreq haproxy haproxy-ratelimit haproxy-jwt-hs256 haproxy-jwt-rs256 haproxy-jwt-es256 haproxy-apikey"
if [[ "${UNCACHED:-0}" == "1" ]]; then
  GW_ROWS="gw-plain gw-hs256-uncached gw-rs256-uncached gw-es256-uncached"
  PEER_ROWS="direct haproxy haproxy-jwt-hs256 haproxy-jwt-rs256 haproxy-jwt-es256"
fi
if [[ "${SAME_HEADERS:-0}" == "1" ]]; then
  GW_ROWS="gw-plain"
  PEER_ROWS="direct haproxy"
fi
if [[ "${REDIS:-0}" == "1" ]]; then
  GW_ROWS="gw-plain gw-ratelimit-redis"
  PEER_ROWS="direct haproxy haproxy-ratelimit"
  command -v redis-server >/dev/null || { echo "run-peers.sh: REDIS=1 needs redis-server" >&2; exit 1; }
  redis-server --port "${REDIS_PORT:-18379}" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$OUT/redis.pid" >/dev/null
  trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
fi
export REDIS="${REDIS:-0}"
export UNCACHED="${UNCACHED:-0}"
export ROWS="${ROWS:-$PEER_ROWS $GW_ROWS}"
export EXTRA_ROWS_FILE="$ROWS_FILE"
export GATEWAY_URL="http://127.0.0.1:18300/plain/api/v1/items"
export GATEWAY_CMD="$HERE/run-peers.sh --serve {UPSTREAM} {KEYS}"
"$SHARED/peers.sh"   # not exec: the REDIS=1 trap stops redis-server afterwards
if [[ "${CHART:-0}" == "1" ]]; then
  python3 "$HERE/chart.py" "$OUT/results.csv" "$OUT/chart.svg" \
    "portcullis vs HAProxy, peers.sh, $(date -u +%Y-%m-%d), cores=$CORES" && echo "chart: $OUT/chart.svg"
fi
