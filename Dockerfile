# syntax=docker/dockerfile:1
#
# Herald's container image: a static, stripped binary on distroless "static" (no shell, no libc),
# running as uid 65532 with its SQLite data directory on the /data volume. docs/deploy.md says how
# to build and run it:
#
#   docker build -t herald:dev .
#   docker build --build-arg VERSION=1.2.3 -t herald:1.2.3 .
#   docker run -d -p 127.0.0.1:8080:8080 -v herald-data:/data \
#     -e HERALD_ENCRYPTION_KEY="$(openssl rand -base64 32)" herald:dev
#
# The build needs BuildKit (the default builder of Docker 23 and later) for its cache mount.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The SQLite driver (modernc.org/sqlite) is pure Go, so the binary needs no C library: CGO off
# makes it static. GOTOOLCHAIN=local: build with this image's Go, never download another.
# GOFLAGS=-mod=mod: resolve from go.mod and go.sum (there is no vendor directory).
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
# The modules in a layer of their own, which Docker keeps while go.mod and go.sum stay the same:
# rebuilding after a change of code fetches nothing. A GOPROXY build argument, if given, names
# the module proxy to download from.
ARG GOPROXY
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=0.1.0-dev
# GOPROXY=off: the build itself runs offline, from the module cache of the layer above.
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOPROXY=off go build -trimpath \
      -ldflags "-s -w -X github.com/heraldhq/herald/internal/node.Version=${VERSION}" \
      -o /out/herald ./cmd/herald \
 && /out/herald version \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# distroless static holds CA certificates (Herald sends HTTPS), time zones, /tmp, and the user
# nonroot (65532); it has no shell, so the health check is Herald's own subcommand.
COPY --from=build /out/herald /herald
# /data owned by Herald's user, so that a new volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HERALD_ADDR=:8080 \
    HERALD_DATA_DIR=/data \
    HERALD_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/herald", "healthcheck", "--timeout", "4s"]
ENTRYPOINT ["/herald"]
CMD ["serve"]
