#!/usr/bin/env bash
# Builds every fuzz target with cargo-fuzz (libFuzzer, AddressSanitizer, debug assertions) and
# runs each for SECONDS (default 30) on a copy of its committed seed corpus. Fails on the first
# crash, leak, timeout or out-of-memory; the failing input is left in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS]        # all targets
#   TARGETS="sdp_crypto" fuzz/run.sh 60
#
# The toolchain is stable Rust: cargo-fuzz's nightly-only flags (-Zsanitizer, sancov passes) are
# allowed with RUSTC_BOOTSTRAP=1, which is set for the cargo-fuzz invocations only. Needs
# `cargo install cargo-fuzz --locked` and a C++ compiler (libfuzzer-sys builds libFuzzer).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
targets="${TARGETS:-sip_message sip_stream sdp_rewrite sdp_crypto rtp_headers srtp_unprotect}"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "fuzz/run.sh: cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 2; }

start=$SECONDS
# cargo-fuzz has no --locked: check here that fuzz/Cargo.lock is complete and current.
cargo metadata --locked --format-version 1 >/dev/null
cargo fuzz build -O
echo "fuzz/run.sh: build took $((SECONDS - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for target in $targets; do
  # New inputs go to a scratch corpus; the committed seeds stay as they are.
  mkdir -p "$work/$target" "artifacts/$target"
  log="$work/$target.log"
  echo "fuzz/run.sh: $target for ${seconds}s"
  if cargo fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" | sed "s/^/  $target /" || true
    grep -E '^#[0-9]+ +DONE' "$log" | tail -1 | sed "s/^/  $target /" || true
  else
    status=1
    echo "fuzz/run.sh: $target FAILED; last lines of its log:" >&2
    tail -n 60 "$log" >&2
    ls -1 "artifacts/$target" >&2 || true
  fi
done
exit $status
