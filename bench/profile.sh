#!/usr/bin/env bash
# Where the server's CPU goes at keep-alive c=32: starts the `dist` build on the real endpoint
# (as bench/run.sh does), puts the harness's load generator on it, records the server with
# `perf record --call-graph dwarf` meanwhile, and prints the hottest symbols (self and with children).
#
#   bench/profile.sh                    # 15 s of load; perf.data stays in $BENCH_WORK/profile/
#   DUR=30 CONNECTIONS=32 bench/profile.sh
#   BENCH_BINARY=/tmp/old/dfdg-mock bench/profile.sh   # profile another build (nothing is built)
#
# Needs perf (Debian: linux-perf) and the harness's load generator and PKI (bench/run.sh, or
# ../shared/bench/setup.sh loadgen pki, makes them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_WORK="${BENCH_WORK:-${TMPDIR:-/tmp}/dfdg-bench}"
PKI="$BENCH_WORK/pki"
LOADGEN="${LOADGEN:-$BENCH_WORK/loadgen-target/release/mtls-loadgen}"
DUR="${DUR:-15}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${BENCH_PORT:-18451}"
OUT="$BENCH_WORK/profile"
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
[[ -x "$LOADGEN" && -f "$PKI/ca.crt" ]] || { echo "profile: run bench/run.sh once first (load generator, PKI)" >&2; exit 2; }

[[ -n "${BENCH_BINARY:-}" ]] || cargo build --profile dist --locked --quiet
rm -rf "$OUT" && mkdir -p "$OUT"
"${BENCH_BINARY:-./target/dist/dfdg-mock}" serve --listen "127.0.0.1:$PORT" \
  --cert "$PKI/server.crt" --key "$PKI/server.key" --client-ca "$PKI/ca.crt" \
  --wsdl wsdl --validation enforce --scenarios scenarios --journal "$OUT/journal.sqlite" \
  --suppliers "$OUT/suppliers.toml" --admin-listen 127.0.0.1:0 >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' EXIT
load() {
  "$LOADGEN" --url "https://127.0.0.1:$PORT/JobcenterMessageService/2/JobcenterMessageService.svc" \
    --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" \
    --body bench/request.xml -H 'Content-Type: text/xml; charset=utf-8' \
    -H 'SOAPAction: "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment"' \
    --expect SaveAvailabilityAssessmentResponse --threads "$(nproc)" "$@"
}
load --wait-ready 30 --timeout 2 >/dev/null
perf record --call-graph "${CALLGRAPH:-dwarf,8192}" -F "${FREQ:-499}" -p "$SERVER" -o "$OUT/perf.data" -- sleep "$DUR" 2>"$OUT/perf.log" &
RECORD=$!
load --mode keepalive -c "$CONNECTIONS" -d "$DUR" --warmup 0 --label "profile/ka$CONNECTIONS"
wait "$RECORD"
report() { perf report -i "$OUT/perf.data" --stdio --percent-limit 0.5 "$@" 2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+%' | cut -c1-150; }
echo "--- CPU by thread ---"
report --no-children --sort comm
echo "--- hottest symbols, self time ---"
report --no-children --sort symbol | head -40
echo "--- request path (tokio workers), inclusive ---"
report --children --comm tokio-rt-worker --sort symbol | head -70
echo "perf data: $OUT/perf.data (perf report -i $OUT/perf.data)"
