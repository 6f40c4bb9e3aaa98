//! The §17 timers and retransmission absorption, driven by a simulated clock (no sleeps).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Timers, Transactions};

const MS: Duration = Duration::from_millis(1);

fn request(method: &str, branch: &str, cseq: u32) -> Bytes {
    Bytes::from(format!(
        "{method} sip:+15551234@gw.example.test;transport=udp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5069;rport;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@192.0.2.10>;tag=f1\r\n\
         To: <sip:+15551234@gw.example.test>\r\n\
         Call-ID: call-1\r\n\
         CSeq: {cseq} {method}\r\n\
         Route: <sip:proxy.example.test;lr>\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn response(code: u16, method: &str, branch: &str, cseq: u32) -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5069;rport;branch={branch}\r\n\
         From: <sip:a@192.0.2.10>;tag=f1\r\n\
         To: <sip:+15551234@gw.example.test>;tag=t9\r\n\
         Call-ID: call-1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn msg(bytes: &Bytes) -> crate::sip::Message {
    crate::sip::parse(bytes).unwrap()
}

fn drain(t: &mut Transactions) -> Vec<String> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

fn timers() -> Timers {
    Timers::default()
}

/// Runs the clock from `start` to `end` in 1 ms steps, recording when something was sent.
fn run(t: &mut Transactions, start: Instant, end: Duration) -> Vec<(Duration, String)> {
    let mut sent = Vec::new();
    let mut now = start;
    while now <= start + end {
        if t.poll_timeout().is_some_and(|d| d <= now) {
            t.handle_timeout(now);
        }
        for s in drain(t) {
            sent.push((now - start, s));
        }
        now += MS;
    }
    sent
}

fn code_of(m: &crate::sip::Message) -> u16 {
    m.code().unwrap_or(0)
}

#[test]
fn timer_a_doubles_and_timer_b_delivers_408() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("INVITE", "z9hG4bKa", 1));
    assert_eq!(drain(&mut t).len(), 1);
    let sent = run(&mut t, t0, Duration::from_secs(40));
    let at: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    // A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 32 s.
    assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, s)| s.starts_with("INVITE ")));
    let timeout = t.poll_deliver().expect("408 after timer B");
    assert_eq!(code_of(&timeout), 408);
    assert_eq!(t.poll_deliver().map(|m| code_of(&m)), None);
    // The engine's ACK for the 408 is absorbed: the transaction already gave up.
    t.send(
        t0 + Duration::from_secs(33),
        request("ACK", "z9hG4bKa", 1).slice(..),
    );
    assert!(drain(&mut t).is_empty());
}

#[test]
fn provisional_stops_timer_a_and_b() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("INVITE", "z9hG4bKa", 1));
    drain(&mut t);
    let ringing = msg(&response(180, "INVITE", "z9hG4bKa", 1));
    assert!(t.receive(t0 + 100 * MS, ringing).is_some());
    assert!(run(&mut t, t0, Duration::from_secs(40)).is_empty());
    assert!(t.poll_deliver().is_none(), "no 408 once proceeding");
}

#[test]
fn non_2xx_is_acked_by_the_transaction_and_repeats_absorbed_until_timer_d() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("INVITE", "z9hG4bKa", 1));
    drain(&mut t);
    let busy = response(486, "INVITE", "z9hG4bKa", 1);
    assert!(t.receive(t0 + 10 * MS, msg(&busy)).is_some());
    let acks = drain(&mut t);
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    assert!(ack.starts_with("ACK sip:+15551234@gw.example.test;transport=udp SIP/2.0\r\n"));
    assert!(ack.contains("branch=z9hG4bKa"), "{ack}");
    assert!(
        ack.contains("To: <sip:+15551234@gw.example.test>;tag=t9"),
        "{ack}"
    );
    assert!(ack.contains("CSeq: 1 ACK"), "{ack}");
    assert!(ack.contains("Route: <sip:proxy.example.test;lr>"), "{ack}");
    // The engine's own ACK is not sent twice.
    t.send(t0 + 11 * MS, request("ACK", "z9hG4bKa", 1));
    assert!(drain(&mut t).is_empty());
    // A retransmitted 486 is absorbed and ACKed again.
    assert!(t.receive(t0 + Duration::from_secs(1), msg(&busy)).is_none());
    assert_eq!(drain(&mut t).len(), 1);
    // Timer D ends it.
    t.handle_timeout(t0 + Duration::from_secs(33));
    assert_eq!(t.len(), 0);
}

#[test]
fn retransmitted_2xx_gets_the_engines_ack_again() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("INVITE", "z9hG4bKa", 1));
    drain(&mut t);
    let ok = response(200, "INVITE", "z9hG4bKa", 1);
    assert!(t.receive(t0 + 10 * MS, msg(&ok)).is_some());
    assert_eq!(t.len(), 0, "a 2xx ends the client INVITE transaction");
    // A repeat before the engine ACKed is absorbed silently.
    assert!(t.receive(t0 + 20 * MS, msg(&ok)).is_none());
    t.send(t0 + 30 * MS, request("ACK", "z9hG4bKack", 1));
    assert_eq!(drain(&mut t).len(), 1);
    assert!(t.receive(t0 + 600 * MS, msg(&ok)).is_none());
    let again = drain(&mut t);
    assert_eq!(again.len(), 1);
    assert!(again[0].contains("branch=z9hG4bKack"));
    t.handle_timeout(t0 + Duration::from_secs(33));
    assert!(t.is_empty());
}

#[test]
fn timer_e_caps_at_t2_and_timer_f_delivers_408() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("BYE", "z9hG4bKb", 2));
    drain(&mut t);
    let sent = run(&mut t, t0, Duration::from_secs(33));
    let at: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(
        at,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let timeout = t.poll_deliver().expect("408 after timer F");
    assert_eq!(code_of(&timeout), 408);
}

#[test]
fn non_invite_proceeding_retransmits_every_t2_then_timer_k() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, request("OPTIONS", "z9hG4bKo", 1));
    drain(&mut t);
    let trying = response(100, "OPTIONS", "z9hG4bKo", 1);
    assert!(t.receive(t0 + 100 * MS, msg(&trying)).is_some());
    let sent = run(&mut t, t0, Duration::from_secs(9));
    let at: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(at, vec![500, 4500, 8500]);
    let ok = response(200, "OPTIONS", "z9hG4bKo", 1);
    let now = t0 + Duration::from_secs(9);
    assert!(t.receive(now, msg(&ok)).is_some());
    assert!(t.receive(now + MS, msg(&ok)).is_none(), "repeat absorbed");
    t.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(t.len(), 0, "timer K");
}

#[test]
fn server_invite_absorbs_repeats_and_resends_last_response() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    let invite = request("INVITE", "z9hG4bKs", 1);
    assert!(t.receive(t0, msg(&invite)).is_some());
    assert!(t.receive(t0 + 500 * MS, msg(&invite)).is_none());
    assert!(drain(&mut t).is_empty(), "nothing to resend yet");
    t.send(t0 + 600 * MS, response(180, "INVITE", "z9hG4bKs", 1));
    assert_eq!(drain(&mut t).len(), 1);
    assert!(t.receive(t0 + 1500 * MS, msg(&invite)).is_none());
    let resent = drain(&mut t);
    assert_eq!(resent.len(), 1);
    assert!(resent[0].starts_with("SIP/2.0 180"));
}

#[test]
fn server_non_2xx_timer_g_until_ack_then_timer_i() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    assert!(t
        .receive(t0, msg(&request("INVITE", "z9hG4bKs", 1)))
        .is_some());
    t.send(t0, response(486, "INVITE", "z9hG4bKs", 1));
    drain(&mut t);
    let sent = run(&mut t, t0, Duration::from_secs(12));
    let at: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    // G: 0.5, 1.5, 3.5, 7.5, 11.5 s (capped at T2 = 4 s).
    assert_eq!(at, vec![500, 1500, 3500, 7500, 11500]);
    let ack = request("ACK", "z9hG4bKs", 1);
    let now = t0 + Duration::from_secs(12);
    assert!(t.receive(now, msg(&ack)).is_none(), "ACK absorbed");
    assert!(run(&mut t, now, Duration::from_secs(4)).is_empty());
    assert!(t.receive(now + MS, msg(&ack)).is_none());
    t.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(t.len(), 0, "timer I");
}

#[test]
fn server_non_2xx_timer_h_gives_up() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.receive(t0, msg(&request("INVITE", "z9hG4bKs", 1)));
    t.send(t0, response(500, "INVITE", "z9hG4bKs", 1));
    drain(&mut t);
    let sent = run(&mut t, t0, Duration::from_secs(33));
    assert_eq!(sent.last().map(|(d, _)| d.as_millis()), Some(31500));
    assert_eq!(t.len(), 0, "timer H");
}

#[test]
fn server_2xx_retransmitted_until_ack() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.receive(t0, msg(&request("INVITE", "z9hG4bKs", 1)));
    t.send(t0, response(200, "INVITE", "z9hG4bKs", 1));
    drain(&mut t);
    let sent = run(&mut t, t0, Duration::from_secs(8));
    let at: Vec<u64> = sent.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(at, vec![500, 1500, 3500, 7500]);
    // A repeated INVITE is absorbed and the 2xx resent.
    let now = t0 + Duration::from_secs(8);
    assert!(t
        .receive(now, msg(&request("INVITE", "z9hG4bKs", 1)))
        .is_none());
    assert_eq!(drain(&mut t).len(), 1);
    // The ACK (its own branch) stops it and goes up.
    let ack = request("ACK", "z9hG4bKother", 1);
    assert!(t.receive(now, msg(&ack)).is_some());
    assert_eq!(t.len(), 0);
    assert!(run(&mut t, now, Duration::from_secs(10)).is_empty());
}

#[test]
fn server_2xx_without_ack_stops_after_64_t1() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.receive(t0, msg(&request("INVITE", "z9hG4bKs", 1)));
    t.send(t0, response(200, "INVITE", "z9hG4bKs", 1));
    drain(&mut t);
    run(&mut t, t0, Duration::from_secs(33));
    assert_eq!(t.len(), 0);
}

#[test]
fn server_non_invite_resends_final_and_timer_j() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    let bye = request("BYE", "z9hG4bKy", 2);
    assert!(t.receive(t0, msg(&bye)).is_some());
    assert!(
        t.receive(t0 + MS, msg(&bye)).is_none(),
        "absorbed in Trying"
    );
    assert!(drain(&mut t).is_empty());
    t.send(t0 + 2 * MS, response(200, "BYE", "z9hG4bKy", 2));
    drain(&mut t);
    assert!(t.receive(t0 + 500 * MS, msg(&bye)).is_none());
    assert_eq!(drain(&mut t).len(), 1, "final resent");
    assert!(run(&mut t, t0, Duration::from_secs(31)).is_empty());
    t.handle_timeout(t0 + Duration::from_secs(33));
    assert_eq!(t.len(), 0, "timer J");
}

#[test]
fn cancel_is_its_own_transaction() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.receive(t0, msg(&request("INVITE", "z9hG4bKs", 1)));
    assert!(t
        .receive(t0 + MS, msg(&request("CANCEL", "z9hG4bKs", 1)))
        .is_some());
    assert_eq!(t.len(), 2);
}

#[test]
fn configurable_t1_shortens_timer_b() {
    let t0 = Instant::now();
    let mut t = Transactions::new(Timers {
        t1: Duration::from_millis(50),
        ..Timers::default()
    });
    t.send(t0, request("INVITE", "z9hG4bKa", 1));
    drain(&mut t);
    let sent = run(&mut t, t0, Duration::from_millis(3300));
    assert_eq!(sent.len(), 6);
    assert_eq!(t.poll_deliver().map(|m| code_of(&m)), Some(408));
}

#[test]
fn table_is_bounded_and_drops_the_oldest() {
    let t0 = Instant::now();
    let mut t = Transactions::with_capacity(timers(), 3);
    for i in 0..5 {
        t.send(t0, request("OPTIONS", &format!("z9hG4bK{i}"), 1));
    }
    assert_eq!(t.len(), 3);
    assert_eq!(t.dropped(), 2);
    // The newest survive: a response to the first is no longer absorbed after its final.
    let ok = response(200, "OPTIONS", "z9hG4bK4", 1);
    assert!(t.receive(t0, msg(&ok)).is_some());
    assert!(t.receive(t0, msg(&ok)).is_none());
}

#[test]
fn unparseable_and_branchless_pass_through() {
    let t0 = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(t0, Bytes::from_static(b"garbage"));
    assert_eq!(drain(&mut t), vec!["garbage".to_string()]);
    let no_branch =
        Bytes::from(String::from_utf8_lossy(&request("OPTIONS", "x", 1)).replace(";branch=x", ""));
    t.send(t0, no_branch.clone());
    assert_eq!(drain(&mut t).len(), 1);
    assert_eq!(t.len(), 0);
    assert!(t.receive(t0, msg(&no_branch)).is_some());
}

/// Two transaction layers over an in-memory link that loses the first INVITE and the first
/// 200: each side hands its message up exactly once and the ACK ends the 2xx retransmission.
#[test]
fn lossy_link_between_two_sides() {
    let t0 = Instant::now();
    let mut uac = Transactions::new(timers());
    let mut uas = Transactions::new(timers());
    let mut lost = ["INVITE ", "SIP/2.0 200"].map(|s| s.to_string()).to_vec();
    let (mut up_uac, mut up_uas) = (Vec::new(), Vec::new());
    uac.send(t0, request("INVITE", "z9hG4bKl", 1));
    let mut now = t0;
    while now < t0 + Duration::from_secs(10) {
        hop(&mut uac, &mut uas, &mut up_uas, &mut lost, now);
        hop(&mut uas, &mut uac, &mut up_uac, &mut lost, now);
        // The layers above: the UAS answers 200 at once, the UAC ACKs it once.
        if up_uas.len() == 1 && up_uas[0].starts_with("INVITE ") {
            uas.send(now, response(200, "INVITE", "z9hG4bKl", 1));
            up_uas.push("answered".into());
        }
        if up_uac.len() == 1 {
            uac.send(now, request("ACK", "z9hG4bKack", 1));
            up_uac.push("acked".into());
        }
        now += MS;
    }
    assert_eq!(
        up_uas.iter().filter(|m| m.starts_with("INVITE ")).count(),
        1
    );
    assert_eq!(up_uas.iter().filter(|m| m.starts_with("ACK ")).count(), 1);
    assert_eq!(
        up_uac
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 200"))
            .count(),
        1
    );
    assert!(lost.is_empty());
    assert_eq!(uas.len(), 0, "the ACK ended the 2xx retransmission");
}

/// Fires `from`'s timers and carries what it transmits to `to`, losing the first message that
/// starts with each of `lost`; records what `to` hands up.
fn hop(
    from: &mut Transactions,
    to: &mut Transactions,
    up: &mut Vec<String>,
    lost: &mut Vec<String>,
    now: Instant,
) {
    from.handle_timeout(now);
    while let Some(bytes) = from.poll_transmit() {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(i) = lost.iter().position(|l| text.starts_with(l.as_str())) {
            lost.remove(i);
            continue;
        }
        if to.receive(now, msg(&bytes)).is_some() {
            up.push(text);
        }
    }
}

#[test]
fn debug_shows_counts_not_the_messages_kept() {
    let key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";
    let invite = String::from_utf8(request("INVITE", "z9hG4bK-k", 1).to_vec())
        .unwrap()
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: 48\r\n\r\na=crypto:1 X INLINE:{key}\r\n"),
        );
    let mut t = Transactions::new(timers());
    t.send(Instant::now(), Bytes::from(invite));
    assert_eq!(t.len(), 1);
    let shown = format!("{t:?}");
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains("client: 1"), "{shown}");
}

#[test]
fn carried_call_marks_invites_and_their_provisional_or_2xx_answers_only() {
    let now = Instant::now();
    // A refused INVITE (503) and an OPTIONS exchange carry no call.
    let mut t = Transactions::new(timers());
    t.receive(now, msg(&request("INVITE", "z9hG4bKr", 1)));
    t.send(now, response(503, "INVITE", "z9hG4bKr", 1));
    t.receive(now, msg(&request("OPTIONS", "z9hG4bKo", 2)));
    t.send(now, response(200, "OPTIONS", "z9hG4bKo", 2));
    assert!(!t.carried_call());
    // Our 100 Trying to an INVITE does.
    t.receive(now, msg(&request("INVITE", "z9hG4bKa", 3)));
    t.send(now, response(100, "INVITE", "z9hG4bKa", 3));
    assert!(t.carried_call());
    // So does an INVITE we send.
    let mut t = Transactions::new(timers());
    t.send(now, request("INVITE", "z9hG4bKb", 1));
    assert!(t.carried_call());
}

#[test]
fn has_client_tracks_the_client_transaction_by_branch_and_method() {
    let now = Instant::now();
    let mut t = Transactions::new(timers());
    t.send(now, request("OPTIONS", "z9hG4bKh", 1));
    assert!(t.has_client("z9hG4bKh", "options"));
    assert!(!t.has_client("z9hG4bKh", "INVITE"));
    assert!(!t.has_client("z9hG4bKx", "OPTIONS"));
    t.receive(now, msg(&response(200, "OPTIONS", "z9hG4bKh", 1)));
    t.handle_timeout(now + timers().t4);
    assert!(!t.has_client("z9hG4bKh", "OPTIONS"), "timer K ended it");
}
