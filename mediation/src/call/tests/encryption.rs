//! The encryption rules by transport: SRTP on MTLS legs, plain RTP where no key may cross (TCP,
//! UDP), a gateway's `srtp` mode and the `encryption` level toward the next hop.

use super::*;

#[test]
fn gateway_over_mtls_to_next_hop_negotiates_srtp_on_both_legs_and_bye_ends_both() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        outs,
    } = h.call_to_next_hop("c1", &gw_offer());
    let to_gw = sent(&outs, gw);
    assert_eq!(status(&to_gw[0]), 100, "100 Trying at once");
    let (_, who) = connected(&outs).expect("connects to the next hop");
    assert_eq!(who, Peer::NextHop);
    assert!(
        b_invite
            .starts_with("INVITE sip:+15551234@frontend.example.test:5061;transport=tls SIP/2.0"),
        "{b_invite}"
    );
    assert!(
        b_invite.contains("m=audio 30004 RTP/SAVP 0 101"),
        "{b_invite}"
    );
    assert!(b_invite.contains("a=crypto:"), "{b_invite}");
    assert!(
        !b_invite.contains(GW_KEY),
        "the caller's key never crosses to the other leg"
    );
    assert!(
        !b_invite.lines().any(|l| l == "Call-ID: c1"),
        "new Call-ID on the far leg"
    );
    h.next_hop_accepts(nh);

    let outs = h.feed(nh, &respond(&b_invite, 180, "Ringing", None));
    assert_eq!(status(&sent(&outs, gw)[0]), 180);

    let answer = srtp_answer(&b_invite, NH_KEY);
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let to_nh = sent(&outs, nh);
    assert!(
        to_nh[0].starts_with("ACK sip:callee@10.0.0.2:5061"),
        "{}",
        to_nh[0]
    );
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("m=audio 30002 RTP/SAVP 0 101"), "{ok}");
    assert!(
        ok.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{ok}"
    );
    assert!(
        !ok.contains(NH_KEY) && !ok.contains(GW_KEY),
        "fresh key on each leg"
    );
    assert!(ok.contains("a=rtpmap:101 telephone-event/8000"), "{ok}");
    let legs = media_start(&outs).expect("media starts");
    assert!(
        legs.iter()
            .all(|l| matches!(l.protection, Protection::Srtp { .. })),
        "SRTP on both legs"
    );
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        1
    );

    let a_to = to_header(ok);
    h.feed(gw, &ack_and_bye("c1", &a_to, "ACK", 1));
    let outs = h.feed(gw, &ack_and_bye("c1", &a_to, "BYE", 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert!(sent(&outs, nh)[0].starts_with("BYE sip:callee@10.0.0.2:5061"));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Stop { .. }))));
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn gateway_over_tcp_gets_plain_rtp_and_next_hop_keeps_srtp() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let gw = h.open_gateway("gw2", Signalling::Tcp);
    // Best-effort crypto in an RTP/AVP offer over TCP: the key is ignored and counted.
    let offer = sdp(
        4000,
        "RTP/AVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let Call {
        b: nh, b_invite, ..
    } = h.call_from(gw, &invite("c2", "sip:+15551234@192.0.2.10", &offer));
    assert!(
        b_invite.contains("RTP/SAVP"),
        "next hop always offered SRTP: {b_invite}"
    );
    assert_eq!(
        h.metrics()
            .sdes_keys_ignored
            .with_label_values(&["plain_tcp"])
            .get(),
        1
    );
    h.next_hop_accepts(nh);
    let tag = offered_tag(&b_invite, "AEAD_AES_128_GCM");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((
            tag,
            "AEAD_AES_128_GCM",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==",
        )),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = &sent(&outs, gw)[0];
    assert!(ok.contains("m=audio 30002 RTP/AVP 0 101"), "{ok}");
    assert!(!ok.contains("a=crypto"), "no key ever goes over TCP: {ok}");
    let legs = media_start(&outs).unwrap();
    assert!(
        matches!(legs[0].protection, Protection::Rtp),
        "gateway leg plain"
    );
    assert!(
        matches!(legs[1].protection, Protection::Srtp { .. }),
        "next-hop leg SRTP"
    );
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw2", "rtp", "answered"])
            .get(),
        1
    );
}

#[test]
fn srtp_only_offer_over_tcp_is_refused_with_488() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let gw = h.open_gateway("gw2", Signalling::Tcp);
    let outs = h.feed(gw, &invite("c3", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert!(connected(&outs).is_none(), "no call toward the next hop");
}

#[test]
fn next_hop_requires_srtp_refuses_a_plain_offer_and_supported_accepts_it() {
    for (level, want) in [
        (EncryptionLevel::Required, 488),
        (EncryptionLevel::Supported, 100),
    ] {
        let mut h = Harness::new(
            level,
            vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        );
        let nh = h.open_next_hop();
        let outs = h.feed(
            nh,
            &invite(
                "c4",
                "sip:+15551234@gw1.example.test",
                &sdp(4000, "RTP/AVP", None),
            ),
        );
        assert_eq!(status(&sent(&outs, nh)[0]), want, "{level:?}");
    }
}

#[test]
fn next_hop_to_gateway_with_srtp_required_and_plain_answer_gets_488_and_bye() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Required),
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    let Call {
        a: nh,
        b: gw,
        b_invite,
        outs,
    } = h.call_to_gateway("c5", "sip:+15551234@gw1.example.test", &nh_offer());
    let (_, who) = connected(&outs).unwrap();
    assert_eq!(
        who,
        Peer::Gateway("gw1".into()),
        "routed by Request-URI host"
    );
    assert!(b_invite.contains("RTP/SAVP") && b_invite.contains("a=crypto:"));
    h.gateway_accepts(gw, "gw1", MTLS);
    let outs = h.feed(
        gw,
        &respond(&b_invite, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
    );
    let to_gw = sent(&outs, gw);
    assert!(to_gw[0].starts_with("ACK "), "{}", to_gw[0]);
    assert!(to_gw[1].starts_with("BYE "), "{}", to_gw[1]);
    let to_nh = sent(&outs, nh);
    assert_eq!(status(&to_nh[0]), 488);
    assert!(to_nh[0].contains("trunk_requires_srtp"), "{}", to_nh[0]);
    assert!(media_start(&outs).is_none());
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn next_hop_to_tcp_gateway_never_offers_keys() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let Call { b_invite, .. } = h.call_to_gateway("c6", "sip:+15551234@anything", &nh_offer());
    assert!(b_invite.contains("m=audio 30004 RTP/AVP"), "{b_invite}");
    assert!(!b_invite.contains("a=crypto"), "{b_invite}");
    assert!(b_invite.contains("transport=tcp"), "{b_invite}");
}

#[test]
fn optional_gateway_refusing_srtp_gets_a_plain_offer_and_the_call_completes_as_rtp() {
    let mut h = Harness::gw1();
    let Call {
        a: nh,
        b: gw,
        b_invite: first,
        ..
    } = h.call_to_gateway("c12", "sip:+15551234@gw1.example.test", &nh_offer());
    h.gateway_accepts(gw, "gw1", MTLS);
    assert!(first.contains("RTP/SAVP"));
    let outs = h.feed(gw, &respond(&first, 488, "Not Acceptable Here", None));
    let to_gw = sent(&outs, gw);
    assert!(
        to_gw[0].starts_with("ACK ") && to_gw[0].contains("CSeq: 1 ACK"),
        "{}",
        to_gw[0]
    );
    let second = &to_gw[1];
    assert!(
        second.starts_with("INVITE ") && second.contains("CSeq: 1 INVITE"),
        "{second}"
    );
    let call_id = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Call-ID:"))
            .unwrap()
            .to_string()
    };
    assert_ne!(call_id(second), call_id(&first), "a fresh dialog attempt");
    assert!(
        second.contains("m=audio 30004 RTP/AVP") && !second.contains("a=crypto"),
        "{second}"
    );
    assert!(
        sent(&outs, nh).is_empty(),
        "the caller sees nothing of the retry"
    );
    let outs = h.feed(
        gw,
        &respond(second, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
    );
    assert!(sent(&outs, gw)[0].contains("CSeq: 1 ACK"));
    let ok = &sent(&outs, nh)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("RTP/SAVP"), "next hop keeps SRTP: {ok}");
    let legs = media_start(&outs).unwrap();
    assert!(matches!(legs[0].protection, Protection::Rtp));
    assert!(matches!(legs[1].protection, Protection::Srtp { .. }));
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["outbound", "gw1", "rtp", "answered"])
            .get(),
        1
    );
}

#[test]
fn next_hop_to_udp_gateway_is_plain_like_tcp_with_a_udp_via() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let Call { b_invite, .. } = h.call_to_gateway("c6u", "sip:+15551234@anything", &nh_offer());
    assert!(b_invite.contains("m=audio 30004 RTP/AVP"), "{b_invite}");
    assert!(!b_invite.contains("a=crypto"), "{b_invite}");
    assert!(
        b_invite.contains("Via: SIP/2.0/UDP 192.0.2.10:5069;rport;branch="),
        "{b_invite}"
    );
    assert!(b_invite.contains("transport=udp"), "{b_invite}");
}

#[test]
fn keys_from_a_udp_gateway_are_ignored() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let gw = h.open_gateway("gw3", Signalling::Udp);
    let offer = sdp(
        4000,
        "RTP/AVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c8u", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    assert!(
        !sent(&outs, nh).is_empty(),
        "the call goes on, keys ignored"
    );
    let ignored = h
        .metrics()
        .sdes_keys_ignored
        .with_label_values(&["plain_udp"])
        .get();
    assert_eq!(ignored, 1);
}
