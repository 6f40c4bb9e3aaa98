//! One call, two address families: an IPv4 gateway and an IPv6 internal next hop share a call
//! through a real `mediation` process, in both call directions. The next hop is a `gateway-sim`
//! listening only on `[::1]` over MTLS with its media socket on `::1`; the gateway (gw1) is a
//! `gateway-sim` over MTLS on `127.0.0.1`, both offering or accepting SRTP.
//!
//! What this proves, as a user would check it: the call completes; audio flows both ways with
//! nothing lost and every payload intact in both simulators' own reports (which can only
//! happen if the relay sent IPv6 datagrams to the `::1` socket and IPv4 ones to the
//! `127.0.0.1` one); the next-hop leg is SRTP and the gateway leg SRTP as the encryption rules
//! say for a verified MTLS gateway (docs/design.md §2), both seen on the wire (no plaintext);
//! mediation's `/metrics` counts the call as any encrypted call; and mediation's SIP trace shows
//! each leg written in its peer's family — `c=IN IP6 ::1` and an `[::1]` Via toward the next
//! hop, `c=IN IP4 127.0.0.1` toward the gateway.

use std::time::{Duration, Instant};

use e2e::{http_get, sample, Caller, Lab, Mediation, Setup, Sim};
use serde_json::Value;

/// The SIP messages mediation logged (debug level) as `direction` (`sent`, `received`). Its
/// trace event has two `message` fields, "SIP message" and then the text; the text is the one
/// a JSON reader keeps.
fn sip_trace(log: &str, direction: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "mediation::sip::trace" && v["fields"]["direction"] == direction)
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

/// The first message in `messages` whose start line begins with `start` and whose CSeq names
/// `method`.
fn find<'a>(messages: &'a [String], start: &str, method: &str, context: &str) -> &'a str {
    messages
        .iter()
        .find(|m| {
            m.starts_with(start)
                && m.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("cseq:") && l.trim_end().ends_with(method)
                })
        })
        .unwrap_or_else(|| panic!("no `{start}` ({method}) in mediation's SIP trace\n{context}"))
}

/// One side's report: one call, answered, SRTP on the wire, every payload intact, audio
/// received and nothing lost.
fn assert_srtp_call(who: &str, ok: bool, report: &Value) {
    assert!(ok, "{who}: the simulator reports a failure: {report:#}");
    let calls = report["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{who}: one call: {report:#}");
    let call = &calls[0];
    assert_eq!(call["sip_status"].as_u64(), Some(200), "{who}: {report:#}");
    assert_eq!(call["error"], Value::Null, "{who}: {report:#}");
    assert_eq!(call["media_profile"], "RTP/SAVP", "{who}: {report:#}");
    assert_eq!(call["wire_encrypted"], true, "{who}: {report:#}");
    assert_eq!(call["payload_ok"], true, "{who}: {report:#}");
    assert_eq!(
        call["srtp_auth_failures"].as_u64(),
        Some(0),
        "{who}: {report:#}"
    );
    // 2 s of 20 ms packets: about 100; well above what a call with one-way audio would get.
    assert!(
        call["packets_sent"].as_u64().unwrap_or(0) > 40,
        "{who}: {report:#}"
    );
    assert!(
        call["packets_received"].as_u64().unwrap_or(0) > 40,
        "{who}: {report:#}"
    );
    assert_eq!(call["packets_lost"].as_u64(), Some(0), "{who}: {report:#}");
}

/// Mediation's metrics once the call is over: one gw1 call in `direction`, SRTP on the
/// gateway leg because gw1 is a verified MTLS gateway, SRTP packets relayed both ways on both
/// legs, no plain RTP anywhere, nothing dropped, no call left.
fn assert_metrics(m: &Mediation, direction: &str) -> String {
    // The relay adds its counts once a second and at call end: wait a bounded time for the
    // call to be counted.
    let call = format!(
        "mediation_calls_total{{direction=\"{direction}\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = http_get(m.ports.metrics, "/metrics");
        if sample(&metrics, &call) >= 1.0 || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let v = |s: &str| sample(&metrics, s);
    assert_eq!(v(&call), 1.0, "{call}\n{metrics}");
    assert_eq!(
        v("mediation_gateway_media_decisions_total{gateway=\"gw1\",gateway_media=\"srtp\",reason=\"verified_mtls\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        v("mediation_active_calls{gateway_media=\"srtp\"}"),
        0.0,
        "{metrics}"
    );
    for leg in ["gateway", "next_hop"] {
        for dir in ["in", "out"] {
            let srtp = v(&format!(
                "mediation_media_packets_total{{direction=\"{dir}\",leg=\"{leg}\",protection=\"srtp\"}}"
            ));
            assert!(srtp > 40.0, "{leg} {dir}: {srtp} SRTP packets\n{metrics}");
            let rtp = v(&format!(
                "mediation_media_packets_total{{direction=\"{dir}\",leg=\"{leg}\",protection=\"rtp\"}}"
            ));
            assert_eq!(rtp, 0.0, "{leg} {dir}: plain RTP relayed\n{metrics}");
        }
    }
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("mediation_media_packets_dropped_total{"))
    {
        assert!(line.ends_with(" 0"), "dropped: {line}\n{metrics}");
    }
    metrics
}

/// The INVITE mediation sent (its SDP offer) and the 200 it sent (its SDP answer).
fn assert_leg_families(log: &str, invite_to: &str, ok_to: &str) {
    let context = format!("mediation:\n{log}");
    let sent = sip_trace(log, "sent");
    let invite = find(&sent, "INVITE ", "INVITE", &context);
    let answer = find(&sent, "SIP/2.0 200", "INVITE", &context);
    for (what, message, family) in [("INVITE", invite, invite_to), ("200 OK", answer, ok_to)] {
        let (c, via_host) = match family {
            "IP6" => ("c=IN IP6 ::1", "[::1]"),
            _ => ("c=IN IP4 127.0.0.1", "127.0.0.1"),
        };
        assert!(
            message.lines().any(|l| l.trim_end() == c),
            "our {what} must carry `{c}`:\n{message}"
        );
        assert!(
            message.contains("a=crypto:"),
            "our {what} must carry SDES keys:\n{message}"
        );
        if what == "INVITE" {
            let via = message
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("via:"))
                .unwrap_or_else(|| panic!("no Via in our INVITE:\n{message}"));
            assert!(via.contains(via_host), "our Via {via} is not {via_host}");
        }
        let contact = message
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
            .unwrap_or_else(|| panic!("no Contact in our {what}:\n{message}"));
        assert!(
            contact.contains(via_host),
            "our Contact {contact} is not {via_host}"
        );
    }
}

#[test]
fn ipv4_gateway_calls_ipv6_next_hop_with_srtp_on_both_legs() {
    let lab = Lab::new();
    let setup = Setup {
        next_hop_host: "::1",
        log_level: "debug",
        ..Setup::default()
    };
    let next_hop = Sim::answer_on(
        &lab,
        "v6-nexthop",
        "::1",
        setup.next_hop_port,
        Some("nexthop"),
        "require",
        &[],
    );
    let m = Mediation::start(&lab, &setup);
    let (ok, gateway) = Caller {
        lab: &lab,
        port: m.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 2,
        extra: vec![],
    }
    .run_on("127.0.0.1", "v4-gateway");
    let next_hop = next_hop.stop();
    let log = m.log_text();
    assert_srtp_call("gateway (IPv4)", ok, &gateway);
    assert_srtp_call("next hop (IPv6)", true, &next_hop);
    assert_eq!(next_hop["summary"]["calls_failed"].as_u64(), Some(0));
    assert_metrics(&m, "inbound");
    // Our offer to the next hop in IPv6, our answer to the gateway in IPv4.
    assert_leg_families(&log, "IP6", "IP4");
}

#[test]
fn ipv6_next_hop_calls_ipv4_gateway_with_srtp_on_both_legs() {
    let lab = Lab::new();
    let setup = Setup {
        next_hop_host: "::1",
        log_level: "debug",
        ..Setup::default()
    };
    let gw = Sim::answer(
        &lab,
        "v4-gateway",
        setup.gw1_port,
        Some("gateway"),
        "accept",
    );
    let m = Mediation::start(&lab, &setup);
    let (ok, next_hop) = Caller {
        lab: &lab,
        port: m.ports.next_hop,
        transport: "tls",
        cert: Some("nexthop"),
        srtp: "require",
        // Routed by the Request-URI host: the gateway's configured name.
        to: "sip:+15551234@gw1",
        duration: 2,
        extra: vec![],
    }
    .run_on("::1", "v6-nexthop");
    let gateway = gw.stop();
    let log = m.log_text();
    assert_srtp_call("next hop (IPv6)", ok, &next_hop);
    assert_srtp_call("gateway (IPv4)", true, &gateway);
    assert_eq!(gateway["summary"]["calls_failed"].as_u64(), Some(0));
    assert_metrics(&m, "outbound");
    // Our offer to the gateway in IPv4, our answer to the next hop in IPv6.
    assert_leg_families(&log, "IP4", "IP6");
}
