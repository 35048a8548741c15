#!/usr/bin/env bash
# Container smoke test, run by .ci/run: build the image (its runtime stage fed with the binary
# built on the host, since a Rust builder image cannot be pulled here), start it on a fresh
# volume, wait until healthy, make a SOAP call over mutual TLS with the client certificate taken
# from the volume, read the call back with `dfdg-mock calls` inside the container, stop it with
# SIGTERM and check it exits 0 promptly, then start it again on the same volume (with one more
# server name) and check that the CA and the journal survived and the server certificate was
# reissued for the new name; stop it with a call in flight, which must still be answered and
# journaled. Prints the timings.
#
# Usage: tests/container/smoke.sh   (needs root, curl, openssl; target/release/dfdg-mock is
# built when missing). Podman comes from ../shared/tools/setup-podman.sh (relative to the repo
# root; override with DFDG_MOCK_SETUP_PODMAN).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

setup=${DFDG_MOCK_SETUP_PODMAN:-$root/../shared/tools/setup-podman.sh}
image=localhost/dfdg-mock:smoke
name=dfdg-mock-smoke-$$
healthy_within=30 # seconds
stop_within=5     # seconds; the image's drain limit is 5 s and nothing is in flight

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
step() { echo "smoke: $*"; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

[ -f "$setup" ] || fail "cannot set up podman: $setup does not exist (see ../shared/docs/containers.md)"
command -v curl >/dev/null || fail "curl is needed"
command -v openssl >/dev/null || fail "openssl is needed"

# shellcheck disable=SC1091
if command -v podman >/dev/null && [ -f /tmp/podman/env.sh ] \
  && (. /tmp/podman/env.sh && podman image exists localhost/debian:bookworm-slim); then
  . /tmp/podman/env.sh
else
  step "setting up podman with $setup"
  bash "$setup" >/dev/null
  . /tmp/podman/env.sh
fi

# SMOKE_BINARY: the host-built binary to put in the image (CI passes the debug build that
# `cargo test` already made, to save a release build; behaviour is the same).
binary=${SMOKE_BINARY:-target/release/dfdg-mock}
if [ ! -x "$binary" ]; then
  step "building the release binary"
  cargo build --release --locked --bin dfdg-mock
  binary=target/release/dfdg-mock
fi
# The image gets the binary without its line tables, as the Dockerfile's builder stage does.
mkdir -p target/container
if command -v strip >/dev/null; then
  strip --strip-debug -o target/container/dfdg-mock "$binary"
else
  cp "$binary" target/container/dfdg-mock
fi

data=$(mktemp -d /tmp/dfdg-mock-smoke.XXXXXX)
cleanup() {
  podman rm -f -t 0 "$name" "$name-2" >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------------------------
t=$(now)
podman build --pull=never --format docker --target prebuilt \
  --build-arg PREBUILT_BINARY=target/container/dfdg-mock -t "$image" . >/dev/null
build_time=$(since "$t")
size=$(podman image inspect -f '{{.Size}}' "$image")
step "image built in ${build_time}s, $((size / 1000 / 1000)) MB ($size bytes)"
[ "$(podman image inspect -f '{{.Config.User}}' "$image")" = "10001:10001" ] || fail "the image does not run as user 10001"
healthcheck=$(podman image inspect -f '{{.Config.Healthcheck.Test}}' "$image")
grep -q 'dfdg-mock health' <<<"$healthcheck" || fail "the image has no HEALTHCHECK (built without --format docker?)"

# --- start, wait until healthy ---------------------------------------------------------------
# Starts container $1 on the volume with extra `podman run` arguments; waits until it answers a
# mutual-TLS GET / from the host (sets $answer_time) and until `podman healthcheck run` passes
# (sets $start_time); sets $port.
start() {
  local container=$1; shift
  local t; t=$(now)
  podman run -d --pull=never --name "$container" -p 127.0.0.1::8443 -v "$data:/data:U" "$@" "$image" >/dev/null
  port=$(podman port "$container" 8443/tcp | head -n 1 | sed 's/.*://')
  local deadline=$(( EPOCHSECONDS + healthy_within ))
  check_running() {
    if [ "$(podman inspect -f '{{.State.Running}}' "$container")" != true ]; then
      podman logs "$container" >&2 || true
      fail "$container exited before it became healthy"
    fi
    if [ "$EPOCHSECONDS" -ge "$deadline" ]; then
      podman logs "$container" >&2 || true
      fail "$container is not healthy after ${healthy_within}s"
    fi
  }
  until [ -s "$data/certs/demo-client.key" ] && curl -sf -o /dev/null --max-time 2 \
      --cacert "$data/certs/ca.crt" --cert "$data/certs/demo-client.crt" \
      --key "$data/certs/demo-client.key" "https://localhost:$port/" 2>/dev/null; do
    check_running
    sleep 0.05
  done
  answer_time=$(since "$t")
  until podman healthcheck run "$container" >/dev/null 2>&1; do
    check_running
    sleep 0.1
  done
  start_time=$(since "$t")
  step "$container answering ${answer_time}s and healthy ${start_time}s after podman run (https://localhost:$port)"
}

# Sends SIGTERM (podman stop) to container $1 and checks it exits 0 within $2 (default
# $stop_within) seconds; sets $stop_time.
stop() {
  local container=$1 limit=${2:-$stop_within}
  local t; t=$(now)
  podman stop -t 10 "$container" >/dev/null
  stop_time=$(since "$t")
  local code; code=$(podman inspect -f '{{.State.ExitCode}}' "$container")
  [ "$code" = 0 ] || { podman logs "$container" >&2; fail "$container exited with $code after SIGTERM"; }
  awk -v s="$stop_time" -v m="$limit" 'BEGIN { exit !(s < m) }' \
    || fail "$container took ${stop_time}s to stop (limit ${limit}s)"
  local logs; logs=$(podman logs "$container" 2>&1)
  grep -q 'stopped' <<<"$logs" || fail "$container did not log a clean stop: $logs"
  step "$container stopped by SIGTERM in ${stop_time}s with exit code 0"
}

start "$name"
first_answer=$answer_time
first_healthy=$start_time
logs=$(podman logs "$name" 2>&1)
grep -q "created a test PKI in /data/certs" <<<"$logs" || fail "no first-start banner: $logs"
podman exec "$name" dfdg-mock health

# --- the PKI in the volume -------------------------------------------------------------------
certs=$data/certs
for file in ca.crt ca.key server.crt server.key demo-client.crt demo-client.key demo-client-java.p12 demo-client-dotnet.p12 demo-request.xml; do
  [ -s "$certs/$file" ] || fail "$certs/$file is missing"
done
for p12 in demo-client-java.p12 demo-client-dotnet.p12; do
  openssl pkcs12 -in "$certs/$p12" -passin pass:dfdg-mock -nokeys -noout \
    || fail "$p12 does not open with the documented password"
done
sans=$(openssl x509 -in "$certs/server.crt" -noout -ext subjectAltName)
for want in DNS:localhost DNS:dfdg-mock; do
  grep -q "$want" <<<"$sans" || fail "the server certificate lacks $want: $sans"
done
ca_fingerprint=$(openssl x509 -in "$certs/ca.crt" -noout -fingerprint -sha256)
step "PKI in the volume; server certificate $(tr -d ' \n' <<<"$sans" | sed 's/X509v3SubjectAlternativeName://')"

# --- one call over mutual TLS, read back ---------------------------------------------------
# POSTs the demo request file $1 over mutual TLS (extra curl arguments after it); prints the
# answer.
call() {
  local body=$1; shift
  curl -sS --fail-with-body --max-time 20 "$@" \
    --cacert "$certs/ca.crt" --cert "$certs/demo-client.crt" --key "$certs/demo-client.key" \
    -H 'Content-Type: text/xml; charset=utf-8' \
    -H 'SOAPAction: "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment"' \
    --data-binary @"$body" \
    "https://localhost:$port/JobcenterMessageService/2/JobcenterMessageService.svc"
}
receipt_of() { sed -n 's:.*<MessageIdentifier>\([^<]*\)</MessageIdentifier>.*:\1:p' <<<"$1"; }

answer=$(call "$certs/demo-request.xml") || fail "the SOAP call failed: $answer"
receipt=$(receipt_of "$answer")
[ -n "$receipt" ] || fail "no MessageIdentifier in the answer: $answer"
step "SOAP call answered with receipt $receipt"
calls=$(podman exec "$name" dfdg-mock calls --json --caller 91234567)
grep -q "$receipt" <<<"$calls" || fail "the journal does not hold the call: $calls"
step "journal holds the call: $(grep -o '"caller_id":"[^"]*"' <<<"$calls" | head -n 1)"
# The image's shipped catalog routed it, and a shipped scenario rule answered it.
grep -q '"service":"JobcenterMessageService"' <<<"$calls" \
  || fail "the call was not routed by the image's WSDL catalog: $calls"
grep -q '"scenario_file":"onboarding.toml"' <<<"$calls" \
  || fail "the call was not answered by the image's shipped scenarios: $calls"
step "routed by the shipped catalog, answered by the shipped scenarios"

stop "$name"
first_stop=$stop_time

# --- again, on the same volume, with one more server name ------------------------------------
start "$name-2" -e DFDG_MOCK_SERVER_NAMES=dfdg-mock,localhost,mock.ci.example
second_answer=$answer_time
second_healthy=$start_time
[ "$(openssl x509 -in "$certs/ca.crt" -noout -fingerprint -sha256)" = "$ca_fingerprint" ] \
  || fail "the CA changed on restart"
sans=$(openssl x509 -in "$certs/server.crt" -noout -ext subjectAltName)
grep -q DNS:mock.ci.example <<<"$sans" || fail "the server certificate was not reissued for the new name"
logs=$(podman logs "$name-2" 2>&1)
grep -q "renewed certificates" <<<"$logs" || fail "no renewal in the banner: $logs"
step "restart: same CA ($ca_fingerprint), server certificate reissued with mock.ci.example"
calls=$(podman exec "$name-2" dfdg-mock calls --json)
grep -q "$receipt" <<<"$calls" || fail "the first call is gone after restart: $calls"
step "restart: the first call is still in the journal"

# SIGTERM while a call is in flight: its upload (12 kB at 4 kB/s) outlasts the stop request, and
# the drain lets it finish, get its receipt and reach the journal before the process exits 0.
slow=$data/slow-request.xml
{ cat "$certs/demo-request.xml"; printf '%*s\n' 12000 ''; } >"$slow"
call "$slow" --limit-rate 4k >"$slow.answer" 2>&1 &
in_flight=$!
sleep 0.5 # the connection is made and the upload under way
stop "$name-2" $((stop_within + 5))
wait "$in_flight" || fail "the call in flight during SIGTERM failed: $(cat "$slow.answer")"
late_receipt=$(receipt_of "$(cat "$slow.answer")")
[ -n "$late_receipt" ] || fail "no receipt for the call in flight: $(cat "$slow.answer")"
calls=$(podman run --rm --pull=never -v "$data:/data:U" "$image" calls --json)
grep -q "$late_receipt" <<<"$calls" || fail "the call answered during the drain is not in the journal"
step "a call in flight during SIGTERM was answered ($late_receipt) and journaled before exit"

echo
echo "smoke: OK"
printf 'smoke: %-40s %ss\n' "image build (prebuilt binary)" "$build_time" \
  "first start: run to answering (curl)" "$first_answer" \
  "first start: run to healthy" "$first_healthy" \
  "first stop (SIGTERM, exit 0)" "$first_stop" \
  "restart: run to answering (curl)" "$second_answer" \
  "restart: run to healthy" "$second_healthy" \
  "second stop (SIGTERM, a call in flight)" "$stop_time"
printf 'smoke: %-40s %s MB\n' "image size" "$((size / 1000 / 1000))"
