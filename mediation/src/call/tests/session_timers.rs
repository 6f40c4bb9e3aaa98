//! Session timers (RFC 4028): a caller's Session-Expires answered and bounded, Min-SE, and the
//! refreshes we send toward a gateway that enables them, by UPDATE or re-INVITE.

use std::time::Duration;

use super::*;

#[test]
fn session_timer_asked_by_the_caller_is_answered_in_the_200_and_in_refreshes() {
    let mut h = Harness::gw1();
    let offer = gw_offer();
    let inv = invite("st", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer, 100rel\r\nSession-Expires: 1800;refresher=uac\r\n",
    );
    let (gw, _, ok, _) = answered_call_from(&mut h, &inv);
    assert!(
        ok.contains("Session-Expires: 1800;refresher=uac\r\n") && ok.contains("Require: timer\r\n"),
        "{ok}"
    );
    let refresh = reinvite("st", &to_header(&ok), &offer, 2).replace(
        "CSeq: 2 INVITE\r\n",
        "CSeq: 2 INVITE\r\nSupported: timer\r\nSession-Expires: 1800\r\n",
    );
    let outs = h.feed(gw, &refresh);
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 200);
    assert!(
        r.contains("Session-Expires: 1800;refresher=uac\r\n") && r.contains("Require: timer"),
        "{r}"
    );
    // The caller refreshes; when it stops, the call ends 32 s before the interval runs out.
    h.now += Duration::from_secs(1767);
    h.engine.handle_timeout(h.now);
    assert!(
        h.drain().is_empty(),
        "refreshed at t=0: still within 1800 - 32 s"
    );
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "{outs:?}");
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "session_expired"])
            .get(),
        1
    );
}

#[test]
fn session_interval_below_min_se_gets_422() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    let inv = invite("se60", "sip:+15551234@192.0.2.10", &gw_offer()).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 60\r\n",
    );
    let outs = h.feed(gw, &inv);
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 422, "{r}");
    assert!(r.contains("Min-SE: 90\r\n"), "{r}");
    assert!(connected(&outs).is_none() && h.engine.calls() == 0);
}

/// A call from the next hop to gw1, whose trunk enables session timers; the gateway answers
/// with `answer_headers` added to its 200. Returns (next-hop conn, gateway conn, gateway's
/// INVITE).
fn call_to_timed_gateway(
    h: &mut Harness,
    call_id: &str,
    answer_headers: &str,
) -> (ConnId, ConnId, String) {
    let Call {
        a: nh,
        b: gw,
        b_invite,
        ..
    } = h.call_to_gateway(call_id, "sip:+15551234@gw1", &nh_offer());
    h.gateway_accepts(gw, "gw1", MTLS);
    let answer = srtp_answer(&b_invite, GW_KEY);
    let ok = respond(&b_invite, 200, "OK", Some(&answer)).replacen(
        "Contact:",
        &format!("{answer_headers}Contact:"),
        1,
    );
    let outs = h.feed(gw, &ok);
    assert!(sent(&outs, gw)[0].starts_with("ACK "));
    let ok = &sent(&outs, nh)[0];
    assert_eq!(status(ok), 200);
    assert!(h
        .feed(nh, &ack_and_bye(call_id, &to_header(ok), "ACK", 1))
        .is_empty());
    (nh, gw, b_invite)
}

fn timed_gateway() -> Vec<GatewayConfig> {
    let mut g = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g.enable_session_timer = true;
    vec![g]
}

fn advance(h: &mut Harness, secs: u64) -> Vec<Output> {
    h.now += Duration::from_secs(secs);
    h.engine.handle_timeout(h.now);
    h.drain()
}

#[test]
fn enabled_session_timer_is_asked_for_refreshed_by_update_and_a_408_ends_the_call() {
    let mut h = Harness::new(EncryptionLevel::Required, timed_gateway());
    let (nh, gw, b_invite) = call_to_timed_gateway(
        &mut h,
        "st1",
        "Session-Expires: 120;refresher=uac\r\nRequire: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    assert!(
        b_invite.contains("Supported: timer\r\nSession-Expires: 1800\r\nMin-SE: 90\r\n"),
        "{b_invite}"
    );
    assert!(
        advance(&mut h, 59).is_empty(),
        "refresh at half the interval"
    );
    let outs = advance(&mut h, 1);
    let update = &sent(&outs, gw)[0];
    assert!(update.starts_with("UPDATE "), "{update}");
    assert!(
        update.contains("CSeq: 2 UPDATE\r\n")
            && update.contains("Session-Expires: 120;refresher=uac\r\n")
            && update.contains(";tag=callee"),
        "{update}"
    );
    assert!(sent(&outs, nh).is_empty(), "the other leg is not disturbed");
    assert!(h.feed(gw, &respond(update, 200, "OK", None)).is_empty());

    // Glare-free retry after 491, then 408 ends the call on both legs.
    let outs = advance(&mut h, 60);
    let update = sent(&outs, gw)[0].clone();
    assert!(update.contains("CSeq: 3 UPDATE"), "{update}");
    assert!(h
        .feed(gw, &respond(&update, 491, "Request Pending", None))
        .is_empty());
    assert!(advance(&mut h, 2).is_empty(), "no retry before 2.1 s");
    let outs = advance(&mut h, 2);
    let update = sent(&outs, gw)[0].clone();
    assert!(update.contains("CSeq: 4 UPDATE"), "{update}");
    let outs = h.feed(gw, &respond(&update, 408, "Request Timeout", None));
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "{outs:?}");
    assert!(sent(&outs, nh)[0].starts_with("BYE "), "{outs:?}");
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["outbound", "gw1", "srtp", "session_expired"])
            .get(),
        1
    );
}

#[test]
fn refresh_by_reinvite_repeats_our_sdp_is_acked_and_a_crossing_reinvite_gets_491() {
    let mut h = Harness::new(EncryptionLevel::Required, timed_gateway());
    // No Session-Expires in the 200 (the gateway knows no timers) and no UPDATE: we refresh
    // with re-INVITE at half our own interval.
    let (nh, gw, b_invite) = call_to_timed_gateway(&mut h, "st2", "");
    let outs = advance(&mut h, 900);
    let refresh = sent(&outs, gw)[0].clone();
    assert!(
        refresh.starts_with("INVITE ") && refresh.contains("CSeq: 2 INVITE"),
        "{refresh}"
    );
    assert_eq!(
        refresh.split("\r\n\r\n").nth(1),
        b_invite.split("\r\n\r\n").nth(1),
        "the same SDP, same version: no change"
    );
    // The gateway's own re-INVITE crosses ours: 491.
    let theirs = format!(
        "INVITE sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-glare\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        to_header(&refresh),
        refresh
            .lines()
            .find_map(|l| l.strip_prefix("From: "))
            .unwrap(),
        refresh
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap(),
    );
    let outs = h.feed(gw, &theirs);
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // Our refresh is answered: ACKed with its CSeq; nothing toward the next hop.
    let answer = srtp_answer(&b_invite, GW_KEY);
    let outs = h.feed(gw, &respond(&refresh, 200, "OK", Some(&answer)));
    let ack = &sent(&outs, gw)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 2 ACK"),
        "{ack}"
    );
    assert!(sent(&outs, nh).is_empty());
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { .. }))),
        "same keys: no rekey"
    );
    // After our refresh the gateway may re-INVITE again.
    let outs = h.feed(gw, &theirs.replace("CSeq: 7", "CSeq: 8"));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
}

/// Security review, low: a peer's Session-Expires is bounded (a day), and refreshing often does
/// not grow the timer table.
#[test]
fn session_expires_is_bounded_and_refreshes_do_not_grow_the_timer_table() {
    let mut h = Harness::gw1();
    let offer = gw_offer();
    let inv = invite("se", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 4000000000;refresher=uac\r\n",
    );
    let (gw, _, ok, _) = answered_call_from(&mut h, &inv);
    assert!(
        ok.contains("Session-Expires: 86400;refresher=uac\r\n"),
        "{ok}"
    );
    let before = h.engine.timer_entries();
    for cseq in 2..200 {
        let refresh = reinvite("se", &to_header(&ok), &offer, cseq).replace(
            &format!("CSeq: {cseq} INVITE\r\n"),
            &format!("CSeq: {cseq} INVITE\r\nSupported: timer\r\nSession-Expires: 1800\r\n"),
        );
        h.now += Duration::from_millis(10);
        let outs = h.feed(gw, &refresh);
        assert_eq!(status(&sent(&outs, gw)[0]), 200);
    }
    assert!(
        h.engine.timer_entries() <= before + 2,
        "{} timer entries after 198 refreshes (from {before})",
        h.engine.timer_entries()
    );
}
