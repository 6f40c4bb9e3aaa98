//! Hold and resume through the mediation server between two simulators: a gateway over MTLS
//! with SRTP places the call and holds it by re-INVITE (`--hold-at 2 --resume-at 4`), a next
//! hop answers. What users see is checked, not how mediation does it (it may answer the
//! re-INVITE on its leg or relay it): both re-INVITEs answered 200, audio both ways before and
//! after the hold, and nothing lost outside the hold window.

use std::time::Duration;

use e2e::{Caller, Lab, Mediation, Setup, Sim};

fn call(report: &serde_json::Value) -> &serde_json::Value {
    let calls = report["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{report:#}");
    &calls[0]
}

fn count(call: &serde_json::Value, field: &str) -> u64 {
    call[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing: {call:#}"))
}

#[test]
fn gateway_holds_and_resumes_through_mediation_with_srtp_on_both_legs() {
    let lab = Lab::new();
    let setup = Setup::default();
    let mediation = Mediation::start(&lab, &setup);
    let next_hop = Sim::answer(
        &lab,
        "nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let (ok, placed) = Caller {
        lab: &lab,
        port: mediation.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 6,
        extra: ["--hold-at", "2", "--resume-at", "4"]
            .map(String::from)
            .to_vec(),
    }
    .run("gateway");
    std::thread::sleep(Duration::from_millis(500));
    let answered = next_hop.stop();
    let context = format!(
        "caller:\n{placed:#}\nanswerer:\n{answered:#}\nmediation:\n{}",
        mediation.log_text()
    );
    assert!(ok, "the caller's run failed\n{context}");
    let (out, inc) = (call(&placed), call(&answered));
    for c in [out, inc] {
        assert_eq!(c["error"], serde_json::Value::Null, "{context}");
        assert_eq!(c["wire_encrypted"], true, "{context}");
        assert_eq!(count(c, "packets_lost_outside_hold"), 0, "{context}");
        assert!(count(c, "packets_received") > 100, "{context}");
    }

    // Both re-INVITEs answered 200, with the mirrored direction.
    let reinvites = out["reinvites"].as_array().expect("reinvites");
    let seen: Vec<(&str, u64)> = reinvites
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap_or(""),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(seen, [("sendonly", 200), ("sendrecv", 200)], "{context}");
    assert!(
        matches!(
            reinvites[0]["answer_direction"].as_str(),
            Some("recvonly" | "inactive")
        ),
        "{context}"
    );

    // Audio both ways after the resume: the caller heard about two seconds of it, and every
    // packet the caller sent (it kept sending while it held) reached the answerer.
    assert!(
        count(out, "packets_received_after_resume") >= 60,
        "{context}"
    );
    let sent = count(out, "packets_sent");
    let received = count(inc, "packets_received");
    assert!(
        received + 2 >= sent && received <= sent,
        "{sent} sent, {received} received\n{context}"
    );
    // Mediation carried the hold and the resume across: the answerer got both re-offers
    // (from mediation, in its own dialog) and paused, as it must: nothing sent while held.
    assert_eq!(count(inc, "reoffers_answered"), 2, "{context}");
    assert_eq!(count(inc, "packets_sent_while_held"), 0, "{context}");
}
