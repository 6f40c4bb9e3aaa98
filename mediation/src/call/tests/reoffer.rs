//! Offers in an answered call: re-INVITEs for hold, resume and new keys crossing the call or
//! staying on their leg, a codec change from the next hop, and where a re-offer may move the
//! relay's remote.

use std::time::Duration;

use super::*;

#[test]
fn reinvite_hold_and_resume_cross_the_call_rekeys_stay_on_their_leg_and_hold_is_exempt_from_media_timeout(
) {
    let mut h = Harness::gw1();
    let offer = gw_offer();
    let (gw, nh, ok, b_invite) =
        answered_call_from(&mut h, &invite("c40", "sip:+15551234@192.0.2.10", &offer));
    let to = to_header(&ok);
    let our_key = ok
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap()
        .to_string();

    let version = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .split(' ')
            .nth(2)
            .unwrap()
            .to_string()
    };
    let key_of = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("a=crypto:"))
            .unwrap()
            .to_string()
    };
    let nh_answer =
        |direction: &str| srtp_answer(&b_invite, NH_KEY).replace("a=sendrecv", direction);

    // Hold: same keys, sendonly. It changes what the next hop hears: carried across as our
    // re-INVITE there, with a fresh key of ours on that leg.
    let hold = offer.replace("a=sendrecv", "a=sendonly");
    let outs = h.feed(gw, &reinvite("c40", &to, &hold, 2));
    assert!(
        sent(&outs, gw).is_empty(),
        "answered once the next hop answers"
    );
    let relayed = sent(&outs, nh)[0].clone();
    assert!(
        relayed.starts_with("INVITE ") && relayed.contains("CSeq: 2 INVITE\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("a=sendonly") && relayed.contains("m=audio 30004 RTP/SAVP"),
        "{relayed}"
    );
    assert_eq!(version(&relayed), "2", "{relayed}");
    assert_ne!(
        key_of(&relayed),
        key_of(&b_invite),
        "fresh key toward the next hop"
    );
    assert!(!relayed.contains(GW_KEY), "the gateway's key never crosses");
    // A second re-offer while this one crosses: 491.
    let outs = h.feed(gw, &reinvite("c40", &to, &offer, 3));
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // The next hop answers recvonly: ACKed; the gateway gets our recvonly answer.
    let outs = h.feed(
        nh,
        &respond(&relayed, 200, "OK", Some(&nh_answer("a=recvonly"))),
    );
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 2 ACK"),
        "{ack}"
    );
    let held = &sent(&outs, gw)[0];
    assert_eq!(status(held), 200, "{held}");
    assert!(
        held.contains("a=recvonly") && held.contains("m=audio 30002 RTP/SAVP"),
        "{held}"
    );
    assert!(
        held.contains(&our_key),
        "same key on the gateway's leg: {held}"
    );
    assert_eq!(version(held), "2", "{held}");
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Media(MediaCommand::Rekey {
                leg: "next_hop",
                ..
            })
        )),
        "the next hop's leg takes our fresh key"
    );
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: true,
        },
    );
    assert_eq!(h.engine.calls(), 1, "a held call is not ended for silence");

    // Resume, carried across the same way.
    let outs = h.feed(gw, &reinvite("c40", &to, &offer, 4));
    let relayed = sent(&outs, nh)[0].clone();
    assert!(
        relayed.contains("a=sendrecv") && version(&relayed) == "3",
        "{relayed}"
    );
    let outs = h.feed(
        nh,
        &respond(&relayed, 200, "OK", Some(&nh_answer("a=sendrecv"))),
    );
    let resumed = &sent(&outs, gw)[0];
    assert!(
        resumed.contains("a=sendrecv") && version(resumed) == "3",
        "{resumed}"
    );
    // A refusal from the far side is relayed with its code (and ACKed there).
    let outs = h.feed(gw, &reinvite("c40", &to, &hold, 5));
    let relayed = sent(&outs, nh)[0].clone();
    let outs = h.feed(nh, &respond(&relayed, 488, "Not Acceptable Here", None));
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 4 ACK"),
        "{ack}"
    );
    let branch = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(branch(ack), branch(&relayed), "same transaction");
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert_eq!(h.engine.calls(), 1);

    // New keys: the leg is rekeyed (fresh keys of ours too) and the relay told.
    let rekey = offer.replace(GW_KEY, NH_KEY);
    let outs = h.feed(gw, &reinvite("c40", &to, &rekey, 4));
    let rekeyed = &sent(&outs, gw)[0];
    assert_eq!(status(rekeyed), 200, "{rekeyed}");
    let new_key = rekeyed
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap();
    assert_ne!(new_key, our_key, "our key changes with theirs");
    assert!(!rekeyed.contains(NH_KEY), "their key is never echoed");
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { leg: "gateway", .. }))),
        "the relay gets the new keys"
    );
    assert!(sent(&outs, nh).is_empty(), "the other leg keeps its keys");
    // A later refresh with the same new key is answered with the same new key of ours.
    let outs = h.feed(gw, &reinvite("c40", &to, &rekey, 5));
    let again = &sent(&outs, gw)[0];
    assert!(again.contains(new_key), "{again}");
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { .. }))));
    // An offer with no suite we allow is refused without ending the call.
    let unknown = offer.replace(
        "AES_CM_128_HMAC_SHA1_80 inline:",
        "F8_128_HMAC_SHA1_80 inline:",
    );
    let outs = h.feed(gw, &reinvite("c40", &to, &unknown, 6));
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert_eq!(h.engine.calls(), 1);

    // A session refresh from the next hop's side (no SDP) gets our SDP as an offer.
    let b_call_id = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap()
        .to_string();
    let b_from = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .unwrap()
        .to_string();
    let refresh = format!(
        "INVITE sip:mediation@192.0.2.10:5070;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-nh1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15551234@10.0.0.2>;tag=callee\r\nTo: {b_from}\r\nCall-ID: {b_call_id}\r\n\
         CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let outs = h.feed(nh, &refresh);
    let r = &sent(&outs, nh)[0];
    assert_eq!(status(r), 200, "{r}");
    assert!(
        r.contains("m=audio 30004 RTP/SAVP") && r.matches("a=crypto:").count() == 1,
        "{r}"
    );
    // Our SDP toward the next hop went to version 3 with the relayed resume (the refused
    // offer after it never took effect).
    assert_eq!(version(r), "4", "{r}");
}

#[test]
fn a_codec_change_from_the_next_hop_crosses_to_the_gateway_and_an_unanswered_one_ends_the_call() {
    let mut h = Harness::gw1();
    let (gw, nh, ok, b_invite) = answered_call_from(
        &mut h,
        &invite("c50", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let field = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    // The next hop re-offers PCMA only (its own dialog: it is the caller there now).
    let pcma = sdp(
        5000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    )
    .replace("RTP/SAVP 0 101", "RTP/SAVP 8 101")
    .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000");
    let reoffer = format!(
        "INVITE sip:mediation@192.0.2.10:5070;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-codec\r\nMax-Forwards: 70\r\n\
         From: <sip:+15551234@10.0.0.2>;tag=callee\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 INVITE\r\n\
         Contact: <sip:nh@10.0.0.2:5061;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{pcma}",
        field(&b_invite, "From: "),
        field(&b_invite, "Call-ID: "),
        pcma.len()
    );
    let outs = h.feed(nh, &reoffer);
    assert!(sent(&outs, gw).len() == 1, "{outs:?}");
    let relayed = sent(&outs, gw)[0].clone();
    assert!(
        relayed.starts_with("INVITE sip:gw@10.0.0.1:5067"),
        "{relayed}"
    );
    assert!(
        relayed.contains("m=audio 30002 RTP/SAVP 8 101") && relayed.contains("PCMA/8000"),
        "{relayed}"
    );
    assert!(
        relayed.contains(&format!(
            "From: {};tag=",
            field(&ok, "To: ").split(";tag=").next().unwrap()
        )) && relayed.contains("To: <sip:+15550001@10.0.0.1>;tag=caller"),
        "our request in the caller's dialog: {relayed}"
    );
    // The gateway's own re-INVITE crosses ours: 491.
    let outs = h.feed(gw, &reinvite("c50", &to_header(&ok), &gw_offer(), 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // Nobody answers ours: after 32 s the next hop gets 408 and the call ends.
    h.now += Duration::from_secs(33);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let to_nh = sent(&outs, nh);
    assert_eq!(status(&to_nh[0]), 408, "{to_nh:?}");
    assert!(to_nh[1].starts_with("BYE "), "{to_nh:?}");
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}

/// Security review, low: the relay's remote follows a re-offer that moves the peer's media (a
/// PBX handing the call to another media server), and only then: the same address again moves
/// nothing.
#[test]
fn a_reoffer_that_moves_the_peers_media_moves_the_relays_remote() {
    let mut h = Harness::gw1();
    let (gw, _nh, ok, _) = answered_call_from(
        &mut h,
        &invite("mv", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let to = to_header(&ok);
    let remotes = |outs: &[Output]| -> Vec<(
        &'static str,
        std::net::SocketAddr,
        Option<std::net::SocketAddr>,
    )> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Media(MediaCommand::Remote { leg, rtp, rtcp, .. }) => {
                    Some((*leg, *rtp, *rtcp))
                }
                _ => None,
            })
            .collect()
    };
    let moved = gw_offer()
        .replace("c=IN IP4 10.0.0.1", "c=IN IP4 10.0.0.7")
        .replace("m=audio 4000", "m=audio 4100");
    let outs = h.feed(gw, &reinvite("mv", &to, &moved, 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert_eq!(
        remotes(&outs),
        [(
            "gateway",
            "10.0.0.7:4100".parse().unwrap(),
            Some("10.0.0.7:4101".parse().unwrap())
        )]
    );
    let outs = h.feed(gw, &reinvite("mv", &to, &moved, 3));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert!(remotes(&outs).is_empty(), "same address: nothing to move");
}

/// Security review, low: with `media_networks`, a gateway's SDP cannot aim our RTP at a third
/// party: an offer or re-offer naming an address outside them gets 488 and nothing moves.
#[test]
fn a_gateways_media_must_stay_inside_its_media_networks() {
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.media_networks = vec!["10.0.0.0/24".parse().unwrap()];
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
    let gw = h.open_gateway("gw1", MTLS);
    let elsewhere = gw_offer().replace("c=IN IP4 10.0.0.1", "c=IN IP4 203.0.113.5");
    let outs = h.feed(gw, &invite("mn1", "sip:+15551234@192.0.2.10", &elsewhere));
    let answer = &sent(&outs, gw)[0];
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    assert!(answer.contains("media_networks"), "{answer}");
    assert!(connected(&outs).is_none());

    // Inside: the call goes through; a re-offer moving outside is refused and not followed.
    let (gw, _nh, ok, _) = answered_call_from(
        &mut h,
        &invite("mn2", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let moved = gw_offer().replace("c=IN IP4 10.0.0.1", "c=IN IP4 10.0.1.7");
    let outs = h.feed(gw, &reinvite("mn2", &to_header(&ok), &moved, 2));
    assert!(
        sent(&outs, gw)[0].starts_with("SIP/2.0 488"),
        "{:?}",
        sent(&outs, gw)
    );
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Remote { .. }))));
    assert_eq!(h.engine.calls(), 1, "the call goes on where it was");
}
