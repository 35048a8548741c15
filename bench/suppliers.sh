#!/usr/bin/env bash
# bench/suppliers.sh N CLIENT.crt: prints a supplier registry of N suppliers for bench/run.sh
# (BENCH_SUPPLIERS=N), as a shared rehearsal server holds: N-1 with made-up caller ids, then
# the one owning CLIENT.crt (registered by its fingerprint and CVR), last.
set -euo pipefail
[[ $# -eq 2 && "$1" =~ ^[1-9][0-9]*$ && -f "$2" ]] || { echo "usage: bench/suppliers.sh N CLIENT.crt" >&2; exit 2; }
N=$1
FINGERPRINT=$(openssl x509 -in "$2" -noout -fingerprint -sha256 | sed 's/.*=//')
CVR=$(openssl x509 -in "$2" -noout -subject | grep -oE 'NTRDK-[0-9]{8}' | head -1 | sed 's/NTRDK-//')
awk -v n="$N" -v fingerprint="$FINGERPRINT" -v cvr="${CVR:-12345678}" 'BEGIN {
  for (i = 1; i < n; i++)
    printf "[[supplier]]\nname = \"Leverandør %d ApS\"\ncvr = \"9%07d\"\ncategory = \"large\"\nidentities = [\"CVR:9%07d-UUID:00000000-6b5e-4ae0-8473-%012d\"]\nservices = [\"JobcenterMessageService\"]\n\n", i, i, i, i
  printf "[[supplier]]\nname = \"Bench ApS\"\ncvr = \"%s\"\ncategory = \"large\"\nidentities = [\"SHA256:%s\"]\nservices = [\"JobcenterMessageService\"]\n", cvr, fingerprint
}'
