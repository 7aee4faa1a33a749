#!/usr/bin/env bash
# profile.sh — instructions per request of the release gateway, under callgrind.
#
# Starts the load bench's upstream, runs target/release/portcullis under
# `valgrind --tool=callgrind` on a small config, drives one route with wrk for a bounded time,
# and prints instructions per request (user space of the gateway process only: callgrind does
# not see the kernel's socket work) and the top inclusive functions. Deterministic enough to
# compare builds (hardware counters are not available on these VMs).
#
#   bench/profile.sh                   # plain forward
#   ROW=apikey bench/profile.sh        # plain | ratelimit | apikey | hs256 | download
#   ROW=download CONNS=10 ...          # a 1 MiB response (DOWNLOAD_BYTES) that nginx serves
#   SKIP_BUILD=1 SECS=20 CONNS=8 OUT=/tmp/prof bench/profile.sh
#   SKIP_BUILD=1 GW_BIN=/tmp/old/portcullis UPSTREAM_BIN=.../bench-upstream bench/profile.sh
#   CACHE_SIM=1 bench/profile.sh       # also valgrind's cache model: L1 / last-level misses per request
#   PEER=haproxy bench/profile.sh      # the same load through HAProxy (ROW=plain|ratelimit: the
#                                      # yardstick's fe_plain / fe_ratelimit, nbthread 1)
#   PEER=haproxy SAME_HEADERS=1 ...    # HAProxy adding the headers the gateway adds, too
#   NATIVE=1 ROW=hs256 bench/profile.sh  # no valgrind: the gateway (or HAProxy) runs natively,
#       pinned with the upstream on CPU 0 and wrk on CPU 1 as in the yardstick, and the script
#       prints CPU microseconds, context switches and TCP segments per request (user + system from
#       /proc/PID/stat, and the upstream's CPU beside it: it shares CPU 0, so what the proxy
#       sends it costs the row too; switches summed over the process's threads; segments from
#       /proc/net/snmp, every leg of the host) and, when
#       `perf` is installed, writes a cpu-clock sampling profile ($OUT/perf.txt): what callgrind
#       cannot see (kernel time, SHA-NI, vDSO clock reads). CONNS defaults to the yardstick's 50.
#       PERF=0 leaves perf out (its sampling costs the gateway a few per cent).
#       SYSCALLS=1 also counts the proxy's system calls per request (perf tracepoints), and
#       SCHED=1 records one second of CPU 0's context switches mid-load and prints who ran
#       there, for how long and whether each run ended preempted or asleep (bench/schedstat.py).
#
# Only the measured load is counted: after a 2 s warm-up the counters are zeroed, and dumped
# when wrk ends (start-up, config loading and shutdown are left out).
#
# Every process it starts is stopped by PID on exit; only 127.0.0.1 is used.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROW="${ROW:-plain}"
SECS="${SECS:-20}"
NATIVE="${NATIVE:-0}"
if [[ "$NATIVE" == "1" ]]; then CONNS="${CONNS:-50}"; else CONNS="${CONNS:-8}"; fi
UP_PORT="${UP_PORT:-19480}"
GW_PORT="${GW_PORT:-19500}"
OUT="${OUT:-/tmp/portcullis-profile-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

tools=(wrk)
[[ "$NATIVE" == "1" ]] || tools+=(valgrind callgrind_annotate callgrind_control)
[[ "${SYSCALLS:-0}${SCHED:-0}" == "00" ]] || tools+=(perf)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "profile.sh: $tool is missing (apt-get install -y valgrind wrk linux-perf)" >&2; exit 1; }
done

cd "$ROOT"
if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  cargo build --release --quiet
  cargo bench --bench load --no-run --quiet 2>/dev/null
fi
# The upstream: UPSTREAM_BIN (the yardstick's bench-upstream, run with --addr) when given, else the
# load bench's built-in upstream (--upstream-only).
GW_BIN="${GW_BIN:-target/release/portcullis}"
if [[ "$ROW" == "download" ]]; then
  # A large response: nginx serves DOWNLOAD_BYTES of random bytes from a file (sendfile), so
  # the row measures what the proxy spends moving a body, not what the upstream spends making it.
  command -v nginx >/dev/null || { echo "profile.sh: ROW=download needs nginx (apt-get install -y nginx)" >&2; exit 1; }
  mkdir -p "$OUT/www/download/api/v1"
  head -c "${DOWNLOAD_BYTES:-1048576}" /dev/urandom >"$OUT/www/download/api/v1/items"
  cat >"$OUT/nginx.conf" <<NGX
worker_processes 1;
master_process off;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$UP_PORT; root $OUT/www; }
}
NGX
  UP_CMD=(nginx -e "$OUT/nginx-error.log" -c "$OUT/nginx.conf")
elif [[ -n "${UPSTREAM_BIN:-}" ]]; then
  UP_CMD=("$UPSTREAM_BIN" --addr "127.0.0.1:$UP_PORT")
else
  LOAD_BIN=$(ls -t target/release/deps/load-* 2>/dev/null | grep -v '\.d$' | head -1)
  [[ -x "$LOAD_BIN" ]] || { echo "profile.sh: load bench binary missing (cargo bench --bench load --no-run), or set UPSTREAM_BIN" >&2; exit 1; }
  UP_CMD=("$LOAD_BIN" --upstream-only "127.0.0.1:$UP_PORT")
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

HS_SECRET="profile-hs256-secret-0123456789abcdef0123456789"
# HS256 token (python stdlib): iss/aud/exp like the yardstick's mkjwt.py
HS_TOKEN=$(python3 - "$HS_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "profile"}).encode())
now = int(time.time())
body = b64(json.dumps({"iss": "https://issuer.profile.local", "aud": "portcullis-profile", "sub": "user-1",
                       "scope": "read", "iat": now, "nbf": now - 60, "exp": now + 86400}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
)
printf '%s' "$HS_SECRET" >"$OUT/hs256.secret"
read -r API_KEY API_HASH < <("$GW_BIN" new-api-key |
  awk '/^api key:/{k=$3} /^key_hash/{gsub(/"/,"",$3); h=$3} END{print k, h}')
cat >"$OUT/gw.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
workers = 1
default_class = "open"

[classes.open]
errors = "partner"

[classes.limited]
errors = "partner"
limit = "1000000/10s"

[upstreams.up]
url = "http://127.0.0.1:$UP_PORT"

[jwt]
issuers = ["https://issuer.profile.local"]
audiences = ["portcullis-profile"]

[[jwt.keys]]
kid = "profile"
alg = "HS256"
secret = "file:$OUT/hs256.secret"

[[apps]]
client_id = "profile-client"
key_hash = "$API_HASH"

[[routes]]
path = "/plain/"
class = "open"
upstream = "up"

[[routes]]
path = "/ratelimit/"
class = "limited"
upstream = "up"

[[routes]]
path = "/hs256/"
class = "limited"
auth = "bearer"
upstream = "up"

[[routes]]
path = "/apikey/"
class = "limited"
auth = "api_key"
upstream = "up"

[[routes]]
path = "/download/"
class = "open"
upstream = "up"
EOF

# Under valgrind the gateway runs as `valgrind --tool=callgrind ...`; natively it is pinned beside
# the upstream on CPU 0 (wrk on CPU 1), the yardstick's layout.
if [[ "$NATIVE" == "1" ]]; then
  UP_RUN=(taskset -c 0)
  RUN=(taskset -c 0)
  LOAD=(taskset -c 1)
else
  UP_RUN=()
  RUN=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out")
  # CACHE_SIM=1: valgrind's cache model too (its L1 and last-level caches, not this VM's).
  [[ "${CACHE_SIM:-0}" == "1" ]] && RUN+=(--cache-sim=yes)
  LOAD=()
fi
"${UP_RUN[@]}" "${UP_CMD[@]}" 2>"$OUT/upstream.log" &
UP_PID=$!
PIDS+=("$UP_PID")
if [[ "${PEER:-}" == "haproxy" ]]; then
  # The yardstick's HAProxy plain and rate-limit frontends (../shared/bench/conf/haproxy.cfg).
  track=""
  [[ "$ROW" == "ratelimit" ]] && track="    http-request track-sc0 src table st_perip
    http-request deny deny_status 429 if { sc_http_req_rate(0,st_perip) gt 100000000 }"
  # SAME_HEADERS=1: HAProxy also writes the headers a portcullis forward adds (bench/same-headers.cfg),
  # so the upstream parses the same head from both proxies.
  same=""
  [[ "${SAME_HEADERS:-0}" == "1" ]] && same=$(sed "s/@UP@/127.0.0.1:$UP_PORT/" "$HERE/same-headers.cfg")
  cat >"$OUT/haproxy.cfg" <<CFG
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
    server up1 127.0.0.1:$UP_PORT maxconn 1000
backend st_perip
    stick-table type ip size 100k expire 5m store http_req_rate(5m)
frontend fe
    bind 127.0.0.1:$GW_PORT
$track
$same
    default_backend be_upstream
CFG
  "${RUN[@]}" haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/gateway.log" 2>&1 &
else
  RUST_LOG="${GW_LOG:-info,access=off}" "${RUN[@]}" "$GW_BIN" serve --config "$OUT/gw.toml" >"$OUT/gateway.log" 2>&1 &
fi
GW_PID=$!
PIDS+=("$GW_PID")

headers=()
[[ "$ROW" == "apikey" ]] && headers=(-H "X-API-Key: $API_KEY" -H "X-Client-ID: profile-client")
[[ "$ROW" == "hs256" ]] && headers=(-H "Authorization: Bearer $HS_TOKEN")
url="http://127.0.0.1:$GW_PORT/$ROW/api/v1/items"
for _ in $(seq 1 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "$url" || true)
  [[ "$code" == "200" ]] && break
  sleep 0.5
done
[[ "$code" == "200" ]] || { echo "profile.sh: $url answered $code (see $OUT/gateway.log)" >&2; exit 1; }

# Context switches of every thread of the gateway: "voluntary involuntary".
switches() {
  cat /proc/"$GW_PID"/task/*/status 2>/dev/null | awk '
    /^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2}
    END {print v + 0, n + 0}'
}

# TCP segments sent on this host (every socket: client, proxy and upstream legs), and the delayed
# ACKs among them: "out_segs delayed_acks".
segments() {
  awk '/^Tcp:/ {if (!h) {for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i; h = 1} else o = $c}
    END {printf "%d ", o}' /proc/net/snmp
  awk '/^TcpExt:/ {if (!h) {for (i = 1; i <= NF; i++) if ($i == "DelayedACKs") c = i; h = 1} else d = $c}
    END {print d + 0}' /proc/net/netstat
}

# The system calls SYSCALLS=1 counts (every one the proxies make on the request path), and the
# total of all of them.
syscall_events() {
  local s out=""
  for s in read recvfrom recvmsg readv write sendto sendmsg writev epoll_wait epoll_pwait \
    epoll_ctl futex sched_yield accept4 close setsockopt getsockopt clock_gettime; do
    out+="syscalls:sys_enter_$s,"
  done
  echo "${out}raw_syscalls:sys_enter"
}

# NATIVE=1: the measured load with the gateway's CPU time (utime + stime, clock ticks) read
# before and after it, and perf's cpu-clock samples of the gateway while it runs.
native_load() {
  local tck u0 k0 u1 k1 s0 s1 g0 g1 up0 up1 reqs perf_pid="" sys_pid="" sched_pid=""
  tck=$(getconf CLK_TCK)
  read -r u0 k0 < <(awk '{print $14, $15}' "/proc/$GW_PID/stat")
  up0=$(awk '{print $14 + $15}' "/proc/$UP_PID/stat")
  s0=$(switches)
  g0=$(segments)
  if [[ "${PERF:-1}" == "1" ]] && command -v perf >/dev/null; then
    perf record -q -e cpu-clock -F 1999 -g -p "$GW_PID" -o "$OUT/perf.data" -- sleep "$SECS" \
      >"$OUT/perf.log" 2>&1 &
    perf_pid=$!
  fi
  if [[ "${SYSCALLS:-0}" == "1" ]]; then
    perf stat -x, -e "$(syscall_events)" -p "$GW_PID" -o "$OUT/syscalls.csv" -- sleep "$SECS" \
      >/dev/null 2>&1 &
    sys_pid=$!
  fi
  if [[ "${SCHED:-0}" == "1" ]]; then
    # One second of CPU 0's scheduler events, from the middle of the load.
    (sleep $((SECS / 2)) && perf record -q -e sched:sched_switch,sched:sched_wakeup -C 0 \
      -o "$OUT/perf.sched.data" -- sleep 1 >/dev/null 2>&1) &
    sched_pid=$!
  fi
  timeout $((SECS + 30)) "${LOAD[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" "${headers[@]}" "$url" | tee "$OUT/wrk.txt"
  read -r u1 k1 < <(awk '{print $14, $15}' "/proc/$GW_PID/stat")
  up1=$(awk '{print $14 + $15}' "/proc/$UP_PID/stat")
  s1=$(switches)
  g1=$(segments)
  reqs=$(awk '/requests in/{print $1}' "$OUT/wrk.txt")
  echo
  echo "row=$ROW requests=$reqs cpu_us_per_request=$(python3 -c "
r = max(1, $reqs); f = 1e6 / $tck / r
print(f'{($u1 - $u0 + $k1 - $k0) * f:.2f} (user {($u1 - $u0) * f:.2f}, system {($k1 - $k0) * f:.2f})')")" \
    "upstream_cpu_us_per_request=$(python3 -c "print(f'{($up1 - $up0) * 1e6 / $tck / max(1, $reqs):.2f}')")" \
    "switches_per_request=$(python3 -c "
v0, n0 = map(int, '$s0'.split()); v1, n1 = map(int, '$s1'.split()); r = max(1, $reqs)
print(f'{(v1 - v0) / r:.3f} voluntary, {(n1 - n0) / r:.3f} involuntary')")" \
    "tcp_segments_per_request=$(python3 -c "
o0, d0 = map(int, '$g0'.split()); o1, d1 = map(int, '$g1'.split()); r = max(1, $reqs)
print(f'{(o1 - o0) / r:.2f} ({(d1 - d0) / r:.3f} delayed ACKs)')")"
  if [[ -n "$sys_pid" ]]; then
    wait "$sys_pid" || true
    echo "system calls per request (perf tracepoints, the proxy's threads):"
    awk -F, -v r="$reqs" '$1 ~ /^[0-9]+$/ && $1 > 0 {sub(/^syscalls:sys_enter_/, "", $3);
      printf "  %-22s %.3f\n", $3, $1 / (r > 0 ? r : 1)}' "$OUT/syscalls.csv"
  fi
  if [[ -n "$sched_pid" ]]; then
    wait "$sched_pid" || true
    perf script -i "$OUT/perf.sched.data" 2>/dev/null | python3 "$HERE/schedstat.py" 0 | tee "$OUT/sched.txt"
  fi
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" || true
    perf report -i "$OUT/perf.data" --no-children --percent-limit 0.5 --stdio -g none \
      >"$OUT/perf.txt" 2>/dev/null || true
    echo "cpu-clock profile (self time per symbol, kernel included): $OUT/perf.txt"
  fi
}

# Warm up (pooled upstream connections, the verified-token cache, the limiter's windows), then
# count only the measured load: counters are zeroed before it and dumped right after it, so
# start-up, config loading and shutdown are not spread over the requests.
timeout 30 "${LOAD[@]}" wrk -t1 -c"$CONNS" -d2s "${headers[@]}" "$url" >"$OUT/warmup.txt"
if [[ "$NATIVE" == "1" ]]; then
  native_load
  exit 0
fi
callgrind_control -z "$GW_PID" >/dev/null
timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" "${headers[@]}" "$url" | tee "$OUT/wrk.txt"
callgrind_control -d "$GW_PID" >/dev/null
kill -TERM "$GW_PID"
wait "$GW_PID" 2>/dev/null || true
# The dump after the load is the last numbered file (the one written at exit holds only shutdown).
DUMP=$(ls -v "$OUT"/callgrind.out.* 2>/dev/null | head -1)
[[ -n "$DUMP" ]] && mv "$DUMP" "$OUT/callgrind.out"

reqs=$(awk '/requests in/{print $1}' "$OUT/wrk.txt")
# Inclusive costs only: after callgrind_control --zero, callgrind_annotate's exclusive view puts
# every instruction on the outermost frame, but the inclusive per-function figures are right.
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" >"$OUT/inclusive.txt" 2>/dev/null || true
total=$(awk '/PROGRAM TOTALS/ && !t {gsub(/,/,"",$1); t=$1} END{print t}' "$OUT/inclusive.txt")
echo
echo "row=$ROW requests=$reqs instructions=$total per_request=$(python3 -c "print(round($total / max(1, $reqs)))")"
if [[ "${CACHE_SIM:-0}" == "1" ]]; then
  # Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw, per request.
  awk -v r="$reqs" '/^Events shown:/ {for (i = 3; i <= NF; i++) ev[i - 2] = $i; n = NF - 2}
    /PROGRAM TOTALS/ && !t {t = 1; k = 0; for (i = 1; i <= NF && k < n; i++) if ($i !~ /^\(/) {
      gsub(/,/, "", $i); printf "%s=%.0f ", ev[++k], $i / r}; print ""}' \
    "$OUT/inclusive.txt" | sed 's/^/cache model per request: /'
fi
head -80 "$OUT/inclusive.txt" >"$OUT/top.txt"
echo "top inclusive functions: $OUT/top.txt (per request, per function, several runs side by side: bench/cgfunctions.py)"
