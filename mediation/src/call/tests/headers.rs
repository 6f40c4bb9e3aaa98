//! What the far leg's INVITE carries from the caller's: P-Asserted-Identity and Privacy, the
//! vendor headers configured to pass, Max-Forwards held to 255, and user parts that could break
//! its headers refused.

use super::*;

#[test]
fn p_asserted_identity_and_privacy_pass_through() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    let inv = invite("pai", "sip:+15551234@192.0.2.10", &gw_offer()).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nP-Asserted-Identity: <sip:+15550001@gw1.example.test>\r\nPrivacy: id\r\n",
    );
    let Call { b_invite: b, .. } = h.call_from(gw, &inv);
    assert!(
        b.contains("P-Asserted-Identity: <sip:+15550001@gw1.example.test>\r\n"),
        "{b}"
    );
    assert!(b.contains("Privacy: id\r\n"), "{b}");
    assert!(b.contains("Max-Forwards: 69\r\n"), "decremented: {b}");
}

#[test]
fn vendor_headers_pass_through_byte_for_byte_as_configured_and_others_stay() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    // The harness passes `X-*` and `User-to-User`; folding and odd spacing are kept.
    let inv = invite("vendor", "sip:+15551234@192.0.2.10", &gw_offer()).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nx-carrier-route :  trunk-7\r\n  ;q=1\r\nUser-to-User: 00FA;encoding=hex\r\n\
         ms-call-source: ms-tenant\r\nSubject: not passed\r\n",
    );
    let Call { b_invite: b, .. } = h.call_from(gw, &inv);
    assert!(
        b.contains("\r\nx-carrier-route :  trunk-7\r\n  ;q=1\r\n"),
        "{b}"
    );
    assert!(b.contains("\r\nUser-to-User: 00FA;encoding=hex\r\n"), "{b}");
    assert!(
        !b.contains("ms-call-source") && !b.contains("Subject:"),
        "{b}"
    );
}

/// Security review, low: Max-Forwards is at most 255 hops (RFC 3261 §20.22), however large the
/// number sent, so a peer cannot give a request more hops than the protocol allows. (A value
/// that is not a number never reaches the engine: the door answers 400.)
#[test]
fn max_forwards_above_255_is_held_to_255() {
    let mut h = Harness::gw1();
    let mut nh = None;
    for (i, (value, forwarded)) in [("300", "254"), ("4000000000", "254"), ("9", "8")]
        .into_iter()
        .enumerate()
    {
        // A connection each: at most two INVITEs may be pending on one.
        let gw = h.open_gateway("gw1", MTLS);
        let inv = invite(&format!("mf{i}"), "sip:+15551234@192.0.2.10", &gw_offer())
            .replace("Max-Forwards: 70", &format!("Max-Forwards: {value}"));
        let outs = h.feed(gw, &inv);
        let nh = *nh.get_or_insert_with(|| connected(&outs).expect("connects").0);
        let b_invite = &sent(&outs, nh)[0];
        assert_eq!(header_value(b_invite, "Max-Forwards"), forwarded, "{value}");
    }
}

/// Security review, low: user parts copied into the far leg's Request-URI, From and To are
/// checked: one that could end a URI or a header is refused by name, nothing is sent on.
#[test]
fn user_parts_that_could_break_the_far_legs_headers_are_refused() {
    let mut h = Harness::gw1();
    for (i, (uri, from, reason)) in [
        (
            "sip:+1555,666@192.0.2.10",
            "+15550001",
            "400 Malformed Request-URI",
        ),
        (
            "sip:+1555>x@192.0.2.10",
            "+15550001",
            "400 Malformed Request-URI",
        ),
        ("sip:+15551234@192.0.2.10", "a\"b", "400 Bad From"),
        ("sip:+15551234@192.0.2.10", "a<b", "400 Bad From"),
    ]
    .into_iter()
    .enumerate()
    {
        let gw = h.open_gateway("gw1", MTLS);
        let inv = invite(&format!("u{i}"), uri, &gw_offer()).replace(
            "From: <sip:+15550001@10.0.0.1>",
            &format!("From: <sip:{from}@10.0.0.1>"),
        );
        // What the grammar forbids is refused at the door, the rest by the engine.
        if let Err(e) = crate::sip::parse(inv.as_bytes()) {
            let (code, phrase) = e.response_status();
            assert_eq!(format!("{code} {phrase}"), reason, "{uri} {from}: {e}");
            continue;
        }
        let outs = h.feed(gw, &inv);
        assert!(connected(&outs).is_none(), "{uri} {from}: sent on");
        let answers = sent(&outs, gw);
        assert!(
            answers
                .iter()
                .any(|a| a.starts_with(&format!("SIP/2.0 {reason}"))),
            "{uri} {from}: {answers:?}"
        );
    }
    // Percent escapes and visual separators are fine.
    let gw = h.open_gateway("gw1", MTLS);
    let outs = h.feed(
        gw,
        &invite("u9", "sip:+1-555-123%2D4@192.0.2.10", &gw_offer()),
    );
    let (nh, _) = connected(&outs).expect("sent on");
    assert!(sent(&outs, nh)[0].starts_with("INVITE sip:+1-555-123%2D4@"));
}
