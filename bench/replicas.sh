#!/usr/bin/env bash
# Two dfdg-mock replicas on one PostgreSQL journal behind haproxy in TCP mode (TLS passed through,
# as in compose.replicas.yaml), for bench/run.sh: the harness starts this as one target and
# measures the whole process tree (haproxy and both replicas).
#
#   bench/replicas.sh PORT URL SERVE-ARGS...   # haproxy on PORT, replicas on PORT+10 and PORT+11
set -euo pipefail
port=$1 url=$2; shift 2
work="${WORK:-${TMPDIR:-/tmp}}"
for n in 0 1; do
  ./target/dist/dfdg-mock serve --listen "127.0.0.1:$((port + 10 + n))" --replica "replica-$n" \
    --journal-url "$url" "$@" >"$work/replica-$n.log" 2>&1 &
done
cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 65s
    timeout server 65s
frontend soap
    bind 127.0.0.1:$port
    default_backend replicas
backend replicas
    balance leastconn
    server a 127.0.0.1:$((port + 10)) check inter 1s
    server b 127.0.0.1:$((port + 11)) check inter 1s
CFG
exec haproxy -db -f "$work/haproxy.cfg"
