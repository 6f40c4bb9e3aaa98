//! What the engine takes on: max_calls overall and per gateway, unanswered INVITEs per
//! connection (and per UDP gateway), media ports, draining, and loops.

use super::*;

#[test]
fn max_calls_gives_503_with_retry_after_and_loops_get_482() {
    let mut h = Harness::gw1();
    let offer = gw_offer();
    // Two unanswered calls per connection at most (the harness's limit): a third waits.
    let gw = h.open_gateway("gw1", MTLS);
    for i in 0..2 {
        let outs = h.feed(
            gw,
            &invite(&format!("m{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        assert_eq!(status(&sent(&outs, gw)[0]), 100);
    }
    let outs = h.feed(gw, &invite("m2", "sip:+15551234@192.0.2.10", &offer));
    let busy = &sent(&outs, gw)[0];
    assert_eq!(status(busy), 503);
    assert!(
        busy.contains("max_pending_per_connection reached"),
        "{busy}"
    );
    // Another connection still gets in, up to max_calls (3).
    let gw2 = h.open_gateway("gw1", MTLS);
    let outs = h.feed(gw2, &invite("m2", "sip:+15551234@192.0.2.10", &offer));
    assert_eq!(status(&sent(&outs, gw2)[0]), 100);
    let outs = h.feed(gw2, &invite("m3", "sip:+15551234@192.0.2.10", &offer));
    let busy = &sent(&outs, gw2)[0];
    assert_eq!(status(busy), 503);
    assert!(busy.contains("Retry-After: 5"), "{busy}");
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "none", "max_calls"])
            .get(),
        1
    );

    let mut h = Harness::gw1();
    let nh = h.open_next_hop();
    let looped = invite("loop", "sip:+15551234@gw1", &offer).replace(
        "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop\r\n",
        "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop\r\nVia: SIP/2.0/TLS 192.0.2.10:5070;branch=z9hG4bK-ours\r\n",
    );
    let outs = h.feed(nh, &looped);
    assert_eq!(status(&sent(&outs, nh)[0]), 482);
    assert!(connected(&outs).is_none());
}

#[test]
fn draining_refuses_new_calls_with_503_and_end_all_byes_the_rest() {
    let mut h = Harness::gw1();
    let (gw, nh) = answered_call(&mut h, "c21");
    h.engine.handle(h.now, Input::Drain);
    let offer = sdp(
        4002,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c22", "sip:+15551234@192.0.2.10", &offer));
    let refused = &sent(&outs, gw)[0];
    assert_eq!(status(refused), 503);
    assert!(refused.contains("Retry-After: 30"), "{refused}");
    assert_eq!(h.engine.active(), 1, "the call in progress goes on");
    h.engine.handle(h.now, Input::EndAll);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(h.engine.active(), 0);
}

/// Security review, low: when only one of a call's two port pairs could be had, the one that
/// was handed out goes back.
#[test]
fn a_call_refused_for_want_of_ports_gives_back_the_pair_it_got() {
    let mut h = Harness::gw1();
    h.engine.ports_mut().limit = Some(1);
    let gw = h.open_gateway("gw1", MTLS);
    let outs = h.feed(gw, &invite("p1", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(status(&sent(&outs, gw)[0]), 503);
    assert_eq!(h.engine.ports_mut().released, vec![30002]);
}

#[test]
fn spoofed_udp_ports_share_their_gateways_pending_invite_cap() {
    let mut h = Harness::new(
        EncryptionLevel::Supported,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let offer = sdp(4000, "RTP/AVP", None);
    // Every INVITE from its own source port (its own flow, its own connection id): the
    // harness allows two unanswered calls per connection, and over UDP per gateway.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let port = h.open_gateway("gw3", Signalling::Udp);
        let outs = h.feed(
            port,
            &invite(&format!("spoof{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        statuses.push(status(&sent(&outs, port)[0]));
    }
    assert_eq!(statuses, [100, 100, 503, 503]);
    // A TCP gateway's connections still count one by one.
    let mut h = Harness::new(
        EncryptionLevel::Supported,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    for i in 0..3 {
        let conn = h.open_gateway("gw2", Signalling::Tcp);
        let outs = h.feed(
            conn,
            &invite(&format!("tcp{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        assert_eq!(status(&sent(&outs, conn)[0]), 100);
    }
}

/// Security review, low: `max_calls` per gateway, so one trunk cannot take every call place:
/// a further call from it gets 503 with Retry-After, and a call toward it goes to the next
/// gateway of its route.
#[test]
fn a_gateway_at_its_max_calls_is_refused_and_routed_around() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.max_calls = Some(1);
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            g1,
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    routed(&mut h);
    let gw = h.open_gateway("gw1", MTLS);
    let outs = h.feed(gw, &invite("g1", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(status(&sent(&outs, gw)[0]), 100);
    let other = h.open_gateway("gw1", MTLS);
    let outs = h.feed(
        other,
        &invite("g2", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let refused = &sent(&outs, other)[0];
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(refused.contains("Retry-After: 5"), "{refused}");
    assert!(refused.contains("gateway_max_calls reached"), "{refused}");

    let nh = h.open_next_hop();
    let outs = h.feed(nh, &invite("g3", "sip:+15551234@anything", &nh_offer()));
    let (_, who, _) = invite_on_new_connection(&outs);
    assert_eq!(who, Peer::Gateway("gw2".into()), "gw1 is full: to gw2");
}
