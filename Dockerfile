# SocketDock's container image: the static binary on an empty base, as a non-root user.
#
#   make image     builds the binary with the local Go toolchain and copies it in (podman,
#                  or docker): nothing is pulled.
#   docker build --target from-source -t socketdock .
#                  builds the binary in a golang stage instead (needs that base image).
#
# The public listener binds every address; the control listener stays on loopback unless
# given a token: add --control-token-file (a mounted secret) and
# SOCKETDOCK_CONTROL_BINDIP=0.0.0.0 to reach it from outside the container.

FROM golang:1.26 AS builder
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/socketdock ./cmd/socketdock

FROM scratch AS from-source
COPY --from=builder /out/socketdock /socketdock
ENV SOCKETDOCK_BINDIP=0.0.0.0 SOCKETDOCK_CONTROL_BINDIP=127.0.0.1
USER 65532:65532
EXPOSE 8765 8766
ENTRYPOINT ["/socketdock"]

# The default: the binary `make image` built here.
FROM scratch
COPY bin/socketdock-static /socketdock
ENV SOCKETDOCK_BINDIP=0.0.0.0 SOCKETDOCK_CONTROL_BINDIP=127.0.0.1
USER 65532:65532
EXPOSE 8765 8766
ENTRYPOINT ["/socketdock"]
