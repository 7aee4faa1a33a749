#!/usr/bin/env bash
# compare.sh — portcullis beside HAProxy and nginx on loopback, one interleaved run, one table.
#
# Self-contained (no ../shared needed): installs haproxy, nginx and wrk from Debian packages when
# missing, starts a fixed upstream (the load bench's hyper upstream, `--upstream-only`), nginx
# (plain proxy), HAProxy (plain, per-IP rate limit, JWT HS256 + exp/iss/aud, API key: configured
# like the yardstick ../shared/bench/conf/haproxy.cfg) and the gateway (bench/peers.toml), all
# on 127.0.0.1, one worker each; runs wrk against every row ROUNDS times, interleaved, and prints
# medians with ratios to direct and to each row's HAProxy twin. Every process it starts is
# stopped by PID on exit; every run is bounded (`timeout`).
#
#   bench/compare.sh
#   ROUNDS=1 DURATION=2s bench/compare.sh           # smoke
#
# Environment [defaults]: ROUNDS [3] DURATION [5s] CONNS [50] PIN [1: wrk on CPU 1, the rest on
# CPU 0] BASE_PORT [19000] OUT [/tmp/portcullis-compare-<time>] SKIP_BUILD [0]
# GW_LOG [info,access=off] ROWS [all: direct nginx haproxy haproxy-ratelimit haproxy-jwt-hs256
# haproxy-apikey gw-plain gw-ratelimit gw-hs256 gw-apikey]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-50}"
PIN="${PIN:-1}"
BASE_PORT="${BASE_PORT:-19000}"
OUT="${OUT:-/tmp/portcullis-compare-$(date +%Y%m%d-%H%M%S)}"
ROWS="${ROWS:-direct nginx haproxy haproxy-ratelimit haproxy-jwt-hs256 haproxy-apikey gw-plain gw-ratelimit gw-hs256 gw-apikey}"
P_UP=$((BASE_PORT + 80)); P_NGINX=$((BASE_PORT + 101))
P_HA=$((BASE_PORT + 201)); P_HA_HS=$((BASE_PORT + 202)); P_HA_KEY=$((BASE_PORT + 205)); P_HA_RL=$((BASE_PORT + 206))
P_GW=$((BASE_PORT + 300))
RUN="$OUT/run"; KEYS="$OUT/keys"
mkdir -p "$RUN" "$KEYS" "$OUT/raw"

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ tools
missing=()
for t in haproxy nginx wrk curl openssl python3 taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  pkgs=()
  for t in "${missing[@]}"; do
    case $t in taskset) pkgs+=(util-linux) ;; *) pkgs+=("$t") ;; esac
  done
  SUDO=""; [[ $EUID -ne 0 ]] && SUDO="sudo"
  log "installing ${pkgs[*]} (apt-get)"
  timeout 600 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# ------------------------------------------------------------------ processes
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do
    [[ -z "$pid" ]] && continue
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SUT=(); LOADGEN=()
if [[ "$PIN" == "1" && $(nproc) -ge 2 ]]; then SUT=(taskset -c 0); LOADGEN=(taskset -c 1); fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {   # start NAME PORT CMD...
  local name=$1 port=$2; shift 2
  port_busy "$port" && die "port $port already in use; set BASE_PORT"
  "$@" >"$RUN/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    port_busy "$port" && { log "started $name pid=$pid on 127.0.0.1:$port"; return 0; }
    kill -0 "$pid" 2>/dev/null || die "$name exited before listening; see $RUN/$name.log"
    sleep 0.05
  done
  die "$name did not listen on $port within 10 s; see $RUN/$name.log"
}

# ------------------------------------------------------------------ build
if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  log "building the gateway and the load bench (release)"
  (cd "$ROOT" && timeout 1800 cargo build --release --quiet)
fi
LOADBIN=$(cd "$ROOT" && timeout 1800 cargo bench --bench load --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "load":
        print(m["executable"])' | tail -1)
[[ -x "$LOADBIN" ]] || die "could not build the load bench"
GWBIN="$ROOT/target/release/portcullis"

# ------------------------------------------------------------------ keys (HS256 secret, API key)
printf 'portcullis-compare-hs256-%s' "$(openssl rand -hex 16)" >"$KEYS/hs256.secret"
printf 'pk_bench_%s' "$(openssl rand -hex 24)" >"$KEYS/apikey.txt"
printf 'client-bench-0001' >"$KEYS/clientid.txt"
HASH=$(printf '%s' "$(cat "$KEYS/apikey.txt")" | sha256sum | cut -d' ' -f1)
printf '%s %s\n' "$HASH" "$(cat "$KEYS/clientid.txt")" >"$KEYS/apikeys.map"
# RS/ES keys only so bench/peers.toml loads; the rows here use HS256 and the API key
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEYS/rs256.key" 2>/dev/null
openssl pkey -in "$KEYS/rs256.key" -pubout -out "$KEYS/rs256.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KEYS/es256.key"
openssl pkey -in "$KEYS/es256.key" -pubout -out "$KEYS/es256.pub"
python3 - "$KEYS/hs256.secret" >"$KEYS/hs256.jwt" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
now = int(time.time())
h = {"alg": "HS256", "typ": "JWT", "kid": "bench-key"}
c = {"iss": "https://issuer.bench.local", "aud": "portcullis-bench", "sub": "bench-user",
     "scope": "read write", "iat": now, "nbf": now - 60, "exp": now + 24 * 3600}
si = b(json.dumps(h, separators=(",", ":")).encode()) + "." + b(json.dumps(c, separators=(",", ":")).encode())
sig = hmac.new(open(sys.argv[1], "rb").read(), si.encode(), hashlib.sha256).digest()
print(si + "." + b(sig))
PY

# ------------------------------------------------------------------ configs
cat >"$RUN/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process on;
pid $RUN/nginx.pid;
error_log $RUN/nginx.err warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $RUN/nginx.tmp/body;
    proxy_temp_path       $RUN/nginx.tmp/proxy;
    upstream backend { server 127.0.0.1:$P_UP; keepalive 128; keepalive_requests 100000000; keepalive_timeout 75s; }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
NGINX
mkdir -p "$RUN/nginx.tmp/body" "$RUN/nginx.tmp/proxy"; chmod -R 777 "$RUN/nginx.tmp"

RL='    http-request track-sc0 src table st_perip
    http-request deny deny_status 429 if { sc_http_req_rate(0,st_perip) gt 100000000 }'
cat >"$RUN/haproxy.cfg" <<HAPROXY
global
    nbthread 1
    maxconn 4096
    tune.bufsize 16384
defaults
    mode http
    timeout connect 5s
    timeout client  60s
    timeout server  60s
    timeout http-keep-alive 60s
    option http-keep-alive
    option forwardfor
    http-reuse always
    no log
backend be_upstream
    server up1 127.0.0.1:$P_UP maxconn 1000
backend st_perip
    stick-table type ip size 100k expire 5m store http_req_rate(5m)
frontend fe_plain
    bind 127.0.0.1:$P_HA
    default_backend be_upstream
frontend fe_ratelimit
    bind 127.0.0.1:$P_HA_RL
$RL
    default_backend be_upstream
frontend fe_jwt_hs256
    bind 127.0.0.1:$P_HA_HS
$RL
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny deny_status 401 unless { var(txn.alg) -m str HS256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$(cat "$KEYS/hs256.secret")") -m int 1 }
    http-request set-var(txn.now) date()
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str https://issuer.bench.local }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str portcullis-bench }
    default_backend be_upstream
frontend fe_apikey
    bind 127.0.0.1:$P_HA_KEY
$RL
    http-request deny deny_status 401 unless { req.hdr(x-api-key) -m found } { req.hdr(x-client-id) -m found }
    http-request set-var(txn.cid) req.hdr(x-client-id)
    http-request set-var(txn.owner) req.hdr(x-api-key),sha2(256),hex,lower,map($KEYS/apikeys.map)
    http-request deny deny_status 401 unless { var(txn.owner),strcmp(txn.cid) eq 0 }
    default_backend be_upstream
HAPROXY
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy config check failed ($RUN/haproxy.cfg)"

python3 - "$HERE/peers.toml" "$RUN/portcullis.toml" "127.0.0.1:$P_UP" "$KEYS" "$HASH" \
  "$(cat "$KEYS/clientid.txt")" "127.0.0.1:$P_GW" <<'PY'
import sys
tpl, out, up, keys, h, cid, listen = sys.argv[1:]
s = open(tpl).read()
s = (s.replace("{UPSTREAM}", up).replace("{KEYS}", keys).replace("@API_KEY_SHA256@", h)
      .replace("@CLIENT_ID@", cid).replace('listen = "127.0.0.1:18300"', f'listen = "{listen}"'))
open(out, "w").write(s)
PY
"$GWBIN" check "$RUN/portcullis.toml" >/dev/null || die "gateway config refused ($RUN/portcullis.toml)"

# ------------------------------------------------------------------ start
start upstream "$P_UP" "${SUT[@]}" "$LOADBIN" --upstream-only "127.0.0.1:$P_UP"
start nginx "$P_NGINX" "${SUT[@]}" nginx -e "$RUN/nginx.err" -p "$RUN" -c "$RUN/nginx.conf"
start haproxy "$P_HA" "${SUT[@]}" haproxy -db -f "$RUN/haproxy.cfg"
RUST_LOG="${GW_LOG:-info,access=off}" start gateway "$P_GW" "${SUT[@]}" "$GWBIN" serve --config "$RUN/portcullis.toml"

# ------------------------------------------------------------------ rows
TOKEN=$(cat "$KEYS/hs256.jwt"); APIKEY=$(cat "$KEYS/apikey.txt"); CID=$(cat "$KEYS/clientid.txt")
row() {   # row NAME -> URL and HDRS
  HDRS=()
  case $1 in
    direct)            URL="http://127.0.0.1:$P_UP/api/v1/items" ;;
    nginx)             URL="http://127.0.0.1:$P_NGINX/api/v1/items" ;;
    haproxy)           URL="http://127.0.0.1:$P_HA/api/v1/items" ;;
    haproxy-ratelimit) URL="http://127.0.0.1:$P_HA_RL/api/v1/items" ;;
    haproxy-jwt-hs256) URL="http://127.0.0.1:$P_HA_HS/api/v1/items"; HDRS=("Authorization: Bearer $TOKEN") ;;
    haproxy-apikey)    URL="http://127.0.0.1:$P_HA_KEY/api/v1/items"; HDRS=("X-API-Key: $APIKEY" "X-Client-ID: $CID") ;;
    gw-plain)          URL="http://127.0.0.1:$P_GW/plain/api/v1/items" ;;
    gw-ratelimit)      URL="http://127.0.0.1:$P_GW/ratelimit/api/v1/items" ;;
    gw-hs256)          URL="http://127.0.0.1:$P_GW/hs256/api/v1/items"; HDRS=("Authorization: Bearer $TOKEN") ;;
    gw-apikey)         URL="http://127.0.0.1:$P_GW/apikey/api/v1/items"; HDRS=("X-API-Key: $APIKEY" "X-Client-ID: $CID") ;;
    *) die "unknown row $1" ;;
  esac
}
curl_args() { CA=(); local h; for h in "${HDRS[@]}"; do CA+=(-H "$h"); done; }

: >"$OUT/notes.txt"
for r in $ROWS; do
  row "$r"; curl_args
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${CA[@]}" "$URL" || true)
  [[ "$code" == 200 ]] || die "row $r: $URL answered $code with credentials, want 200"
  if [[ ${#HDRS[@]} -gt 0 ]]; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL" || true)
    if [[ "$code" == 2* ]]; then
      log "WARNING row $r: answered $code WITHOUT credentials: auth is not enforced by this build"
      echo "$r: auth NOT enforced (answered $code without credentials)" >>"$OUT/notes.txt"
    fi
  fi
done
log "pre-checks passed; rows: $ROWS; $ROUNDS round(s) of $DURATION, $CONNS connections"

# ------------------------------------------------------------------ measure
echo "row,round,rps,p50_ms,p99_ms,non2xx,errors" >"$OUT/results.csv"
secs=${DURATION%s}
for n in $(seq 1 "$ROUNDS"); do
  for r in $ROWS; do
    row "$r"; curl_args
    raw="$OUT/raw/$r.$n.txt"
    timeout $((secs + 30)) "${LOADGEN[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s --latency \
      "${CA[@]}" "$URL" >"$raw" 2>&1 || log "wrk failed for $r round $n"
    python3 - "$raw" "$r" "$n" >>"$OUT/results.csv" <<'PY'
import re, sys
path, name, n = sys.argv[1:]
t = open(path).read()
def ms(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, t, re.M)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else float("nan")
rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
print(f"{name},{n},{rps.group(1) if rps else 'nan'},{ms(50):.3f},{ms(99):.3f},"
      f"{non2xx.group(1) if non2xx else 0},{sum(map(int, err.groups())) if err else 0}")
PY
    tail -n1 "$OUT/results.csv" | awk -F, '{printf "[compare] round %s %-18s %8.0f req/s  p50 %.3f ms  p99 %.3f ms  non2xx %s  err %s\n", $2, $1, $3, $4, $5, $6, $7}' >&2
  done
done

python3 - "$OUT/results.csv" "$OUT/notes.txt" $ROWS <<'PY' | tee "$OUT/table.md"
import csv, statistics, sys
path, notes, *rows = sys.argv[1:]
data = {}
for r in csv.DictReader(open(path)):
    data.setdefault(r["row"], []).append(r)
med = lambda name, k: statistics.median(float(x[k]) for x in data[name]) if name in data else float("nan")
twin = {"gw-plain": "haproxy", "gw-ratelimit": "haproxy-ratelimit", "gw-hs256": "haproxy-jwt-hs256",
        "gw-apikey": "haproxy-apikey"}
d = med("direct", "rps")
print("| row | req/s (median) | p50 ms | p99 ms | vs direct | vs haproxy twin | vs gw-plain | non-2xx | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in rows:
    rps = med(name, "rps")
    tw = twin.get(name, "haproxy" if name.startswith("haproxy-") else None)
    vs_twin = f"{rps / med(tw, 'rps'):.2f} ({tw})" if tw and tw in data and tw != name else "-"
    vs_gw = f"{rps / med('gw-plain', 'rps'):.2f}" if name.startswith("gw-") and "gw-plain" in data else "-"
    bad = sum(int(x["non2xx"]) for x in data[name]); err = sum(int(x["errors"]) for x in data[name])
    print(f"| {name} | {rps:.0f} | {med(name, 'p50_ms'):.2f} | {med(name, 'p99_ms'):.2f} | "
          f"{rps / d:.3f} | {vs_twin} | {vs_gw} | {bad} | {err} |")
n = len(next(iter(data.values())))
print(f"\nmedians of {n} interleaved round(s); raw wrk output in {path.rsplit('/', 1)[0]}/raw")
for line in open(notes):
    print("NOTE:", line.strip())
PY
