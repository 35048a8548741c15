#!/usr/bin/env bash
# The benchmark of the real endpoint: ../shared/bench/run.sh (the mutual-TLS harness) against the
# `dist` build of dfdg-mock (the release profile with fat LTO, what the container ships) serving
# what it ships — the catalog in wsdl/ with validation `enforce`, the scenarios in scenarios/, the
# durable SQLite journal — next to nginx and rust-static (hyper + rustls answering a static body)
# in the same run. The request is SaveAvailabilityAssessment with both STAR headers
# (bench/request.xml), sent with its SOAPAction; the anchors answer with a response of ours
# (bench/receipt.xml).
#
#   bench/run.sh                       # nginx, rust-static, dfdg-mock; 10 s per phase (~2 min)
#   bench/run.sh dfdg-mock             # only these targets
#   DUR=30 PHASES="ka1 ka32 nc8" bench/run.sh
#   BENCH_COMPARE=/tmp/old/dfdg-mock bench/run.sh   # also another build, as target "compare"
#   BENCH_POSTGRES=1 bench/run.sh      # also one replica on a PostgreSQL journal ("dfdg-mock-pg")
#                                      # and two behind haproxy ("dfdg-mock-2x-pg"), on a
#                                      # throw-away cluster (bench/postgres.sh, needs postgresql
#                                      # and haproxy); with BENCH_COMPARE also that build on
#                                      # PostgreSQL ("compare-pg")
#   BENCH_JOURNAL=bench.sqlite bench/run.sh   # the SQLite targets start on a copy of that journal,
#                                      # e.g. journal_bench's 1 M calls (--journal FILE --keep):
#                                      # full at the default max_calls, so that each call written
#                                      # makes the writer remove one; the copy counts as startup
#   BENCH_SUPPLIERS=1000 bench/run.sh  # the SQLite targets run with a registry of that many
#                                      # suppliers, the harness's client the last of them
#                                      # (bench/suppliers.sh), as a shared rehearsal server
#
# Knobs: BENCH_HARNESS (default ../shared/bench), BENCH_PORT (18450; BENCH_COMPARE's build gets
# the next port), and the harness's own (DUR,
# WARMUP, PHASES, PIN, BENCH_WORK; see its README). Run from anywhere; it works from the project
# root. The report is printed at the end and kept under $BENCH_WORK/results/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
[[ -x "$HARNESS/run.sh" ]] || { echo "bench: no harness at $HARNESS (set BENCH_HARNESS)" >&2; exit 2; }
PORT="${BENCH_PORT:-18450}"

cargo build --profile dist --locked --quiet

export BENCH_PATH=/JobcenterMessageService/2/JobcenterMessageService.svc
export BENCH_BODY="$ROOT/bench/request.xml"
export BENCH_ACTION='"urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment"'
export BENCH_CONTENT_TYPE='text/xml; charset=utf-8'
export BENCH_EXPECT=SaveAvailabilityAssessmentResponse
export BENCH_RECEIPT="$ROOT/bench/receipt.xml"
# The server trusts the harness's CA and presents its server certificate; the journal, the
# supplier registry (absent, so open mode, unless BENCH_SUPPLIERS) and the admin listener's port
# are its own.
COMMON="--cert {PKI}/server.crt --key {PKI}/server.key --client-ca {PKI}/ca.crt \
--wsdl wsdl --validation enforce --scenarios scenarios \
--suppliers {WORK}/suppliers.toml --admin-listen 127.0.0.1:0"
ARGS="serve --listen 127.0.0.1:{PORT} $COMMON --journal {WORK}/journal.sqlite"
START=""
if [[ -n "${BENCH_JOURNAL:-}" ]]; then
  [[ -f "$BENCH_JOURNAL" ]] || { echo "bench: BENCH_JOURNAL=$BENCH_JOURNAL is not a file" >&2; exit 2; }
  JOURNAL="$(realpath "$BENCH_JOURNAL")"
  START="cp '$JOURNAL' {WORK}/journal.sqlite && { [[ ! -f '$JOURNAL-wal' ]] || cp '$JOURNAL-wal' {WORK}/journal.sqlite-wal; } && "
fi
if [[ -n "${BENCH_SUPPLIERS:-}" ]]; then
  [[ "$BENCH_SUPPLIERS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_SUPPLIERS=$BENCH_SUPPLIERS is not a number of suppliers" >&2; exit 2; }
  START+="'$ROOT/bench/suppliers.sh' $BENCH_SUPPLIERS {PKI}/client.crt > {WORK}/suppliers.toml && "
fi
TARGET="dfdg-mock|$PORT|${START}exec ./target/dist/dfdg-mock $ARGS"
DEFAULT=(nginx rust-static dfdg-mock)
if [[ -n "${BENCH_COMPARE:-}" ]]; then
  [[ -x "$BENCH_COMPARE" ]] || { echo "bench: BENCH_COMPARE=$BENCH_COMPARE is not an executable" >&2; exit 2; }
  TARGET+=$'\n'"compare|$((PORT + 1))|${START}exec $BENCH_COMPARE $ARGS"
  DEFAULT+=(compare)
fi
if [[ -n "${BENCH_POSTGRES:-}" ]]; then
  command -v haproxy >/dev/null || { echo "bench: BENCH_POSTGRES needs haproxy" >&2; exit 2; }
  PG=$(bench/postgres.sh start "$((PORT + 40))" one two ${BENCH_COMPARE:+three})
  trap 'bench/postgres.sh stop' EXIT
  TARGET+=$'\n'"dfdg-mock-pg|$((PORT + 2))|exec ./target/dist/dfdg-mock $ARGS --journal-url $PG/one"
  TARGET+=$'\n'"dfdg-mock-2x-pg|$((PORT + 3))|exec bench/replicas.sh {PORT} $PG/two $COMMON"
  DEFAULT+=(dfdg-mock-pg dfdg-mock-2x-pg)
  if [[ -n "${BENCH_COMPARE:-}" ]]; then
    TARGET+=$'\n'"compare-pg|$((PORT + 4))|exec $BENCH_COMPARE $ARGS --journal-url $PG/three"
    DEFAULT+=(compare-pg)
  fi
fi
export TARGET

if [[ $# -eq 0 ]]; then set -- "${DEFAULT[@]}"; fi
echo "bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -srm), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >&2
if [[ -n "${BENCH_POSTGRES:-}" ]]; then
  "$HARNESS/run.sh" "$@"
else
  exec "$HARNESS/run.sh" "$@"
fi
