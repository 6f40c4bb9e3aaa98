#!/usr/bin/env bash
# Builds the static executables and the two FROM-scratch images, the same way everywhere
# (a laptop, CI, an air-gapped build host: nothing is pulled, the images start FROM scratch):
#   ${IMAGE_PREFIX}mediation:${TAG}         the service
#   ${IMAGE_PREFIX}mediation-tools:${TAG}   gateway-sim and certs
#
#   deploy/build-images.sh                                              # mediation:dev, offline
#   IMAGE_PREFIX=registry.example.com/voice/ TAG=1.4.0 deploy/build-images.sh
#
# Environment:
#   TAG                     image tag (default: dev)
#   IMAGE_PREFIX            registry/namespace prefix, with its trailing slash (default: none)
#   CARGO_TARGET_DIR_DOCKER cargo target directory of the static build (default:
#                           target/docker-build; kept between runs, so a rebuild is quick)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${TAG:-dev}"
PREFIX="${IMAGE_PREFIX:-}"
TARGET=x86_64-unknown-linux-gnu

# Static executables: glibc linked in (+crt-static), so the image needs no libc. Host names
# still resolve: static glibc's getaddrinfo reads the /etc/hosts and /etc/resolv.conf Docker
# puts in every container (compose service names work), without NSS modules.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_DOCKER:-target/docker-build}"
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$TARGET" -p mediation -p gateway-sim -p certs
bin="$CARGO_TARGET_DIR/$TARGET/release"

# The build context: the three executables and the files the Dockerfile copies, nothing else.
ctx=target/docker-context
rm -rf "$ctx" && mkdir -p "$ctx/empty"
cp "$bin/mediation" "$bin/gateway-sim" "$bin/certs" "$ctx/"
if command -v strip >/dev/null; then strip "$ctx/mediation" "$ctx/gateway-sim" "$ctx/certs"; fi
cp deploy/image/passwd deploy/image/group "$ctx/"
cp deploy/mediation.toml "$ctx/mediation.toml"

revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for stage_image in mediation:mediation tools:mediation-tools; do
    stage="${stage_image%%:*}" name="${PREFIX}${stage_image#*:}"
    docker build -q --target "$stage" -t "$name:$TAG" \
        --label "org.opencontainers.image.version=$TAG" \
        --label "org.opencontainers.image.revision=$revision" \
        -f deploy/Dockerfile "$ctx" >/dev/null
done

# They start in an empty filesystem (a dynamically linked executable would fail here).
docker run --rm --network none "${PREFIX}mediation:$TAG" --version
docker run --rm --network none "${PREFIX}mediation-tools:$TAG" --version
docker run --rm --network none --entrypoint /usr/local/bin/certs "${PREFIX}mediation-tools:$TAG" --version

for name in "${PREFIX}mediation:$TAG" "${PREFIX}mediation-tools:$TAG"; do
    bytes="$(docker image inspect -f '{{.Size}}' "$name")"
    echo "$name $((bytes / 1000)) kB"
done
