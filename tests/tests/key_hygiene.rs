//! SRTP keys never reach the logs: a full call through a real `mediation` process logging at
//! trace level (the SIP trace included), SRTP on both legs, and then the log is searched for
//! every key of the call — the two on the gateway leg and the two on the next-hop leg, as the
//! simulators at each end saw them — in base64, in hex and in part. None may be there, while
//! the SIP trace shows each SDP with `inline:<redacted>`.

use e2e::{Caller, Lab, Mediation, Setup, Sim};
use serde_json::Value;

fn keys_of(report: &Value) -> Vec<String> {
    report["calls"][0]["srtp_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no srtp_keys in the report: {report:#}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn hex(base64: &str) -> String {
    let bytes = mediation::sdp::base64::decode(base64).expect("a key in base64");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn no_key_of_a_call_appears_in_trace_level_logs() {
    let lab = Lab::new();
    let setup = Setup {
        log_level: "trace",
        ..Setup::default()
    };
    let nh = Sim::answer_with(
        &lab,
        "keys-nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
        &["--report-keys"],
    );
    let m = Mediation::start(&lab, &setup);
    let (ok, caller) = Caller {
        lab: &lab,
        port: m.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 2,
        extra: vec!["--report-keys".into()],
    }
    .run("keys-gateway");
    assert!(ok, "{caller:#}");
    assert_eq!(caller["calls"][0]["media_profile"], "RTP/SAVP");
    let mut keys = keys_of(&caller);
    keys.extend(keys_of(&nh.stop()));
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "four distinct keys, two per leg: {keys:?}");

    let log = m.log_text();
    assert!(
        log.contains("SIP message") && log.contains("inline:<redacted>"),
        "the SIP trace (with SDP) must be in the log for this test to mean anything:\n{log}"
    );
    for key in &keys {
        for form in [key.clone(), hex(key), key[..12].to_string()] {
            assert!(
                !log.contains(&form),
                "key material {form} found in the mediation log"
            );
        }
    }
}
