# syntax=docker/dockerfile:1
#
# Images of rotor's example, each holding one static binary and nothing else:
#
#   docker build -t rotor-example-server:dev .                   # the server (the last stage)
#   docker build -t rotor-example-client:dev --target client .   # the client
#
# Both run as the non-root user 65532 on a distroless static base, with no
# shell, and suit a read-only root file system. example/k8s runs them.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags="-s -w" -o /out/server ./example/server && \
	CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath -ldflags="-s -w" -o /out/client ./example/client

FROM gcr.io/distroless/static-debian12:nonroot AS client
COPY --from=build /out/client /client
USER 65532:65532
ENTRYPOINT ["/client"]

FROM gcr.io/distroless/static-debian12:nonroot AS server
COPY --from=build /out/server /server
USER 65532:65532
# gRPC, REST (grpc-gateway), admin (/metrics, POST /rotate, /stats).
EXPOSE 50051 8080 9090
ENTRYPOINT ["/server"]
