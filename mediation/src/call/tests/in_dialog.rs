//! Requests inside a call carried to the other party (INFO, NOTIFY, MESSAGE, OPTIONS) and their
//! answers carried back; what is still not handled; and `420 Bad Extension` for a `Require`
//! we do not implement.

use std::time::Duration;

use super::*;

const DTMF: &str = "Signal=5\r\nDuration=160\r\n";

/// A request of the gateway (the caller) in its dialog with us (`to` carries our tag).
fn gw_request(call_id: &str, to: &str, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-{method}{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request of the next hop (the callee, tag `callee`) in the dialog of our `b_invite`.
fn nh_request(b_invite: &str, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:mediation@192.0.2.10:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-nh{method}{cseq}\r\nMax-Forwards: 70\r\n\
         From: {};tag=callee\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        header_value(b_invite, "To"),
        header_value(b_invite, "From"),
        header_value(b_invite, "Call-ID"),
        body.len()
    )
}

/// The answer of the party that got `request`, with an optional body of `content_type`.
fn answer(request: &str, code: u16, reason: &str, body: Option<(&str, &str)>) -> String {
    let msg = crate::sip::parse(request.as_bytes()).unwrap();
    let mut r = ReceivedRequest::of(&msg)
        .unwrap()
        .respond(code, reason, "far");
    if let Some((content_type, body)) = body {
        r = r.body(Some(content_type), body.to_string().into());
    }
    String::from_utf8(r.encode().to_vec()).unwrap()
}

/// The body of `msg`.
fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").unwrap().1
}

/// An answered call gw1 → next hop: (gateway conn, next-hop conn, the caller's To with our tag,
/// our INVITE to the next hop).
fn up(h: &mut Harness, call_id: &str) -> (ConnId, ConnId, String, String) {
    let (gw, nh, ok, b_invite) =
        answered_call_from(h, &invite(call_id, "sip:+15551234@192.0.2.10", &gw_offer()));
    (gw, nh, to_header(&ok), b_invite)
}

#[test]
fn info_from_the_gateway_reaches_the_next_hop_with_its_body_and_the_answer_comes_back() {
    let mut h = Harness::gw1();
    let (gw, nh, to, b_invite) = up(&mut h, "i1");
    let extra = "Content-Type: application/dtmf-relay\r\nX-Trace: t-42\r\nP-Other: kept-here\r\n";
    let outs = h.feed(gw, &gw_request("i1", &to, "INFO", 2, extra, DTMF));
    assert!(
        sent(&outs, gw).is_empty(),
        "answered once the next hop answers"
    );
    let info = sent(&outs, nh).remove(0);
    // Our request in the next hop's dialog: its Contact, its Call-ID and tags, our next CSeq.
    assert!(
        info.starts_with("INFO sip:callee@10.0.0.2:5061;transport=tls SIP/2.0\r\n"),
        "{info}"
    );
    assert_eq!(
        header_value(&info, "Call-ID"),
        header_value(&b_invite, "Call-ID")
    );
    assert_eq!(header_value(&info, "From"), header_value(&b_invite, "From"));
    assert!(header_value(&info, "To").ends_with(";tag=callee"), "{info}");
    assert_eq!(header_value(&info, "CSeq"), "2 INFO");
    assert!(
        !header_value(&info, "Via").contains("10.0.0.1"),
        "our Via only"
    );
    assert_eq!(
        header_value(&info, "Content-Type"),
        "application/dtmf-relay"
    );
    assert_eq!(body(&info), DTMF);
    assert_eq!(header_value(&info, "X-Trace"), "t-42", "pass_headers");
    assert!(!info.contains("P-Other"), "{info}");

    let outs = h.feed(
        nh,
        &answer(&info, 200, "OK", Some(("text/plain", "digit taken"))),
    );
    assert!(sent(&outs, nh).is_empty());
    let ok = sent(&outs, gw).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(header_value(&ok, "CSeq"), "2 INFO");
    assert_eq!(header_value(&ok, "To"), to, "in the gateway's dialog");
    assert_eq!(
        header_value(&ok, "Via"),
        "SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-INFO2"
    );
    assert_eq!(header_value(&ok, "Content-Type"), "text/plain");
    assert_eq!(body(&ok), "digit taken");
    assert_eq!(h.engine.calls(), 1);
}

#[test]
fn notify_message_and_options_from_the_next_hop_reach_the_gateway() {
    let mut h = Harness::gw1();
    let (gw, nh, to, b_invite) = up(&mut h, "i2");
    let extra = "Event: refer\r\nSubscription-State: active;expires=60\r\n\
                 Content-Type: message/sipfrag\r\n";
    let outs = h.feed(
        nh,
        &nh_request(&b_invite, "NOTIFY", 1, extra, "SIP/2.0 200 OK\r\n"),
    );
    let notify = sent(&outs, gw).remove(0);
    assert!(
        notify.starts_with("NOTIFY sip:gw@10.0.0.1:5067;transport=tls SIP/2.0\r\n"),
        "the gateway's Contact: {notify}"
    );
    assert_eq!(header_value(&notify, "Call-ID"), "i2");
    assert_eq!(
        header_value(&notify, "To"),
        "<sip:+15550001@10.0.0.1>;tag=caller"
    );
    assert_eq!(
        header_value(&notify, "From"),
        to,
        "our tag on the gateway's leg"
    );
    assert_eq!(header_value(&notify, "CSeq"), "1 NOTIFY");
    assert_eq!(header_value(&notify, "Event"), "refer");
    assert_eq!(
        header_value(&notify, "Subscription-State"),
        "active;expires=60"
    );
    assert_eq!(header_value(&notify, "Content-Type"), "message/sipfrag");
    assert_eq!(body(&notify), "SIP/2.0 200 OK\r\n");
    let outs = h.feed(gw, &answer(&notify, 200, "OK", None));
    let ok = sent(&outs, nh).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert_eq!(header_value(&ok, "CSeq"), "1 NOTIFY");
    assert!(ok.ends_with("Content-Length: 0\r\n\r\n"), "{ok}");

    let extra = "Content-Type: text/plain\r\n";
    let outs = h.feed(nh, &nh_request(&b_invite, "MESSAGE", 2, extra, "hello"));
    let message = sent(&outs, gw).remove(0);
    assert!(message.starts_with("MESSAGE "), "{message}");
    assert_eq!(header_value(&message, "CSeq"), "2 MESSAGE");
    assert_eq!(body(&message), "hello");
    // A provisional answer is not relayed; the final one is, reason phrase and all.
    assert!(sent(&h.feed(gw, &answer(&message, 100, "Trying", None)), nh).is_empty());
    let outs = h.feed(gw, &answer(&message, 202, "Accepted for delivery", None));
    assert!(sent(&outs, nh)[0].starts_with("SIP/2.0 202 Accepted for delivery\r\n"));

    // In-dialog OPTIONS goes across too; its 2xx lists what we handle.
    let outs = h.feed(nh, &nh_request(&b_invite, "OPTIONS", 3, "", ""));
    let options = sent(&outs, gw).remove(0);
    assert!(options.starts_with("OPTIONS "), "{options}");
    let outs = h.feed(gw, &answer(&options, 200, "OK", None));
    let ok = sent(&outs, nh).remove(0);
    assert_eq!(header_value(&ok, "CSeq"), "3 OPTIONS");
    assert_eq!(header_value(&ok, "Allow"), crate::sip::ALLOW);
    assert!(crate::sip::ALLOW.contains("INFO, NOTIFY, MESSAGE"));
}

#[test]
fn two_infos_in_flight_are_answered_out_of_order() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i3");
    let ct = "Content-Type: application/dtmf-relay\r\n";
    let first = sent(&h.feed(gw, &gw_request("i3", &to, "INFO", 2, ct, DTMF)), nh).remove(0);
    let two = DTMF.replace('5', "7");
    let second = sent(&h.feed(gw, &gw_request("i3", &to, "INFO", 3, ct, &two)), nh).remove(0);
    assert_eq!(header_value(&first, "CSeq"), "2 INFO");
    assert_eq!(header_value(&second, "CSeq"), "3 INFO");
    assert_ne!(header_value(&first, "Via"), header_value(&second, "Via"));
    // The second is answered first, with a failure; then the first.
    let outs = h.feed(nh, &answer(&second, 415, "Unsupported Media Type", None));
    let r = sent(&outs, gw).remove(0);
    assert_eq!(
        (status(&r), header_value(&r, "CSeq")),
        (415, "3 INFO".into())
    );
    let outs = h.feed(nh, &answer(&first, 200, "OK", None));
    let r = sent(&outs, gw).remove(0);
    assert_eq!(
        (status(&r), header_value(&r, "CSeq")),
        (200, "2 INFO".into())
    );
    // Nothing left waiting: no timer fires later.
    h.now += Duration::from_secs(40);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty());
}

#[test]
fn an_unanswered_info_gets_408_and_the_call_stays_up() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i4");
    let ct = "Content-Type: application/dtmf-relay\r\n";
    let info = sent(&h.feed(gw, &gw_request("i4", &to, "INFO", 2, ct, DTMF)), nh).remove(0);
    h.now += Duration::from_secs(10);
    let later = sent(&h.feed(gw, &gw_request("i4", &to, "INFO", 3, ct, DTMF)), nh).remove(0);
    h.now += Duration::from_secs(23);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let timeout = sent(&outs, gw);
    assert_eq!(timeout.len(), 1, "only the first is due: {timeout:?}");
    assert_eq!(status(&timeout[0]), 408);
    assert_eq!(header_value(&timeout[0], "CSeq"), "2 INFO");
    assert!(sent(&outs, nh).is_empty(), "no BYE: the call goes on");
    assert_eq!(h.engine.calls(), 1);
    // A late answer to it is dropped; the second still gets its own.
    assert!(h.feed(nh, &answer(&info, 200, "OK", None)).is_empty());
    let outs = h.feed(nh, &answer(&later, 200, "OK", None));
    assert_eq!(header_value(&sent(&outs, gw)[0], "CSeq"), "3 INFO");
    // Nothing is left waiting.
    h.now += Duration::from_secs(40);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty());
}

#[test]
fn a_481_or_408_from_the_far_party_is_relayed_without_ending_the_call() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i5");
    for (cseq, code, reason) in [
        (2, 481, "Call/Transaction Does Not Exist"),
        (3, 408, "Request Timeout"),
    ] {
        let info = sent(
            &h.feed(gw, &gw_request("i5", &to, "INFO", cseq, "", "")),
            nh,
        )
        .remove(0);
        let outs = h.feed(nh, &answer(&info, code, reason, None));
        assert!(sent(&outs, nh).is_empty(), "no BYE");
        assert_eq!(status(&sent(&outs, gw)[0]), code);
        assert_eq!(h.engine.calls(), 1);
    }
}

#[test]
fn a_request_still_waiting_when_the_call_ends_gets_487() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i6");
    h.feed(gw, &gw_request("i6", &to, "INFO", 2, "", ""));
    let outs = h.feed(gw, &ack_and_bye("i6", &to, "BYE", 3));
    let to_gw: Vec<(u16, String)> = sent(&outs, gw)
        .iter()
        .map(|m| (status(m), header_value(m, "CSeq")))
        .collect();
    assert!(to_gw.contains(&(200, "3 BYE".into())), "{to_gw:?}");
    assert!(to_gw.contains(&(487, "2 INFO".into())), "{to_gw:?}");
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!((h.engine.calls(), h.engine.timer_entries()), (0, 0));
}

#[test]
fn before_the_answer_info_goes_into_the_callees_early_dialog_or_gets_481() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("i7", &gw_offer());
    h.next_hop_accepts(nh);
    // No early dialog with the callee yet: nothing to carry it in.
    let to = "<sip:+15551234@192.0.2.10>";
    let outs = h.feed(gw, &gw_request("i7", to, "INFO", 2, "", DTMF));
    assert_eq!(status(&sent(&outs, gw)[0]), 481);
    assert!(sent(&outs, nh).is_empty());
    // The callee rings (an early dialog, tag `callee`): INFO goes to it.
    let outs = h.feed(nh, &respond(&b_invite, 180, "Ringing", None));
    let to = to_header(&sent(&outs, gw)[0]);
    let outs = h.feed(gw, &gw_request("i7", &to, "INFO", 3, "", DTMF));
    let info = sent(&outs, nh).remove(0);
    assert!(
        info.starts_with("INFO sip:callee@10.0.0.2:5061;transport=tls SIP/2.0\r\n"),
        "{info}"
    );
    assert!(header_value(&info, "To").ends_with(";tag=callee"), "{info}");
    assert_eq!(header_value(&info, "CSeq"), "2 INFO");
    let outs = h.feed(nh, &answer(&info, 200, "OK", None));
    let ok = sent(&outs, gw).remove(0);
    assert_eq!(
        (status(&ok), header_value(&ok, "CSeq")),
        (200, "3 INFO".into())
    );
    // The other way: the callee's INFO in its early dialog goes into ours with the caller.
    let outs = h.feed(nh, &nh_request(&b_invite, "INFO", 1, "", DTMF));
    let info = sent(&outs, gw).remove(0);
    assert!(
        info.starts_with("INFO sip:gw@10.0.0.1:5067;transport=tls "),
        "{info}"
    );
    assert_eq!(header_value(&info, "From"), to);
    let outs = h.feed(gw, &answer(&info, 200, "OK", None));
    assert_eq!(status(&sent(&outs, nh)[0]), 200);
}

#[test]
fn too_many_requests_waiting_on_one_call_get_500_with_retry_after() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i13");
    for cseq in 2..18 {
        let outs = h.feed(gw, &gw_request("i13", &to, "INFO", cseq, "", DTMF));
        assert_eq!(sent(&outs, nh).len(), 1);
    }
    let outs = h.feed(gw, &gw_request("i13", &to, "INFO", 18, "", DTMF));
    assert!(sent(&outs, nh).is_empty());
    let r = sent(&outs, gw).remove(0);
    assert_eq!(
        (status(&r), header_value(&r, "Retry-After")),
        (500, "1".into())
    );
}

#[test]
fn methods_we_do_not_handle_in_a_dialog_get_501_with_allow() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i8");
    for method in ["REFER", "SUBSCRIBE", "PRACK", "PUBLISH"] {
        let outs = h.feed(gw, &gw_request("i8", &to, method, 2, "", ""));
        let r = sent(&outs, gw).remove(0);
        assert_eq!(status(&r), 501, "{r}");
        assert_eq!(header_value(&r, "Allow"), crate::sip::ALLOW);
        assert!(!crate::sip::ALLOW.contains(method));
        assert!(sent(&outs, nh).is_empty());
    }
}

#[test]
fn a_new_invite_requiring_100rel_gets_420_naming_it_and_is_counted_refused() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    let text = invite("i9", "sip:+15551234@192.0.2.10", &gw_offer()).replacen(
        "CSeq: 1 INVITE\r\n",
        "CSeq: 1 INVITE\r\nRequire: 100rel\r\nSupported: timer\r\n",
        1,
    );
    let outs = h.feed(gw, &text);
    assert!(connected(&outs).is_none(), "no call toward the next hop");
    let r = sent(&outs, gw).remove(0);
    assert!(r.starts_with("SIP/2.0 420 Bad Extension\r\n"), "{r}");
    assert_eq!(header_value(&r, "Unsupported"), "100rel");
    assert_eq!(h.engine.calls(), 0);
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "none", "refused"])
            .get(),
        1
    );
}

#[test]
fn a_reinvite_and_an_info_requiring_an_unknown_extension_get_420_naming_only_it() {
    let mut h = Harness::gw1();
    let (gw, nh, to, _) = up(&mut h, "i10");
    let text = reinvite("i10", &to, &gw_offer(), 2).replacen(
        "CSeq: 2 INVITE\r\n",
        "CSeq: 2 INVITE\r\nRequire: foo, timer\r\nSession-Expires: 1800\r\n",
        1,
    );
    let outs = h.feed(gw, &text);
    let r = sent(&outs, gw).remove(0);
    assert_eq!(status(&r), 420, "{r}");
    assert!(r.contains("\r\nUnsupported: foo\r\n"), "{r}");
    assert!(sent(&outs, nh).is_empty());
    let outs = h.feed(
        gw,
        &gw_request("i10", &to, "INFO", 3, "Require: bar\r\n", ""),
    );
    let r = sent(&outs, gw).remove(0);
    assert_eq!(
        (status(&r), header_value(&r, "Unsupported")),
        (420, "bar".into())
    );
    assert!(sent(&outs, nh).is_empty());
    assert_eq!(h.engine.calls(), 1, "the call goes on");
}

#[test]
fn ack_and_cancel_are_never_refused_for_an_extension() {
    // CANCEL with Require: the call is cancelled as ever.
    let mut h = Harness::gw1();
    let Call { a: gw, b: nh, .. } = h.call_to_next_hop("i11", &gw_offer());
    h.next_hop_accepts(nh);
    let cancel = "CANCEL sip:+15551234@192.0.2.10 SIP/2.0\r\n\
                  Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-i11\r\nMax-Forwards: 70\r\n\
                  From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: <sip:+15551234@192.0.2.10>\r\n\
                  Call-ID: i11\r\nCSeq: 1 CANCEL\r\nRequire: foo\r\nContent-Length: 0\r\n\r\n";
    let outs = h.feed(gw, cancel);
    let codes: Vec<u16> = sent(&outs, gw).iter().map(|m| status(m)).collect();
    assert_eq!(codes, [200, 487]);

    // ACK with Require: taken, nothing answered.
    let mut h = Harness::gw1();
    let (gw, _, ok, _) = answered_call_unacked(
        &mut h,
        &invite("i12", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let ack = ack_and_bye("i12", &to_header(&ok), "ACK", 1).replacen(
        "CSeq: 1 ACK\r\n",
        "CSeq: 1 ACK\r\nRequire: foo\r\n",
        1,
    );
    assert!(h.feed(gw, &ack).is_empty());
    // Confirmed: the ACK timer no longer ends the call.
    h.now += Duration::from_secs(40);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.engine.calls(), 1);
}
