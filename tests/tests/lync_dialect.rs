//! Lync's SDP dialect (MS-SDPEXT) through a real `mediation` process: a gateway offering SRTP
//! as an option on `RTP/AVP`, its keys carrying a lifetime and an MKI (`|2^31|1:1`) and
//! `a=encryption:`; and the mediation server offering SRTP that way to a gateway configured with
//! `srtp_offer_style = "avp-crypto"`, which may then answer either SRTP or plain RTP at once.
//! The simulators' own SRTP (with the MKI on every packet) and their loss counts are the proof.

use std::time::Duration;

use e2e::{http_get, sample, Caller, Lab, Mediation, Setup, Sim};
use serde_json::Value;

fn first_call(report: &Value) -> &Value {
    &report["calls"][0]
}

/// The call went through with `profile` media, intact, without loss.
fn assert_media(what: &str, ok: bool, call: &Value, srtp: bool) {
    assert!(ok, "{what}: call failed: {call:#}");
    assert_eq!(call["sip_status"].as_u64(), Some(200), "{what}: {call:#}");
    let profile = if srtp { "RTP/SAVP" } else { "RTP/AVP" };
    assert_eq!(call["media_profile"], profile, "{what}: {call:#}");
    assert_eq!(call["wire_encrypted"], srtp, "{what}: {call:#}");
    assert_eq!(call["payload_ok"], true, "{what}: {call:#}");
    assert_eq!(
        call["srtp_auth_failures"].as_u64(),
        Some(0),
        "{what}: {call:#}"
    );
    assert!(
        call["packets_received"].as_u64().unwrap_or(0) > 40,
        "{what}: {call:#}"
    );
    assert_eq!(call["packets_lost"].as_u64(), Some(0), "{what}: {call:#}");
}

#[test]
fn lync_style_offer_from_a_gateway_gets_srtp_with_its_mki_on_every_packet() {
    let lab = Lab::new();
    let setup = Setup::default();
    let _nh = Sim::answer(
        &lab,
        "lync-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    for (srtp, want_srtp) in [("offer", true), ("require", true)] {
        let (ok, report) = Caller {
            lab: &lab,
            port: m.ports.gateway_tls,
            transport: "tls",
            cert: Some("gateway"),
            srtp,
            to: "sip:+15551234@mediation.example.test",
            duration: 2,
            extra: vec!["--lync".into()],
        }
        .run(&format!("lync-in-{srtp}"));
        assert_media(
            &format!("--lync --srtp {srtp}"),
            ok,
            first_call(&report),
            want_srtp,
        );
    }
    // Over plain TCP no key may be used: `a=encryption:required` cannot be met (488), while
    // `optional` falls back to plain RTP.
    let tcp = |srtp: &str| {
        Caller {
            lab: &lab,
            port: m.ports.gateway_tcp,
            transport: "tcp",
            cert: None,
            srtp,
            to: "sip:+15551234@mediation.example.test",
            duration: 2,
            extra: vec!["--lync".into()],
        }
        .run(&format!("lync-tcp-{srtp}"))
    };
    let (ok, report) = tcp("require");
    assert!(!ok, "{report:#}");
    assert_eq!(first_call(&report)["sip_status"].as_u64(), Some(488));
    let (ok, report) = tcp("offer");
    assert_media("--lync over TCP", ok, first_call(&report), false);

    let metrics = http_get(m.ports.metrics, "/metrics");
    assert_eq!(sample(&metrics, "mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}"), 2.0, "{metrics}");
    // Not one packet of the MKI-carrying streams failed its check on the gateway leg.
    assert_eq!(
        sample(
            &metrics,
            "mediation_srtp_auth_failures_total{leg=\"gateway\"}"
        ),
        0.0,
        "{metrics}"
    );
}

#[test]
fn avp_crypto_offer_style_lets_a_gateway_answer_srtp_or_plain_without_a_retry() {
    let lab = Lab::new();
    let setup = Setup {
        gw1_extra: "srtp_offer_style = \"avp-crypto\"".into(),
        ..Setup::default()
    };
    let m = Mediation::start(&lab, &setup);
    for (gw_srtp, want_srtp) in [("offer", true), ("refuse", false)] {
        let gw = Sim::answer(
            &lab,
            &format!("avp-gw-{gw_srtp}"),
            setup.gw1_port,
            Some("gateway"),
            gw_srtp,
        );
        let (ok, caller) = Caller {
            lab: &lab,
            port: m.ports.next_hop,
            transport: "tls",
            cert: Some("nexthop"),
            srtp: "offer",
            to: "sip:+15551234@gw1",
            duration: 2,
            extra: vec![],
        }
        .run(&format!("avp-nh-{gw_srtp}"));
        assert_media("next hop", ok, first_call(&caller), true);
        let report = gw.stop();
        let calls = report["calls"].as_array().cloned().unwrap_or_default();
        // One INVITE, answered: an RTP/AVP offer needs no 488 and second attempt.
        assert_eq!(calls.len(), 1, "--srtp {gw_srtp}: {report:#}");
        assert_media(
            &format!("gateway --srtp {gw_srtp}"),
            true,
            &calls[0],
            want_srtp,
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = http_get(m.ports.metrics, "/metrics");
    for media in ["srtp", "rtp"] {
        assert_eq!(sample(&metrics, &format!("mediation_calls_total{{direction=\"outbound\",gateway=\"gw1\",gateway_media=\"{media}\",result=\"answered\"}}")), 1.0, "{metrics}");
    }
}
