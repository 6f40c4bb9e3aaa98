//! Every row of the docs/design.md §2 gateway table, in both call directions, through a real
//! `mediation` process with `gateway-sim` processes as the gateways and the next hop. What each
//! simulator saw on the wire (encrypted or plain, intact payload, no loss) is the proof; the
//! mediation server's metrics must say the same.

use std::time::Duration;

use e2e::{http_get, sample, Caller, Lab, Mediation, Setup, Sim};
use serde_json::Value;

/// What the gateway leg should carry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Srtp,
    Rtp,
    Refused(u64),
}

fn call_of(report: &Value) -> &Value {
    &report["calls"][0]
}

/// Checks the first call of a report against `want`.
fn check(row: &str, ok: bool, report: &Value, want: Want) {
    check_call(row, ok, call_of(report), report, want)
}

/// Checks one call of a report against `want`.
fn check_call(row: &str, ok: bool, call: &Value, report: &Value, want: Want) {
    match want {
        Want::Refused(code) => {
            assert!(
                !ok,
                "{row}: the simulator should report a failed call: {report:#}"
            );
            assert_eq!(call["sip_status"].as_u64(), Some(code), "{row}: {report:#}");
        }
        Want::Srtp | Want::Rtp => {
            assert!(ok, "{row}: call failed: {report:#}");
            assert_eq!(call["sip_status"].as_u64(), Some(200), "{row}: {report:#}");
            let srtp = want == Want::Srtp;
            let profile = if srtp { "RTP/SAVP" } else { "RTP/AVP" };
            assert_eq!(call["media_profile"], profile, "{row}: {report:#}");
            assert_eq!(call["wire_encrypted"], srtp, "{row}: {report:#}");
            assert_eq!(call["payload_ok"], true, "{row}: {report:#}");
            assert!(
                call["packets_received"].as_u64().unwrap_or(0) > 40,
                "{row}: {report:#}"
            );
            assert_eq!(call["packets_lost"].as_u64(), Some(0), "{row}: {report:#}");
        }
    }
}

/// A gateway calls in; a next-hop simulator (MTLS, SRTP) answers.
fn inbound(lab: &Lab, m: &Mediation, gateway: &str, gw_srtp: &str, want: Want) {
    let row = format!("inbound from {gateway} with --srtp {gw_srtp}");
    let (port, transport) = match gateway {
        "gw1" => (m.ports.gateway_tls, "tls"),
        _ => (m.ports.gateway_tcp, "tcp"),
    };
    let (ok, report) = Caller {
        lab,
        port,
        transport,
        cert: Some("gateway"),
        srtp: gw_srtp,
        to: "sip:+15551234@mediation.example.test",
        duration: 2,
        extra: vec![],
    }
    .run(&format!("in-{gateway}-{gw_srtp}"));
    check(&row, ok, &report, want);
}

/// The next hop calls out (MTLS, SRTP offer); a gateway simulator answers.
fn outbound(lab: &Lab, m: &Mediation, setup: &Setup, gateway: &str, gw_srtp: &str, want: Want) {
    let row = format!("outbound to {gateway} answering --srtp {gw_srtp}");
    let answerer = match gateway {
        "gw1" => Sim::answer(
            lab,
            &format!("out-{gateway}-{gw_srtp}-answer"),
            setup.gw1_port,
            Some("gateway"),
            gw_srtp,
        ),
        _ => Sim::answer(
            lab,
            &format!("out-{gateway}-{gw_srtp}-answer"),
            setup.gw2_port,
            None,
            gw_srtp,
        ),
    };
    let (ok, caller) = Caller {
        lab,
        port: m.ports.next_hop,
        transport: "tls",
        cert: Some("nexthop"),
        srtp: "offer",
        // Routed by the Request-URI host: the gateway's configured name.
        to: &format!("sip:+15551234@{gateway}"),
        duration: 2,
        extra: vec![],
    }
    .run(&format!("out-{gateway}-{gw_srtp}"));
    let gw_report = answerer.stop();
    match want {
        Want::Refused(code) => {
            assert!(!ok, "{row}: next hop's call should fail: {caller:#}");
            assert_eq!(
                call_of(&caller)["sip_status"].as_u64(),
                Some(code),
                "{row}: {caller:#}"
            );
        }
        _ => {
            // The next-hop leg is always SRTP; the gateway's own report shows its leg.
            check(&format!("{row} (next hop)"), ok, &caller, Want::Srtp);
            assert_eq!(
                gw_report["summary"]["calls_ok"].as_u64(),
                Some(1),
                "{row}: {gw_report:#}"
            );
            // A gateway refusing our SRTP offer (optional trunk) sees a 488'd attempt first,
            // then the plain-RTP retry it answers.
            let answered = gw_report["calls"]
                .as_array()
                .and_then(|calls| calls.iter().find(|c| c["sip_status"] == 200))
                .unwrap_or_else(|| panic!("{row}: no answered call: {gw_report:#}"));
            check_call(
                &format!("{row} (gateway)"),
                true,
                answered,
                &gw_report,
                want,
            );
        }
    }
}

/// Starts the mediation server with these trunk modes and a next-hop simulator answering.
fn setup(lab: &Lab, gw1_srtp: &'static str, gw2_srtp: &'static str) -> (Setup, Mediation, Sim) {
    let setup = Setup {
        gw1_srtp,
        gw2_srtp,
        ..Setup::default()
    };
    let nh = Sim::answer(
        lab,
        &format!("nexthop-{gw1_srtp}"),
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(lab, &setup);
    (setup, m, nh)
}

#[test]
fn mtls_optional_and_tcp_optional_rows() {
    let lab = Lab::new();
    let (setup, m, nh) = setup(&lab, "optional", "optional");
    // MTLS, trusted, optional: SRTP when the gateway's SDP offers or accepts it, else RTP.
    inbound(&lab, &m, "gw1", "offer", Want::Srtp);
    inbound(&lab, &m, "gw1", "accept", Want::Rtp);
    outbound(&lab, &m, &setup, "gw1", "accept", Want::Srtp);
    outbound(&lab, &m, &setup, "gw1", "refuse", Want::Rtp);
    // TCP, optional: plain RTP; no key ever crosses TCP.
    inbound(&lab, &m, "gw2", "accept", Want::Rtp);
    outbound(&lab, &m, &setup, "gw2", "accept", Want::Rtp);
    // An SRTP-only offer over TCP cannot be answered without keys: 488, keys ignored, counted.
    inbound(&lab, &m, "gw2", "offer", Want::Refused(488));
    let metrics = http_get(m.ports.metrics, "/metrics");
    assert!(
        sample(
            &metrics,
            "mediation_sdes_keys_ignored_total{reason=\"plain_tcp\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"rtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"rtp\",result=\"answered\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"inbound\",gateway=\"gw2\",gateway_media=\"rtp\",result=\"answered\"}"), 1.0, "{metrics}");
    drop(nh);
}

#[test]
fn mtls_required_and_tcp_not_supported_rows() {
    let lab = Lab::new();
    let (setup, m, nh) = setup(&lab, "required", "not-supported");
    // MTLS, trusted, required: SRTP, and a gateway that will not do SRTP gets 488.
    inbound(&lab, &m, "gw1", "offer", Want::Srtp);
    inbound(&lab, &m, "gw1", "accept", Want::Refused(488));
    outbound(&lab, &m, &setup, "gw1", "accept", Want::Srtp);
    outbound(&lab, &m, &setup, "gw1", "refuse", Want::Refused(488));
    // TCP, not-supported: plain RTP both ways.
    inbound(&lab, &m, "gw2", "accept", Want::Rtp);
    outbound(&lab, &m, &setup, "gw2", "accept", Want::Rtp);
    drop(nh);
}

#[test]
fn mtls_not_supported_rows() {
    let lab = Lab::new();
    let (setup, m, nh) = setup(&lab, "not-supported", "optional");
    // MTLS, trusted, not-supported: plain RTP, and no keys offered toward the gateway.
    inbound(&lab, &m, "gw1", "accept", Want::Rtp);
    outbound(&lab, &m, &setup, "gw1", "accept", Want::Rtp);
    drop(nh);
}

#[test]
fn refused_gateway_certificates_make_no_call_and_are_counted() {
    let lab = Lab::new();
    let (_setup, m, nh) = setup(&lab, "optional", "optional");
    for (cert, reason) in [
        (Some("gateway-untrusted"), "untrusted_ca"),
        (Some("gateway-expired"), "expired"),
        (Some("gateway-wrong-name"), "name_mismatch"),
        (Some("gateway-revoked"), "revoked"),
        (None, "no_certificate"),
    ] {
        let (ok, report) = Caller {
            lab: &lab,
            port: m.ports.gateway_tls,
            transport: "tls",
            cert,
            srtp: "offer",
            to: "sip:+15551234@mediation.example.test",
            duration: 1,
            extra: vec![],
        }
        .run(&format!("refused-{reason}"));
        assert!(!ok, "{reason}: call should fail: {report:#}");
        assert!(
            report["calls"][0]["error"].is_string(),
            "{reason}: reason reported: {report:#}"
        );
        let metrics = http_get(m.ports.metrics, "/metrics");
        let line = format!(
            "mediation_mtls_rejections_total{{listener=\"gateway_tls\",reason=\"{reason}\"}}"
        );
        assert_eq!(sample(&metrics, &line), 1.0, "{reason}:\n{metrics}");
        assert!(
            m.log_text().contains(&format!("\"reason\":\"{reason}\"")),
            "{reason} logged"
        );
    }
    let nh_report = nh.stop();
    assert_eq!(
        nh_report["summary"]["calls_total"].as_u64().unwrap_or(0),
        0,
        "no call reached the next hop"
    );
    let metrics = http_get(m.ports.metrics, "/metrics");
    assert!(!metrics.contains("result=\"answered\""), "{metrics}");
}

#[test]
fn next_hop_encryption_required_refuses_plain_and_supported_accepts() {
    let lab = Lab::new();
    for (encryption, want) in [("required", Some(488)), ("supported", Some(200))] {
        let setup = Setup {
            encryption,
            ..Setup::default()
        };
        let gw = Sim::answer(
            &lab,
            &format!("enc-{encryption}-gw"),
            setup.gw1_port,
            Some("gateway"),
            "accept",
        );
        let m = Mediation::start(&lab, &setup);
        // The next hop offers plain RTP (`--srtp accept` offers RTP/AVP).
        let (ok, report) = Caller {
            lab: &lab,
            port: m.ports.next_hop,
            transport: "tls",
            cert: Some("nexthop"),
            srtp: "accept",
            to: "sip:+15551234@gw1.example.test",
            duration: 1,
            extra: vec![],
        }
        .run(&format!("enc-{encryption}"));
        assert_eq!(
            report["calls"][0]["sip_status"].as_u64(),
            want,
            "{encryption}: {report:#}"
        );
        assert_eq!(ok, want == Some(200), "{encryption}: {report:#}");
        drop(gw);
    }
}

#[test]
fn thirty_second_call_has_zero_loss_and_intact_payload() {
    let lab = Lab::new();
    let (_setup, m, nh) = setup(&lab, "optional", "optional");
    let (ok, report) = Caller {
        lab: &lab,
        port: m.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 30,
        extra: vec![],
    }
    .run("thirty-seconds");
    check("30 s call", ok, &report, Want::Srtp);
    let call = call_of(&report);
    assert!(
        call["packets_received"].as_u64().unwrap() >= 1450,
        "{report:#}"
    );
    println!(
        "30 s call: sent {} received {} lost {} jitter {} ms latency p50 {} ms p99 {} ms",
        call["packets_sent"],
        call["packets_received"],
        call["packets_lost"],
        call["jitter_ms"],
        call["latency_ms_p50"],
        call["latency_ms_p99"]
    );
    let nh_report = nh.stop();
    check("30 s call (next hop)", true, &nh_report, Want::Srtp);
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn two_hundred_calls_at_twenty_per_second_without_failure() {
    let lab = Lab::new();
    let (_setup, m, nh) = setup(&lab, "optional", "optional");
    let (ok, report) = Caller {
        lab: &lab,
        port: m.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 2,
        extra: vec![
            "--calls".into(),
            "200".into(),
            "--rate".into(),
            "20".into(),
            "--concurrency".into(),
            "100".into(),
        ],
    }
    .run("load-200");
    let summary = &report["summary"];
    println!("200 calls at 20/s: {summary}");
    assert!(ok, "{summary}");
    assert_eq!(summary["calls_ok"].as_u64(), Some(200), "{summary}");
    assert_eq!(summary["calls_failed"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["packets_lost"].as_u64(), Some(0), "{summary}");
    let calls = report["calls"].as_array().unwrap();
    assert!(calls
        .iter()
        .all(|c| c["wire_encrypted"] == true && c["payload_ok"] == true));
    let nh_report = nh.stop();
    assert_eq!(
        nh_report["summary"]["calls_ok"].as_u64(),
        Some(200),
        "{}",
        nh_report["summary"]
    );
}
