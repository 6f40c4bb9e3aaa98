#!/usr/bin/env bash
# Soak test (benchmark-style, not part of tests/run.sh): churn through a release-built
# mediation server for SOAK_SECS seconds (default 600) at SOAK_RATE new calls per second
# (default 50), each call SOAK_CALL_SECS long (default 10: 500 calls at once), gateway over
# MTLS with SRTP on both legs. Prints failed calls, lost packets, and the server's RSS at the
# start, after warm-up (a fifth of the run) and at the end of the load.
#
#   tests/soak.sh                        # the full 10-minute run
#   SOAK_SECS=60 tests/soak.sh           # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SOAK_SECS:-600}
rate=${SOAK_RATE:-50}
call_secs=${SOAK_CALL_SECS:-10}
calls=$((secs * rate))
concurrency=$((rate * call_secs + rate))

# SOAK_KEEP=1 keeps the logs and reports.
. tests/lab.sh
lab_init SOAK_KEEP
lab_config 20000-29999 4000
lab_start soak

echo "soak: ${secs}s at ${rate} calls/s, ${call_secs}s each (${calls} calls, up to $((rate * call_secs)) at once)"
rss_start=$(rss "$server")
lab_call soak --duration "$call_secs" --calls "$calls" --concurrency "$concurrency" \
    --rate "$rate" --timeout 20
caller=$!
# Warm-up: the call population reaches its steady state after one call length; the allocator
# settles later. Measure growth from a fifth of the run (at least two call lengths).
warm=$((secs / 5)); [ $warm -lt $((call_secs * 2)) ] && warm=$((call_secs * 2))
sleep $warm
rss_warm=$(rss "$server")
peak=0
rss_last=$rss_warm
while kill -0 $caller 2>/dev/null; do
    now=$(rss "$server"); [ "$now" -gt "$peak" ] && peak=$now
    # The last reading while calls were still being placed (not during the final drain).
    kill -0 $caller 2>/dev/null && rss_last=$now
    sleep 5
done
wait $caller || true
rss_end=$(rss "$server")
python3 - "$lab/calls-soak.json" "$rss_start" "$rss_warm" "$rss_last" "$peak" "$rss_end" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s = r.get("summary", r)
start, warm, last, peak, end = (int(x) for x in sys.argv[2:7])
print(json.dumps({k: s.get(k) for k in ("calls_ok", "calls_failed", "packets_lost", "calls_per_second", "setup_ms_p50", "setup_ms_p99")}))
for c in r.get("calls", []):
    if c.get("error"):
        print("failed call:", c.get("call_id"), c.get("sip_status"), c.get("error"))
print(f"RSS KiB: start {start}, after warm-up {warm}, last under load {last}, peak {peak}, "
      f"after the calls {end}; growth under load after warm-up {100.0 * (last - warm) / warm:+.1f}%")
EOF
echo "server errors logged: $(grep -c '"level":"ERROR"' "$lab/mediation-soak.log" || true)"
