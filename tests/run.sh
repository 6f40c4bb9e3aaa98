#!/usr/bin/env bash
# The whole test suite: installs the outside peers the tests use when they are missing
# (SIPp, baresip, libsrtp, openssl, promtool, tshark from Debian), then builds and runs every
# test in the workspace. A test whose peer is missing fails; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip-core)
command -v promtool >/dev/null || need+=(prometheus)
command -v tshark >/dev/null || need+=(tshark)
[ -e /usr/lib/x86_64-linux-gnu/libsrtp2.so.1 ] || need+=(libsrtp2-1)
/usr/bin/python3 -c 'import pylibsrtp' 2>/dev/null || need+=(python3-pylibsrtp)
# The container test uses compose when a Docker Engine is here (it reports itself skipped,
# saying why, when there is none).
if docker info >/dev/null 2>&1; then
  command -v docker-compose >/dev/null || need+=(docker-compose)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing missing peers: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The structure: no import circles, and the sans-IO call layer imports no I/O (docs/design.md §3).
python3 .ci/import_cycles.py mediation/src --forbid call=transport,media,metrics,driver,service,http
python3 .ci/import_cycles.py gateway-sim/src
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
