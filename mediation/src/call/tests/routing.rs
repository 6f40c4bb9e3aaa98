//! Where a call goes: routes by number (tel: URIs too), failover to the next gateway of a route,
//! and OPTIONS probes that mark gateways up and down.

use std::time::Duration;

use super::*;

#[test]
fn options_probes_mark_gateways_up_and_down() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.options_interval_secs = 30;
    let mut g2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    g2.options_interval_secs = 30;
    let mut h = Harness::new(EncryptionLevel::Required, vec![g1, g2]);
    let up = |h: &mut Harness, g: &str| h.metrics().gateway_up.with_label_values(&[g]).get();
    h.engine.start(h.now);
    let first = h.engine.poll_timeout().unwrap();
    assert_eq!(first, h.now + Duration::from_secs(1));
    h.now = first;
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let conns: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Connect { conn, target } => Some((*conn, target.peer.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(conns.len(), 2, "one connection per gateway");
    let (gw1, _) = conns
        .iter()
        .find(|(_, p)| *p == Peer::Gateway("gw1".into()))
        .unwrap();
    let (gw2, _) = conns
        .iter()
        .find(|(_, p)| *p == Peer::Gateway("gw2".into()))
        .unwrap();
    let probe = sent(&outs, *gw1).remove(0);
    assert!(
        probe.starts_with("OPTIONS sip:gw1.example.test;transport=tls SIP/2.0"),
        "{probe}"
    );
    // gw1 answers; gw2's connection fails.
    h.gateway_accepts(*gw1, "gw1", MTLS);
    h.feed(*gw1, &respond(&probe, 200, "OK", None));
    h.engine.handle(h.now, Input::Closed { conn: *gw2 });
    assert_eq!(up(&mut h, "gw1"), 1);
    assert_eq!(up(&mut h, "gw2"), 0);
    // Next round: gw1 stays silent past the probe timeout and goes down.
    h.now += Duration::from_secs(30);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        sent(&outs, *gw1)[0].starts_with("OPTIONS "),
        "reuses the open connection"
    );
    h.now += Duration::from_secs(5);
    h.engine.handle_timeout(h.now);
    assert_eq!(up(&mut h, "gw1"), 0);
}

#[test]
fn a_tel_request_uri_is_routed_by_its_number_and_sent_on_with_user_phone() {
    let mut gw2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    gw2.user_phone = false;
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gw2,
        ],
    );
    h.engine.set_routes(vec![
        crate::call::Route {
            pattern: regex::Regex::new(r"^\+1555").unwrap(),
            gateways: vec!["gw1".into()],
        },
        crate::call::Route {
            pattern: regex::Regex::new(r"^\+44").unwrap(),
            gateways: vec!["gw2".into()],
        },
    ]);
    let offer = nh_offer();
    for (call, uri, expected) in [
        // Visual separators go; the route matches the digits; gw1 keeps user=phone.
        (
            "t1",
            "tel:+1-555-123-4567;npdi",
            "INVITE sip:+15551234567@gw1.example.test:5067;transport=tls;user=phone SIP/2.0",
        ),
        // gw2 says user_phone = false.
        (
            "t2",
            "tel:+44-20-7946-0000",
            "INVITE sip:+442079460000@gw2.example.test:5067;transport=tcp SIP/2.0",
        ),
        // A sip: URI's user part is matched as before, and gets no user=phone.
        (
            "t3",
            "sip:+15557654321@192.0.2.10",
            "INVITE sip:+15557654321@gw1.example.test:5067;transport=tls SIP/2.0",
        ),
    ] {
        let nh = h.open_next_hop();
        let outs = h.feed(nh, &invite(call, uri, &offer));
        // The first call to gw1 opens its connection; the third reuses it.
        let b = outs
            .iter()
            .find_map(|o| match o {
                Output::Send { bytes, .. } if bytes.starts_with(b"INVITE ") => {
                    Some(String::from_utf8(bytes.to_vec()).unwrap())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{uri}: no INVITE toward a gateway: {:?}", sent(&outs, nh)));
        assert!(b.starts_with(&format!("{expected}\r\n")), "{uri}: {b}");
    }
}

#[test]
fn route_fails_over_on_connection_failure_503_and_silence() {
    for failure in ["connection", "503", "silence"] {
        let mut h = Harness::new(
            EncryptionLevel::Required,
            vec![
                gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
                gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
            ],
        );
        routed(&mut h);
        let nh = h.open_next_hop();
        let offer = nh_offer();
        let outs = h.feed(
            nh,
            &invite(&format!("f-{failure}"), "sip:+15551234@anything", &offer),
        );
        let (gw1, who, first) = invite_on_new_connection(&outs);
        assert_eq!(who, Peer::Gateway("gw1".into()), "{failure}");
        let outs = match failure {
            "connection" => {
                h.engine.handle(h.now, Input::Closed { conn: gw1 });
                h.drain()
            }
            "503" => {
                h.gateway_accepts(gw1, "gw1", MTLS);
                let outs = h.feed(gw1, &respond(&first, 503, "Service Unavailable", None));
                assert!(
                    sent(&outs, gw1)[0].starts_with("ACK "),
                    "{failure}: the 503 is acknowledged"
                );
                outs
            }
            _ => {
                h.gateway_accepts(gw1, "gw1", MTLS);
                h.now += Duration::from_secs(10);
                h.engine.handle_timeout(h.now);
                let outs = h.drain();
                assert!(
                    sent(&outs, gw1)[0].starts_with("CANCEL "),
                    "{failure}: the silent gateway is cancelled"
                );
                outs
            }
        };
        assert!(
            sent(&outs, nh).is_empty(),
            "{failure}: the caller sees nothing of the failover"
        );
        let (gw2, who, second) = invite_on_new_connection(&outs);
        assert_eq!(who, Peer::Gateway("gw2".into()), "{failure}");
        assert!(
            second.contains("RTP/AVP") && !second.contains("a=crypto"),
            "{failure}: gw2 is TCP: {second}"
        );
        h.gateway_accepts(gw2, "gw2", Signalling::Tcp);
        let outs = h.feed(
            gw2,
            &respond(&second, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
        );
        assert_eq!(status(&sent(&outs, nh)[0]), 200, "{failure}");
        assert_eq!(
            h.metrics().failovers.with_label_values(&["gw1"]).get(),
            1,
            "{failure}"
        );
        assert_eq!(
            h.metrics()
                .calls
                .with_label_values(&["outbound", "gw2", "rtp", "answered"])
                .get(),
            1,
            "{failure}"
        );
    }
}

#[test]
fn a_gateway_marked_down_by_options_is_skipped() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.options_interval_secs = 30;
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            g1,
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    routed(&mut h);
    h.engine.start(h.now);
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let (probe_conn, _) = connected(&outs).unwrap();
    h.engine.handle(h.now, Input::Closed { conn: probe_conn });
    assert_eq!(h.metrics().gateway_up.with_label_values(&["gw1"]).get(), 0);
    let nh = h.open_next_hop();
    let offer = nh_offer();
    let outs = h.feed(nh, &invite("skip", "sip:+15551234@anything", &offer));
    let (_, who, _) = invite_on_new_connection(&outs);
    assert_eq!(
        who,
        Peer::Gateway("gw2".into()),
        "gw1 is down: straight to gw2"
    );
}
