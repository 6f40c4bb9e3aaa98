#!/usr/bin/env bash
# Scale benchmark (benchmark-style, not part of tests/run.sh): how many concurrent G.711 calls
# (50 packets/s each way, 172-byte RTP) a release-built mediation server relays with zero loss,
# with the gateway over MTLS and SRTP on both legs, as gateway-sim places and answers them on
# this same machine. For each N it starts a fresh server, ramps N calls up at SCALE_RAMP calls/s,
# measures SCALE_WINDOW seconds of steady state and prints one table row:
#
#   calls ok/failed, packets lost (both directions), server CPU (% of one core, and per call),
#   server RSS growth per call, and the simulators' CPU (they share the cores).
#
# It stops after the first N with loss or failures. Then it measures the call set-up rate over
# MTLS: SCALE_SETUP_SECS seconds of arrivals at each rate in SCALE_SETUP_RATES with short calls,
# reporting calls/s achieved and failures. Default run: about 4-5 minutes.
#
#   tests/scale.sh
#   SCALE_CALLS="500 1000" SCALE_WINDOW=20 tests/scale.sh
#   SCALE_SETUP_RATES= tests/scale.sh     # skip the set-up rate part
#   SCALE_CALLS= tests/scale.sh           # only the set-up rate part
#   SCALE_SERVER_WRAP="heaptrack -o /tmp/heap" SCALE_CALLS=500 tests/scale.sh   # heap profile
#                                         # (CPU and RSS figures are then the wrapper's)
#   SCALE_SERVER_BIN=/tmp/mediation.old tests/scale.sh   # another build of the server, for A/B
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${SCALE_CALLS-"100 500 1000 2000 3000 4000"}
ramp=${SCALE_RAMP:-250}
window=${SCALE_WINDOW:-10}
setup_rates=${SCALE_SETUP_RATES-"300 500 800"}
setup_secs=${SCALE_SETUP_SECS:-5}

# Four sockets per call on the server, two on each simulator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open files limit: $(ulimit -n)"

# SCALE_KEEP=1 keeps the logs and reports.
. tests/lab.sh
lab_init SCALE_KEEP
# Media ports below Linux's ephemeral range (where the simulators' sockets go): 5 600 calls.
lab_config 10000-32767 20000
LAB_SERVER_BIN=${SCALE_SERVER_BIN:-} LAB_SERVER_WRAP=${SCALE_SERVER_WRAP:-}

tck=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }

start_pair() { lab_start "$1" --timeout 30; sleep 0.5; }
stop_pair() { lab_stop; }
place_calls() { # $1 tag, $2 calls, $3 rate, $4 seconds per call
    lab_call "$1" --duration "$4" --calls "$2" --concurrency "$2" --rate "$3" --timeout 30
}
# Calls ok, failed and packets lost on both sides, and set-up figures, from the reports.
results() { # $1 tag
    python3 - "$lab/calls-$1.json" "$lab/nh-$1.json" <<'EOF'
import json, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {"calls": [], "summary": {}}
c, a = load(sys.argv[1]), load(sys.argv[2])
s = c.get("summary", {})
lost = sum(x.get("packets_lost", 0) for x in c["calls"]) + sum(x.get("packets_lost", 0) for x in a["calls"])
sent = sum(x.get("packets_sent", 0) for x in c["calls"]) + sum(x.get("packets_sent", 0) for x in a["calls"])
print(s.get("calls_ok", 0), s.get("calls_failed", 0), lost, sent,
      s.get("calls_per_second", 0), s.get("setup_ms_p50"), s.get("setup_ms_p99"))
EOF
}

if [ -n "$steps" ]; then
    echo
    echo "Concurrent calls, SRTP both legs, gateway over MTLS; ${window}s steady state each; ramp ${ramp} calls/s"
    printf '%6s %11s %9s %11s | %9s %12s %13s | %9s %11s | %8s\n' \
        calls ok/failed lost sent "srv CPU%" "CPU%/call" "us CPU/pkt" "RSS MiB" "KiB/call" "sim CPU%"
    for n in $steps; do
        tag="n$n"
        start_pair "$tag"
        rss0=$(rss "$server")
        fill=$(( (n + ramp - 1) / ramp + 3 ))
        place_calls "$tag" "$n" "$ramp" $((fill + window + 2))
        caller=$!
        sleep "$fill"
        t0=$(now_ms); s0=$(ticks "$server"); c0=$(ticks "$caller"); a0=$(ticks "$answer")
        sleep "$window"
        t1=$(now_ms); s1=$(ticks "$server"); c1=$(ticks "$caller"); a1=$(ticks "$answer")
        rss1=$(rss "$server")
        wait "$caller" || true
        stop_pair
        read -r ok failed lost sent _ _ _ < <(results "$tag")
        python3 - "$n" "$ok" "$failed" "$lost" "$sent" "$tck" "$t0" "$t1" "$s0" "$s1" \
            "$c0" "$c1" "$a0" "$a1" "$rss0" "$rss1" <<'EOF'
import sys
n, ok, failed, lost, sent, tck, t0, t1, s0, s1, c0, c1, a0, a1, r0, r1 = (int(x) for x in sys.argv[1:])
secs = (t1 - t0) / 1000
srv = 100.0 * (s1 - s0) / tck / secs
sim = 100.0 * ((c1 - c0) + (a1 - a0)) / tck / secs
# The server receives and sends 2 x 50 packets/s per call.
pkts = n * 100 * secs
us_per_pkt = 1e6 * (s1 - s0) / tck / pkts
print(f"{n:6d} {ok:>5d}/{failed:<5d} {lost:9d} {sent:11d} | {srv:9.1f} {srv / n:12.4f} {us_per_pkt:13.2f} | "
      f"{r1 / 1024:9.1f} {(r1 - r0) / n:11.1f} | {sim:8.1f}")
EOF
        if [ "$lost" != 0 ] || [ "$failed" != 0 ]; then
            echo "loss or failures at $n calls: stopping here"
            break
        fi
    done
fi

if [ -n "$setup_rates" ]; then
    echo
    echo "Call set-up rate over MTLS: ${setup_secs}s of arrivals per rate, 1-second calls with SRTP media"
    printf '%10s %7s %7s %12s %10s %10s\n' "asked/s" ok failed "achieved/s" "p50 ms" "p99 ms"
    for r in $setup_rates; do
        tag="r$r"
        start_pair "$tag"
        place_calls "$tag" $((r * setup_secs)) "$r" 1
        wait $! || true
        stop_pair
        read -r ok failed _ _ cps p50 p99 < <(results "$tag")
        printf '%10s %7s %7s %12s %10s %10s\n' "$r" "$ok" "$failed" "$cps" "$p50" "$p99"
    done
fi
