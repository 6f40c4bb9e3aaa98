//! Before the answer: early media in a 183 and a CANCEL during it, forked early dialogs and a
//! 2xx from another fork than the one that brought early media.

use super::*;

#[test]
fn early_media_in_183_starts_the_relay_and_the_200_repeats_the_answer() {
    let mut h = Harness::gw1();
    let Call {
        a: nh,
        b: gw,
        b_invite,
        ..
    } = h.call_to_gateway("c30", "sip:+15551234@gw1", &nh_offer());
    h.gateway_accepts(gw, "gw1", MTLS);
    let early = srtp_answer(&b_invite, GW_KEY);
    let outs = h.feed(
        gw,
        &respond(&b_invite, 183, "Session Progress", Some(&early)),
    );
    let progress = &sent(&outs, nh)[0];
    assert_eq!(status(progress), 183);
    assert!(
        progress.contains("m=audio 30002 RTP/SAVP"),
        "early answer to the caller: {progress}"
    );
    assert!(
        media_start(&outs).is_some(),
        "ringback flows before the answer"
    );
    let answer_in_183 = progress.split("\r\n\r\n").nth(1).unwrap().to_string();
    let outs = h.feed(gw, &respond(&b_invite, 200, "OK", Some(&early)));
    let ok = &sent(&outs, nh)[0];
    assert_eq!(status(ok), 200);
    assert_eq!(
        ok.split("\r\n\r\n").nth(1).unwrap(),
        answer_in_183,
        "the 200 repeats the early answer"
    );
    assert!(
        media_start(&outs).is_none(),
        "the relay is not started twice"
    );
    assert_eq!(
        h.metrics().active_calls.with_label_values(&["srtp"]).get(),
        1
    );
}

#[test]
fn cancel_during_early_media_stops_the_relay_without_counting_an_active_call() {
    let mut h = Harness::gw1();
    let Call {
        a: nh,
        b: gw,
        b_invite,
        ..
    } = h.call_to_gateway("c31", "sip:+15551234@gw1", &nh_offer());
    h.gateway_accepts(gw, "gw1", MTLS);
    let early = srtp_answer(&b_invite, GW_KEY);
    h.feed(
        gw,
        &respond(&b_invite, 183, "Session Progress", Some(&early)),
    );
    let cancel = ack_and_bye("c31", "<sip:+15551234@gw1>", "CANCEL", 1)
        .replace("branch=z9hG4bK-CANCEL1", "branch=z9hG4bK-c31");
    h.feed(nh, &cancel);
    let outs = h.feed(gw, &respond(&b_invite, 487, "Request Terminated", None));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Stop { .. }))));
    assert_eq!(
        h.metrics().active_calls.with_label_values(&["srtp"]).get(),
        0
    );
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn forks_up_to_max_early_dialogs_are_relayed_a_second_2xx_is_ended_and_a_repeated_one_reacked() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("fork", &gw_offer());
    h.next_hop_accepts(nh);
    let from_fork = |text: String, fork: &str| text.replace(";tag=callee", &format!(";tag={fork}"));
    // The harness allows 3 early dialogs: the 4th fork's 180 is not relayed.
    for (fork, relayed) in [
        ("f1", true),
        ("f2", true),
        ("f1", true),
        ("f3", true),
        ("f4", false),
    ] {
        let outs = h.feed(
            nh,
            &from_fork(respond(&b_invite, 180, "Ringing", None), fork),
        );
        assert_eq!(!sent(&outs, gw).is_empty(), relayed, "fork {fork}");
    }
    let answer = srtp_answer(&b_invite, NH_KEY);
    let ok2 = from_fork(respond(&b_invite, 200, "OK", Some(&answer)), "f2");
    let outs = h.feed(nh, &ok2);
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    // The first fork answers too: ACK and BYE for it alone.
    let outs = h.feed(
        nh,
        &from_fork(respond(&b_invite, 200, "OK", Some(&answer)), "f1"),
    );
    let to_nh = sent(&outs, nh);
    assert_eq!(to_nh.len(), 2, "{to_nh:?}");
    assert!(
        to_nh[0].starts_with("ACK ") && to_nh[0].contains(";tag=f1"),
        "{to_nh:?}"
    );
    assert!(
        to_nh[1].starts_with("BYE ") && to_nh[1].contains(";tag=f1"),
        "{to_nh:?}"
    );
    assert!(sent(&outs, gw).is_empty(), "the caller sees nothing of it");
    assert_eq!(h.engine.calls(), 1, "the call goes on");
    // A retransmission of the chosen fork's 200 is ACKed again.
    let outs = h.feed(nh, &ok2);
    let to_nh = sent(&outs, nh);
    assert!(
        to_nh.len() == 1 && to_nh[0].starts_with("ACK ") && to_nh[0].contains(";tag=f2"),
        "{to_nh:?}"
    );
    assert_eq!(h.engine.calls(), 1);
}

#[test]
fn a_2xx_from_another_fork_than_the_early_media_brings_its_keys_to_the_relay() {
    let mut h = Harness::gw1();
    let Call {
        a: nh,
        b: gw,
        b_invite,
        ..
    } = h.call_to_gateway("fk2", "sip:+15551234@gw1", &nh_offer());
    h.gateway_accepts(gw, "gw1", MTLS);
    let early = srtp_answer(&b_invite, GW_KEY);
    let outs = h.feed(
        gw,
        &respond(&b_invite, 183, "Session Progress", Some(&early))
            .replace(";tag=callee", ";tag=e1"),
    );
    assert!(media_start(&outs).is_some());
    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5002,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", other_key)),
    );
    let outs = h.feed(
        gw,
        &respond(&b_invite, 200, "OK", Some(&answer)).replace(";tag=callee", ";tag=e2"),
    );
    assert_eq!(status(&sent(&outs, nh)[0]), 200);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { leg: "gateway", .. }))),
        "{outs:?}"
    );
}
