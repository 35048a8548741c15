# dfdg-mock: an offline mock of STAR's DFDG/Jobnet SOAP webservices over mutual TLS.
#
#   docker build -t dfdg-mock .
#   docker run --rm -p 127.0.0.1:8443:8443 -v dfdg-mock-data:/data dfdg-mock
#
# Stages: `builder` compiles from source in the official Rust image; `runtime` (the default, the
# last stage) is debian:bookworm-slim with that binary and nothing else. Where a Rust image
# cannot be pulled (offline or air-gapped CI), build the binary on the host and feed it to the
# `prebuilt` stage instead, which is the same runtime image:
#
#   cargo build --profile dist --locked
#   docker build --target prebuilt -t dfdg-mock .
#
# The host must be glibc 2.36 or older (Debian 12, Ubuntu 22.04) for that binary to run here.
# Strip it first (`strip --strip-debug`, or name a stripped copy with PREBUILT_BINARY) for a
# small image: the dist profile (release with fat LTO, Cargo.toml) keeps line tables, about 47 MB
# of them.
# BuildKit and buildah build only the stages the target needs: `--target prebuilt` never
# touches the Rust image.

# The host-built binary, for --target prebuilt; a path in the build context.
ARG PREBUILT_BINARY=target/dist/dfdg-mock

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
# The slim Rust image has gcc and libc6-dev, which ring and the bundled SQLite need.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# WSB's message catalog and example receiver, embedded in the binary (include_str!).
COPY wsb ./wsb
# The workspace's other member (the test runner): cargo needs its manifest to load the workspace.
COPY xtask ./xtask
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin dfdg-mock \
    && install -D -m 0755 target/dist/dfdg-mock /out/dfdg-mock \
    && strip --strip-debug /out/dfdg-mock

# Everything of the runtime image but the binary.
FROM debian:bookworm-slim AS base
LABEL org.opencontainers.image.title="dfdg-mock" \
      org.opencontainers.image.description="Offline mock of STAR's DFDG/Jobnet SOAP webservices over mutual TLS" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
# A fixed, unprivileged user; /data belongs to it so that a named volume starts writable (also
# one mounted on /data/certs or /data/shared, as compose.replicas.yaml does).
# /etc/dfdg-mock is for read-only mounts (config file, wsdl/, scenarios/).
RUN groupadd --gid 10001 dfdg-mock \
    && useradd --uid 10001 --gid dfdg-mock --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin dfdg-mock \
    && mkdir -p /data/certs /data/shared /etc/dfdg-mock \
    && chown -R dfdg-mock:dfdg-mock /data

# Container defaults; every one can be overridden with -e. In a container the listener must
# take connections from outside, so it binds all interfaces; the server certificate also
# covers the service name a CI job or compose file uses (dfdg-mock). The shutdown drain stays
# under `docker stop`'s 10 s grace period, so a stop is always clean.
ENV DFDG_MOCK_LISTEN=0.0.0.0:8443 \
    DFDG_MOCK_CERTS_DIR=/data/certs \
    DFDG_MOCK_JOURNAL=/data/journal.sqlite \
    DFDG_MOCK_SUPPLIERS=/data/suppliers.toml \
    DFDG_MOCK_SERVER_NAMES=dfdg-mock,localhost \
    DFDG_MOCK_SHUTDOWN_DRAIN=5s \
    DFDG_MOCK_WSDL=/usr/share/dfdg-mock/wsdl \
    DFDG_MOCK_SCENARIOS=/usr/share/dfdg-mock/scenarios

# The shipped catalog and scenarios; mount your own over /etc/dfdg-mock and point
# DFDG_MOCK_WSDL / DFDG_MOCK_SCENARIOS at them to replace these.
COPY wsdl /usr/share/dfdg-mock/wsdl
COPY scenarios /usr/share/dfdg-mock/scenarios

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# SOAP over mutual TLS.
EXPOSE 8443
# The admin listener (JSON API, dashboard, metrics). It stays on the container's loopback unless
# DFDG_MOCK_ADMIN_LISTEN=0.0.0.0:8080 is set, and then it refuses to start without a token:
# DFDG_MOCK_ADMIN_TOKEN or DFDG_MOCK_ADMIN_TOKEN_FILE (e.g. /data/admin-token, a secret).
EXPOSE 8080

# The slim image has no curl: the binary probes itself over mutual TLS with the demo client
# certificate from /data/certs (exit 0 when GET / answers 200).
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
    CMD ["dfdg-mock", "health", "--timeout", "4s"]

# dfdg-mock handles SIGTERM itself as PID 1: it stops accepting, drains open calls for up to
# DFDG_MOCK_SHUTDOWN_DRAIN (5s here), flushes the journal and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dfdg-mock"]
CMD ["serve"]

# The runtime image with a binary built on the host (docker build --target prebuilt).
FROM base AS prebuilt
ARG PREBUILT_BINARY
COPY ${PREBUILT_BINARY} /usr/local/bin/dfdg-mock

# The runtime image with the binary built from source above: the default target.
FROM base AS runtime
COPY --from=builder /out/dfdg-mock /usr/local/bin/dfdg-mock
