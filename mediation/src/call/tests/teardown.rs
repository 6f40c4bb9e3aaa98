//! How an answered call ends other than by a plain BYE: media timeouts on one or both legs, a
//! caller that never ACKs our 200, and in-dialog requests from another peer that must not end it.

use std::time::Duration;

use super::*;

#[test]
fn media_timeout_ends_both_legs_with_bye() {
    let mut h = Harness::gw1();
    let (gw, nh) = answered_call(&mut h, "c20");
    let id = 1;
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: id,
            both: true,
        },
    );
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "caller's leg ended");
    assert!(sent(&outs, nh)[0].starts_with("BYE "), "callee's leg ended");
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Stop { .. }))));
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "media_timeout"])
            .get(),
        1
    );
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn one_silent_party_ends_the_call_only_after_a_full_timeout_since_the_answer() {
    let mut h = Harness::gw1();
    let (gw, nh) = answered_call(&mut h, "c21");
    // Right after the answer (a caller may have sent nothing during early media): kept.
    h.now += Duration::from_secs(29);
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: false,
        },
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.engine.calls(), 1);
    // A full timeout after the answer: the gateway vanished; both legs get BYE.
    h.now += Duration::from_secs(1);
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: false,
        },
    );
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "media_timeout"])
            .get(),
        1
    );
}

#[test]
fn a_caller_that_never_acks_our_200_is_hung_up_after_64_t1() {
    let mut h = Harness::gw1();
    let (gw, nh, _, _) = answered_call_unacked(
        &mut h,
        &invite("c22", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    h.now += Duration::from_secs(31);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty(), "still waiting for the ACK");
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "no_ack"])
            .get(),
        1
    );
    // With the ACK in time, nothing happens at 32 s.
    let mut h = Harness::gw1();
    answered_call(&mut h, "c23");
    h.now += Duration::from_secs(40);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.engine.calls(), 1);
}

/// Security review, finding 7: a dialog's Call-ID and tags do not let another peer act on it.
/// Another gateway (or the TCP door) that learned them gets 481 for BYE and re-INVITE, never
/// our SDP or keys, and the call goes on; the leg's own peer on a new connection is served.
#[test]
fn in_dialog_requests_from_another_peer_get_481_and_change_nothing() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw2", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw-tcp", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    let (_gw, nh, ok, _) = answered_call_from(
        &mut h,
        &invite("c70", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let to = to_header(&ok);
    let strangers = [
        peer(Peer::Gateway("gw2".into()), MTLS, Listener::GatewayTls),
        peer(
            Peer::Gateway("gw1".into()),
            Signalling::Tcp,
            Listener::GatewayTcp,
        ),
        peer(Peer::NextHop, MTLS, Listener::NextHop),
    ];
    for (i, who) in strangers.into_iter().enumerate() {
        let other = h.open(2 + i as u64, who);
        let reinvite = format!(
            "INVITE sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 10.0.0.9:5067;branch=z9hG4bK-re{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: c70\r\n\
             CSeq: {} INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            10 + i,
            gw_offer().len(),
            gw_offer()
        );
        for request in [reinvite, ack_and_bye("c70", &to, "BYE", 20 + i as u32)] {
            let outs = h.feed(other, &request);
            let answers = sent(&outs, other);
            assert_eq!(answers.len(), 1, "{answers:?}");
            assert_eq!(status(&answers[0]), 481, "{}", answers[0]);
            assert!(!answers[0].contains("inline:"), "no keys to a stranger");
            assert!(sent(&outs, nh).is_empty(), "nothing reached the callee");
            assert_eq!(h.engine.calls(), 1, "the call goes on");
        }
    }
    // gw1 itself, on a new MTLS connection (TLS 1.2 this time), ends the call.
    let again = h.open_gateway(
        "gw1",
        Signalling::Mtls {
            version: TlsVersionSeen::Tls12,
        },
    );
    let outs = h.feed(again, &ack_and_bye("c70", &to, "BYE", 30));
    assert_eq!(status(&sent(&outs, again)[0]), 200);
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}
