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

cargo build --release --locked -p mediation -p gateway-sim -p certs >/dev/null
bin=target/release
lab=$(mktemp -d)
# SOAK_KEEP=1 keeps the logs and reports for a look afterwards.
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${SOAK_KEEP:-}" ] && echo "kept: $lab" || rm -rf "$lab"' EXIT
"$bin/certs" init --out "$lab" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nh=$(free_port); gtls=$(free_port); nh_listen=$(free_port); metrics=$(free_port)
cat >"$lab/mediation.toml" <<EOF
[node]
name = "mediation.example.test"

[tls]
certificate = "mediation.pem"
private_key = "mediation-key.pem"
trusted_cas = "ca.pem"
crls = ["crl.pem"]

[next_hop]
listen = "127.0.0.1:$nh_listen"
address = "127.0.0.1:$nh"
identity = "frontend.example.test"
encryption = "required"

[gateway_listen]
tls = "127.0.0.1:$gtls"

[[gateway]]
name = "gw1"
address = "127.0.0.1:1"
transport = "tls"
identity = "gw1.example.test"
options_interval_secs = 0

[media]
bind = "127.0.0.1"
advertise = "127.0.0.1"
ports = "20000-29999"

[sip]
max_calls = 4000
max_pending_per_connection = 4000

[metrics]
listen = "127.0.0.1:$metrics"

[log]
format = "json"
level = "warn"
EOF

"$bin/gateway-sim" answer --listen "127.0.0.1:$nh" --tls --cert "$lab/nexthop.pem" \
    --key "$lab/nexthop-key.pem" --ca "$lab/ca.pem" --srtp offer --report "$lab/nh.json" \
    >"$lab/nh.log" 2>&1 &
answer=$!
"$bin/mediation" run --config "$lab/mediation.toml" >"$lab/mediation.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$gtls") 2>/dev/null && break
    sleep 0.1
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
echo "soak: ${secs}s at ${rate} calls/s, ${call_secs}s each (${calls} calls, up to $((rate * call_secs)) at once)"
rss_start=$(rss)
"$bin/gateway-sim" call --target "127.0.0.1:$gtls" --to sip:+15551234@mediation.example.test \
    --transport tls --cert "$lab/gateway.pem" --key "$lab/gateway-key.pem" --ca "$lab/ca.pem" \
    --server-name mediation.example.test --srtp offer --duration "$call_secs" \
    --calls "$calls" --concurrency "$concurrency" --rate "$rate" --timeout 20 \
    --report "$lab/calls.json" >"$lab/calls.log" 2>&1 &
caller=$!
# Warm-up: the call population reaches its steady state after one call length; the allocator
# settles later. Measure growth from a fifth of the run (at least two call lengths).
warm=$((secs / 5)); [ $warm -lt $((call_secs * 2)) ] && warm=$((call_secs * 2))
sleep $warm
rss_warm=$(rss)
peak=0
rss_last=$rss_warm
while kill -0 $caller 2>/dev/null; do
    now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
    # The last reading while calls were still being placed (not during the final drain).
    kill -0 $caller 2>/dev/null && rss_last=$now
    sleep 5
done
wait $caller || true
rss_end=$(rss)
python3 - "$lab/calls.json" "$rss_start" "$rss_warm" "$rss_last" "$peak" "$rss_end" <<'EOF'
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
echo "server errors logged: $(grep -c '"level":"ERROR"' "$lab/mediation.log" || true)"
