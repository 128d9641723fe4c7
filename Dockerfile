# The transfer service as a small runtime image. Build:  docker build -t transfer-service .
# Configuration is by the service's environment variables (README.md, "Configuration"), e.g.
#   docker run -p 8080:8080 -e KAFKA_BOOTSTRAP_SERVERS=kafka:9092 -e REDIS_HOST=redis transfer-service

# Build stage: the official Swift image on the same Debian release as the runtime stage, so the binary links
# against the same glibc and the same C library versions it finds at run time.
FROM swift:6.3-bookworm AS build

# Headers and pkg-config files of the three C libraries the wrappers link (rdkafka, hiredis, libmicrohttpd).
# Versions are not pinned (DL3008): the package names fix the ABI, and exact Debian revisions would break the
# build whenever bookworm-security ships a fix, which we want.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka-dev libhiredis-dev libmicrohttpd-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The manifest alone first, so resolved packages stay a cached layer while only the sources change.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# Static Swift standard library (and Foundation): the runtime stage needs no Swift runtime. Stripping drops the
# symbol tables, which only a debugger needs.
RUN swift build -c release --static-swift-stdlib --product transfer-service \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/transfer-service" /out/transfer-service \
 && strip /out/transfer-service

# Runtime stage: Debian slim, the same release as the build stage, and only the shared libraries the binary
# loads (the three C libraries; apt adds what they need, such as libssl3, libsasl2-2 and libgnutls30).
FROM debian:bookworm-slim

# Unpinned for the same reason as above (DL3008). `apt-get clean` drops apt's package caches (80 MB) in case the
# base image does not. A user with a fixed numeric id and no home or shell: the service needs no privileges, and
# a numeric USER lets orchestrators verify "runAsNonRoot".
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libmicrohttpd12 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && useradd --no-log-init --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin transfer

COPY --from=build /out/transfer-service /usr/local/bin/transfer-service

USER 10001:10001
EXPOSE 8080
# The binary's own probe (GET /healthz on 127.0.0.1:$HTTP_PORT, exit 0 on 200), so the image needs no curl.
# Set the port with HTTP_PORT rather than --http-port, so that the probe sees it too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["transfer-service", "healthcheck"]
# Exec form: the service is PID 1 and receives SIGTERM itself; it stops gracefully within 10 s.
ENTRYPOINT ["transfer-service"]
