//! IPv6: each leg in the family of its peer's signalling address (docs/design.md §3), in its
//! SIP, its SDP, its media ports, failover, loops and OPTIONS probes.

use std::time::Duration;

use super::*;

/// A relay advertising 192.0.2.10 and 2001:db8::10 (`advertise`, in that order unless given),
/// its next hop at `next_hop`.
fn dual_stack(gateways: Vec<GatewayConfig>, next_hop: &str, advertise: &str) -> Harness {
    Harness::with(EncryptionLevel::Required, gateways, |cfg| {
        cfg.advertise = advertise.parse().unwrap();
        cfg.next_hop_address = next_hop.into();
    })
}

const BOTH: &str = "192.0.2.10, 2001:db8::10";

/// `who` over `signalling`, connected from `remote`.
fn peer_from(
    who: Peer,
    signalling: Signalling,
    listener: Listener,
    remote: &str,
) -> Arc<PeerIdentity> {
    Arc::new(PeerIdentity {
        peer: who,
        signalling,
        listener,
        remote: remote.parse().unwrap(),
    })
}

/// The target of the connection the engine opened.
fn target(outs: &[Output]) -> crate::call::Target {
    outs.iter()
        .find_map(|o| match o {
            Output::Connect { target, .. } => Some(target.clone()),
            _ => None,
        })
        .expect("a connection opened")
}

/// The IPv6 next hop at [2001:db8::5] takes the connection the engine opened; returns its SDP
/// answer to `b_invite` (SRTP with the suite offered).
fn v6_next_hop_connects(h: &mut Harness, nh: ConnId, b_invite: &str) -> String {
    let peer = peer_from(
        Peer::NextHop,
        MTLS,
        Listener::Outbound,
        "[2001:db8::5]:5061",
    );
    h.engine.handle(h.now, Input::Opened { conn: nh, peer });
    srtp_answer(b_invite, NH_KEY).replace("IN IP4 10.0.0.1", "IN IP6 2001:db8::5")
}

/// Asserts that `text` holds every one of `needles`.
fn assert_has(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}

/// The families the engine drew media ports from, in order.
fn port_families(h: &mut Harness) -> Vec<IpFamily> {
    let ports = &h.engine.ports_mut().families;
    ports.iter().map(|(f, _)| *f).collect()
}

fn o_line(msg: &str) -> &str {
    msg.lines().find(|l| l.starts_with("o=")).unwrap()
}

#[test]
fn an_ipv4_gateway_calls_an_ipv6_next_hop_each_leg_in_its_family() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "[2001:db8::5]:5061",
        BOTH,
    );
    let offer = gw_offer();
    let gw = h.open(
        1,
        peer_from(
            Peer::Gateway("gw1".into()),
            MTLS,
            Listener::GatewayTls,
            "10.0.0.1:40000",
        ),
    );
    let Call {
        b: nh,
        b_invite,
        outs,
        ..
    } = h.call_from(gw, &invite("v6a", "sip:+15551234@192.0.2.10", &offer));
    let t = target(&outs);
    assert_eq!(
        (t.address.as_str(), t.family),
        ("[2001:db8::5]:5061", IpFamily::V6)
    );
    assert_has(
        &b_invite,
        &[
            "INVITE sip:+15551234@[2001:db8::5]:5061;transport=tls SIP/2.0\r\n",
            "Via: SIP/2.0/TLS [2001:db8::10]:5070;branch=",
            "Contact: <sip:mediation@[2001:db8::10]:5070;transport=tls>\r\n",
            "From: <sip:+15550001@[2001:db8::10]>;tag=",
            "c=IN IP6 2001:db8::10\r\n",
        ],
    );
    assert!(
        o_line(&b_invite).ends_with(" IN IP6 2001:db8::10"),
        "{b_invite}"
    );
    assert!(!b_invite.contains("192.0.2.10"), "{b_invite}");
    assert_eq!(port_families(&mut h), [IpFamily::V4, IpFamily::V6]);

    let answer = v6_next_hop_connects(&mut h, nh, &b_invite);
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{ack}"
    );
    let ok = sent(&outs, gw).remove(0);
    assert_eq!(status(&ok), 200);
    assert!(ok.contains("c=IN IP4 192.0.2.10\r\n"), "{ok}");
    assert!(o_line(&ok).ends_with(" IN IP4 192.0.2.10"), "{ok}");
    assert!(
        ok.contains("Contact: <sip:mediation@192.0.2.10:5067;transport=tls>\r\n"),
        "{ok}"
    );
    assert!(!ok.contains("2001:db8"), "{ok}");
    let legs = media_start(&outs).expect("media starts");
    assert_eq!(
        (legs[0].label, legs[0].family, legs[0].remote_rtp),
        (
            "gateway",
            IpFamily::V4,
            Some("10.0.0.1:4000".parse().unwrap())
        )
    );
    assert_eq!(
        (legs[1].label, legs[1].family, legs[1].remote_rtp),
        (
            "next_hop",
            IpFamily::V6,
            Some("[2001:db8::5]:5000".parse().unwrap())
        )
    );

    // A hold from the gateway crosses to the next hop in IPv6 and is answered in IPv4.
    let to = to_header(&ok);
    h.feed(gw, &ack_and_bye("v6a", &to, "ACK", 1));
    let hold = offer.replace("a=sendrecv", "a=sendonly");
    let outs = h.feed(gw, &reinvite("v6a", &to, &hold, 2));
    let relayed = sent(&outs, nh)[0].clone();
    assert!(relayed.contains("c=IN IP6 2001:db8::10\r\n"), "{relayed}");
    assert!(
        relayed.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{relayed}"
    );
    let held = answer.replace("a=sendrecv", "a=recvonly");
    let outs = h.feed(nh, &respond(&relayed, 200, "OK", Some(&held)));
    let held = &sent(&outs, gw)[0];
    assert_eq!(status(held), 200, "{held}");
    assert!(held.contains("c=IN IP4 192.0.2.10\r\n"), "{held}");

    // The gateway hangs up: the BYE toward the next hop is ours in IPv6.
    let outs = h.feed(gw, &ack_and_bye("v6a", &to, "BYE", 3));
    let bye = &sent(&outs, nh)[0];
    assert!(
        bye.starts_with("BYE ") && bye.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{bye}"
    );
}

#[test]
fn a_call_from_an_ipv6_next_hop_is_answered_in_ipv6_and_offered_to_the_gateway_in_ipv4() {
    let mut g = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g.address = "10.0.0.1:5067".into();
    let mut h = dual_stack(vec![g], "[2001:db8::5]:5061", BOTH);
    let nh = h.open(
        1,
        peer_from(
            Peer::NextHop,
            MTLS,
            Listener::NextHop,
            "[2001:db8::5]:40000",
        ),
    );
    let offer = nh_offer().replace("IN IP4 10.0.0.1", "IN IP6 2001:db8::5");
    let Call {
        b: gw,
        b_invite,
        outs,
        ..
    } = h.call_from(nh, &invite("v6b", "sip:+15551234@gw1", &offer));
    assert_eq!(target(&outs).family, IpFamily::V4);
    assert!(b_invite.contains("c=IN IP4 192.0.2.10\r\n"), "{b_invite}");
    assert!(
        b_invite.contains("Via: SIP/2.0/TLS 192.0.2.10:5067;"),
        "{b_invite}"
    );
    assert!(!b_invite.contains("2001:db8"), "{b_invite}");
    assert_eq!(port_families(&mut h), [IpFamily::V6, IpFamily::V4]);
    h.gateway_accepts(gw, "gw1", MTLS);
    let answer = srtp_answer(&b_invite, GW_KEY);
    let outs = h.feed(gw, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = sent(&outs, nh).remove(0);
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(ok.contains("c=IN IP6 2001:db8::10\r\n"), "{ok}");
    assert!(o_line(&ok).ends_with(" IN IP6 2001:db8::10"), "{ok}");
    assert!(
        ok.contains("Contact: <sip:mediation@[2001:db8::10]:5070;transport=tls>\r\n"),
        "{ok}"
    );
    let legs = media_start(&outs).expect("media starts");
    assert_eq!((legs[0].label, legs[0].family), ("gateway", IpFamily::V4));
    assert_eq!((legs[1].label, legs[1].family), ("next_hop", IpFamily::V6));
}

#[test]
fn a_peer_known_by_host_name_gets_the_first_advertise_address() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "frontend.example.test:5061",
        "2001:db8::10, 192.0.2.10",
    );
    let Call { b_invite, outs, .. } = h.call_to_next_hop("v6c", &gw_offer());
    assert_eq!(target(&outs).family, IpFamily::V6);
    assert!(b_invite.contains("c=IN IP6 2001:db8::10\r\n"), "{b_invite}");
    // The caller came from 10.0.0.1: its leg is IPv4 whatever the order.
    assert_eq!(port_families(&mut h), [IpFamily::V4, IpFamily::V6]);
}

#[test]
fn failover_to_a_gateway_of_the_other_family_moves_the_leg_and_its_ports() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.address = "10.0.0.3:5067".into();
    let mut g2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    g2.address = "[2001:db8::6]:5068".into();
    let mut h = dual_stack(vec![g1, g2], "frontend.example.test:5061", BOTH);
    routed(&mut h);
    let nh = h.open_next_hop();
    let outs = h.feed(nh, &invite("v6d", "sip:+15551234@anything", &nh_offer()));
    let (gw1, _, first) = invite_on_new_connection(&outs);
    assert!(first.contains("c=IN IP4 192.0.2.10\r\n"), "{first}");
    h.gateway_accepts(gw1, "gw1", MTLS);
    let outs = h.feed(gw1, &respond(&first, 503, "Service Unavailable", None));
    assert_eq!(target(&outs).family, IpFamily::V6);
    let (_, who, second) = invite_on_new_connection(&outs);
    assert_eq!(who, Peer::Gateway("gw2".into()));
    assert_has(
        &second,
        &[
            "INVITE sip:+15551234@[2001:db8::6]:5068;transport=tcp SIP/2.0\r\n",
            "Via: SIP/2.0/TCP [2001:db8::10]:5068;branch=",
            "c=IN IP6 2001:db8::10\r\n",
            "m=audio 30006 RTP/AVP",
        ],
    );
    let ports = h.engine.ports_mut();
    assert_eq!(ports.released, [30004], "the IPv4 pair goes back");
    assert_eq!(ports.families.last(), Some(&(IpFamily::V6, 30006)));
}

#[test]
fn our_via_with_either_address_is_a_loop() {
    for ours in [
        "192.0.2.10:5070",
        "[2001:db8::10]:5070",
        "[2001:db8::10]:5068",
    ] {
        let mut h = dual_stack(
            vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
            "frontend.example.test:5061",
            BOTH,
        );
        let nh = h.open_next_hop();
        let looped = invite("loop6", "sip:+15551234@gw1", &gw_offer()).replace(
            "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop6\r\n",
            &format!(
                "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop6\r\nVia: SIP/2.0/TLS {ours};branch=z9hG4bK-ours\r\n"
            ),
        );
        let outs = h.feed(nh, &looped);
        assert_eq!(status(&sent(&outs, nh)[0]), 482, "{ours}");
        assert!(connected(&outs).is_none(), "{ours}");
    }
}

#[test]
fn options_probes_to_an_ipv6_gateway_are_written_in_ipv6() {
    let mut g = gateway("gw6", GatewayTransport::Tls, SrtpMode::Optional);
    g.address = "[2001:db8::6]:5067".into();
    g.options_interval_secs = 30;
    let mut h = dual_stack(vec![g], "frontend.example.test:5061", BOTH);
    h.engine.start(h.now);
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert_eq!(target(&outs).family, IpFamily::V6);
    let (conn, _) = connected(&outs).unwrap();
    let probe = sent(&outs, conn).remove(0);
    assert_has(
        &probe,
        &[
            "OPTIONS sip:[2001:db8::6];transport=tls SIP/2.0\r\n",
            "Via: SIP/2.0/TLS [2001:db8::10]:5067;branch=",
            "From: <sip:mediation@[2001:db8::10]>;tag=",
            "To: <sip:[2001:db8::6]>\r\n",
            "Contact: <sip:mediation@[2001:db8::10]:5067;transport=tls>\r\n",
        ],
    );
    assert!(
        probe
            .lines()
            .any(|l| l.starts_with("Call-ID: probe-") && l.ends_with("@[2001:db8::10]")),
        "{probe}"
    );
}

/// The next hop, over IPv6, ends the call with a BYE addressed to our IPv6 Contact.
#[test]
fn an_ipv6_next_hop_hangs_up_with_a_bye_to_our_ipv6_contact() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "[2001:db8::5]:5061",
        BOTH,
    );
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("v6e", &gw_offer());
    let answer = v6_next_hop_connects(&mut h, nh, &b_invite);
    // The peer's own response, parsed from our INVITE as it is (IPv6 Request-URI and all).
    let ok = respond(&b_invite, 200, "OK", Some(&answer)).replace(
        "<sip:callee@10.0.0.2:5061;",
        "<sip:callee@[2001:db8::5]:5061;",
    );
    let outs = h.feed(nh, &ok);
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    let call_id = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap();
    let from = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .unwrap();
    let bye = format!(
        "BYE sip:mediation@[2001:db8::10]:5070;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK-bye6\r\nMax-Forwards: 70\r\n\
         From: <sip:+15551234@[2001:db8::5]>;tag=callee\r\nTo: {from}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let outs = h.feed(nh, &bye);
    assert_eq!(status(&sent(&outs, nh)[0]), 200);
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}
