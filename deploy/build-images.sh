#!/usr/bin/env bash
# Builds the static executables and the two FROM-scratch images, the same way everywhere:
#   mediation:${TAG:-dev}          the service
#   mediation-tools:${TAG:-dev}    gateway-sim and certs
# Works offline: nothing is pulled (the images start FROM scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${TAG:-dev}"
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_DOCKER:-target/docker-build}"
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$TARGET" -p mediation -p gateway-sim -p certs
bin="$CARGO_TARGET_DIR/$TARGET/release"
ctx=target/docker-context
rm -rf "$ctx" && mkdir -p "$ctx/empty"
cp "$bin/mediation" "$bin/gateway-sim" "$bin/certs" "$ctx/"
strip "$ctx/mediation" "$ctx/gateway-sim" "$ctx/certs" 2>/dev/null || true
cp deploy/image/passwd deploy/image/group "$ctx/"
cp deploy/mediation.toml "$ctx/mediation.toml"
docker build -q --target mediation -t "mediation:$TAG" -f deploy/Dockerfile "$ctx"
docker build -q --target tools -t "mediation-tools:$TAG" -f deploy/Dockerfile "$ctx"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^mediation(-tools)?:$TAG "
