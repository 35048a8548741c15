#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for bench/run.sh (BENCH_POSTGRES=1): Debian's binaries, a data
# folder under $BENCH_WORK/postgres, loopback only, PostgreSQL's default durability (every
# commit flushed to disk before it returns, as the journal's answers assume). Run as `nobody`
# when root (PostgreSQL refuses root).
#
#   bench/postgres.sh start PORT DB...   # initdb, start, create the databases; prints the base URL
#   bench/postgres.sh stop
set -euo pipefail
work="${BENCH_WORK:-${TMPDIR:-/tmp}/dfdg-bench}/postgres"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$bin/initdb" ]] || { echo "bench: no PostgreSQL server (apt-get install postgresql)" >&2; exit 2; }
as() { if [[ $(id -u) == 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    port=$2; shift 2
    "$0" stop >/dev/null 2>&1 || true
    rm -rf "$work" && mkdir -p "$work"
    [[ $(id -u) == 0 ]] && chown nobody "$work"
    as "$bin/initdb" -D "$work/data" -U dfdg -A trust -E UTF8 --no-instructions >/dev/null
    as "$bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 \
      -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null
    for db in "$@"; do
      "$bin/psql" -h 127.0.0.1 -p "$port" -U dfdg -d postgres -q -c "CREATE DATABASE $db"
    done
    echo "postgres://dfdg@127.0.0.1:$port"
    ;;
  stop)
    as "$bin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null
    ;;
  *) echo "usage: $0 start PORT DB... | stop" >&2; exit 2 ;;
esac
