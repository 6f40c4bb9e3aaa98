# Shared by tests/soak.sh and tests/scale.sh (sourced, not run): a release build, a throwaway
# lab PKI, and a mediation server with the gateway over MTLS and a gateway-sim next hop
# answering with SRTP, all on loopback.
#
#   lab_init KEEP_VAR      build, make $lab with the PKI, pick ports, set the EXIT trap
#                          (the lab is kept and named when $KEEP_VAR is set)
#   lab_config PORTS MAX   write $lab/mediation.toml (`gateway-sim lab-config`): media ports
#                          "first-last", max_calls
#   lab_start TAG [ANSWER_ARGS...]   start the next-hop answerer ($answer) and the server
#                          ($server), wait until the gateway TLS port listens
#   lab_stop               SIGTERM both and wait
#   lab_call TAG ARGS...   place calls from the MTLS gateway (background; $! is the caller)

lab_init() {
    local keep=${!1:-}
    cargo build --release --locked -p mediation -p gateway-sim -p certs >/dev/null
    bin=target/release
    lab=$(mktemp -d)
    lab_keep=$keep
    trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "$lab_keep" ] && echo "kept: $lab" || rm -rf "$lab"' EXIT
    "$bin/certs" init --out "$lab" >/dev/null
    nh=$(lab_free_port); gtls=$(lab_free_port); nh_listen=$(lab_free_port); metrics=$(lab_free_port)
}

lab_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

lab_config() { # $1 media ports "first-last", $2 max_calls
    "$bin/gateway-sim" lab-config --next-hop-listen "127.0.0.1:$nh_listen" \
        --next-hop "127.0.0.1:$nh" --gateway-tls "127.0.0.1:$gtls" \
        --gateway name=gw1,address=127.0.0.1:1,transport=tls,identity=gw1.example.test,options_interval_secs=0 \
        --media-ports "$1" --max-calls "$2" --max-pending-per-connection "$2" \
        --metrics "127.0.0.1:$metrics" --log-level warn >"$lab/mediation.toml"
}

answer=""; server=""
lab_start() { # $1 tag; the rest: more arguments for the answerer
    local tag=$1; shift
    "$bin/gateway-sim" answer --listen "127.0.0.1:$nh" --tls --cert "$lab/nexthop.pem" \
        --key "$lab/nexthop-key.pem" --ca "$lab/ca.pem" --srtp offer "$@" \
        --report "$lab/nh-$tag.json" >"$lab/nh-$tag.log" 2>&1 &
    answer=$!
    ${LAB_SERVER_WRAP:-} "${LAB_SERVER_BIN:-$bin/mediation}" run --config "$lab/mediation.toml" \
        >"$lab/mediation-$tag.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$gtls") 2>/dev/null && break
        sleep 0.1
    done
}

lab_stop() {
    kill -TERM "$answer" 2>/dev/null || true
    wait "$answer" 2>/dev/null || true
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}

lab_call() { # $1 tag; the rest: gateway-sim call arguments (--calls, --rate, --duration...)
    local tag=$1; shift
    "$bin/gateway-sim" call --target "127.0.0.1:$gtls" --to sip:+15551234@mediation.example.test \
        --transport tls --cert "$lab/gateway.pem" --key "$lab/gateway-key.pem" --ca "$lab/ca.pem" \
        --server-name mediation.example.test --srtp offer "$@" \
        --report "$lab/calls-$tag.json" >"$lab/calls-$tag.log" 2>&1 &
}

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
