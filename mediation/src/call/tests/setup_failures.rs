//! Calls that never get answered: busy, an unreachable next hop, no answer in time, CANCEL and
//! BYE on an early dialog from either side, 483 and 481.

use std::time::Duration;

use super::*;

impl Harness {
    fn engine_ports_released(&mut self) -> usize {
        self.engine.ports_mut().released.len()
    }
}

/// A call from gw1 to the next hop, ringing (a 180 with the callee's tag relayed): the caller's
/// connection, the callee's, our INVITE to the callee and the 180 the caller got.
fn ringing_call(h: &mut Harness, call_id: &str) -> (ConnId, ConnId, String, String) {
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop(call_id, &gw_offer());
    let outs = h.feed(nh, &respond(&b_invite, 180, "Ringing", None));
    let ringing = sent(&outs, gw).remove(0);
    assert_eq!(status(&ringing), 180);
    assert!(
        to_header(&ringing).contains(";tag="),
        "an early dialog with the caller: {ringing}"
    );
    assert_eq!(h.engine.active(), 1);
    (gw, nh, b_invite, ringing)
}

#[test]
fn busy_is_relayed_and_acked_in_the_same_transaction() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("c7", &gw_offer());
    let outs = h.feed(nh, &respond(&b_invite, 486, "Busy Here", None));
    let ack = &sent(&outs, nh)[0];
    let branch = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    };
    assert!(ack.starts_with("ACK "));
    assert_eq!(
        branch(ack),
        branch(&b_invite),
        "ACK for a non-2xx reuses the INVITE's branch"
    );
    assert!(ack.contains("CSeq: 1 ACK"));
    assert_eq!(status(&sent(&outs, gw)[0]), 486);
    assert_eq!(h.engine.calls(), 0);
    assert_eq!(h.engine_ports_released(), 2, "both legs' ports given back");
}

#[test]
fn unreachable_next_hop_gives_503() {
    let mut h = Harness::gw1();
    let Call { a: gw, b: nh, .. } = h.call_to_next_hop("c8", &gw_offer());
    h.engine.handle(h.now, Input::Closed { conn: nh });
    let outs = h.drain();
    assert_eq!(status(&sent(&outs, gw)[0]), 503);
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn no_answer_in_time_gives_408_and_cancels_the_callee() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("c9", &gw_offer());
    let deadline = h.engine.poll_timeout().unwrap();
    assert_eq!(deadline, h.now + Duration::from_secs(90));
    h.engine.handle_timeout(deadline);
    let outs = h.drain();
    assert_eq!(status(&sent(&outs, gw)[0]), 408);
    assert!(
        sent(&outs, nh)[0].starts_with("CANCEL "),
        "callee cancelled"
    );
    // The callee's 487 is acknowledged, then the call is gone.
    h.now = deadline;
    let outs = h.feed(nh, &respond(&b_invite, 487, "Request Terminated", None));
    assert!(sent(&outs, nh)[0].starts_with("ACK "));
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn cancel_from_the_caller_gets_487_and_a_late_200_is_ended_with_bye() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("c10", &gw_offer());
    let cancel = ack_and_bye("c10", "<sip:+15551234@192.0.2.10>", "CANCEL", 1)
        .replace("branch=z9hG4bK-CANCEL1", "branch=z9hG4bK-c10");
    let outs = h.feed(gw, &cancel);
    let to_gw = sent(&outs, gw);
    assert_eq!(status(&to_gw[0]), 200);
    assert_eq!(status(&to_gw[1]), 487);
    assert!(sent(&outs, nh)[0].starts_with("CANCEL "));
    let answer = srtp_answer(&b_invite, NH_KEY);
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let to_nh = sent(&outs, nh);
    assert!(
        to_nh[0].starts_with("ACK ") && to_nh[1].starts_with("BYE "),
        "{to_nh:?}"
    );
    assert!(sent(&outs, gw).is_empty(), "nothing more to the caller");
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn bye_from_the_caller_on_an_early_dialog_cancels_the_callee_and_a_late_200_is_acked_and_ended() {
    let mut h = Harness::gw1();
    let (gw, nh, b_invite, ringing) = ringing_call(&mut h, "c40");
    let a_to = to_header(&ringing);

    // RFC 3261 §15: the caller may BYE an early dialog; the BYE gets 200, the INVITE 487.
    let outs = h.feed(gw, &ack_and_bye("c40", &a_to, "BYE", 2));
    let to_gw = sent(&outs, gw);
    assert_eq!(to_gw.len(), 2, "{to_gw:?}");
    assert_eq!(status(&to_gw[0]), 200, "{}", to_gw[0]);
    assert_eq!(header_value(&to_gw[0], "CSeq"), "2 BYE");
    assert_eq!(status(&to_gw[1]), 487, "{}", to_gw[1]);
    assert_eq!(header_value(&to_gw[1], "CSeq"), "1 INVITE");
    // The callee stops ringing: CANCEL in our INVITE's transaction.
    let to_nh = sent(&outs, nh);
    assert_eq!(to_nh.len(), 1, "{to_nh:?}");
    assert!(to_nh[0].starts_with("CANCEL "), "{}", to_nh[0]);
    assert_eq!(
        header_value(&to_nh[0], "Via"),
        header_value(&b_invite, "Via")
    );
    assert_eq!(header_value(&to_nh[0], "CSeq"), "1 CANCEL");
    assert_eq!(h.engine.active(), 0, "no longer a call in progress");
    assert_eq!(h.engine.calls(), 1, "kept for the callee's final answer");
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "cancelled"])
            .get(),
        1
    );

    // Another BYE (say a retransmission) changes nothing: the callee's answer is still awaited.
    let outs = h.feed(gw, &ack_and_bye("c40", &a_to, "BYE", 3));
    let to_gw = sent(&outs, gw);
    assert_eq!(to_gw.len(), 1, "{to_gw:?}");
    assert_eq!(status(&to_gw[0]), 200);
    assert!(sent(&outs, nh).is_empty());
    assert_eq!(h.engine.calls(), 1);

    // The callee's 200 crossed the CANCEL: it is acknowledged and its dialog ended.
    let answer = srtp_answer(&b_invite, NH_KEY);
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let to_nh = sent(&outs, nh);
    assert_eq!(to_nh.len(), 2, "{to_nh:?}");
    assert!(to_nh[0].starts_with("ACK "), "{}", to_nh[0]);
    assert!(to_nh[1].starts_with("BYE "), "{}", to_nh[1]);
    assert!(
        to_nh.iter().all(|m| to_header(m).ends_with(";tag=callee")),
        "in the callee's dialog: {to_nh:?}"
    );
    assert!(sent(&outs, gw).is_empty(), "nothing more to the caller");
    assert!(media_start(&outs).is_none(), "no media for an ended call");
    assert_eq!(h.engine.calls(), 0, "no call state left");
    assert_eq!(h.engine.active(), 0);
    assert_eq!(h.engine_ports_released(), 2, "both legs' ports given back");
    assert_eq!(
        h.metrics().active_calls.with_label_values(&["srtp"]).get(),
        0
    );
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        0
    );
}

#[test]
fn bye_from_the_callee_before_it_answers_ends_the_attempt_and_cancels_its_invite() {
    let mut h = Harness::gw1();
    let (gw, nh, b_invite, _) = ringing_call(&mut h, "c41");
    // A callee must not BYE an early dialog (RFC 3261 §15); one that does has given up.
    let bye = format!(
        "BYE sip:mediation@192.0.2.10:5070;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-calleebye\r\nMax-Forwards: 70\r\n\
         From: {};tag=callee\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        header_value(&b_invite, "To"),
        header_value(&b_invite, "From"),
        header_value(&b_invite, "Call-ID"),
    );
    let outs = h.feed(nh, &bye);
    let to_nh = sent(&outs, nh);
    assert_eq!(to_nh.len(), 2, "{to_nh:?}");
    assert_eq!(status(&to_nh[0]), 200, "{}", to_nh[0]);
    assert_eq!(header_value(&to_nh[0], "CSeq"), "1 BYE");
    assert!(to_nh[1].starts_with("CANCEL "), "{}", to_nh[1]);
    let to_gw = sent(&outs, gw);
    assert_eq!(to_gw.len(), 1, "{to_gw:?}");
    assert_eq!(status(&to_gw[0]), 487);
    assert_eq!(h.engine.active(), 0);
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "callee_bye"])
            .get(),
        1
    );
    // Its final answer to the CANCELled INVITE is acknowledged and the call is gone.
    let outs = h.feed(nh, &respond(&b_invite, 487, "Request Terminated", None));
    let to_nh = sent(&outs, nh);
    assert_eq!(to_nh.len(), 1, "{to_nh:?}");
    assert!(to_nh[0].starts_with("ACK "), "{}", to_nh[0]);
    assert!(
        sent(&outs, gw).is_empty(),
        "the caller had its final answer"
    );
    assert_eq!(h.engine.calls(), 0);
    assert_eq!(h.engine_ports_released(), 2);
}

#[test]
fn max_forwards_zero_gets_483_and_unknown_dialog_gets_481() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    let inv = invite("c11", "sip:+15551234@192.0.2.10", &gw_offer())
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(&sent(&h.feed(gw, &inv), gw)[0]), 483);
    let bye = ack_and_bye("nope", "<sip:x@y>;tag=zz", "BYE", 2);
    assert_eq!(status(&sent(&h.feed(gw, &bye), gw)[0]), 481);
}
