//! The flow table with an explicit clock: per-source caps and eviction under spoofed ports,
//! idle flows forgotten or parked and brought back, only due flows touched, the CLOSE of the
//! call layer, and responses found by the request they answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{FlowLimits, FlowTable, Gone, TableFull};
use crate::sip::transaction::Timers;
use crate::transport::ConnId;

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn table(limits: FlowLimits) -> FlowTable {
    FlowTable::new(Timers::default(), limits)
}

/// 64*T1 with the default timers.
const IDLE: Duration = Duration::from_secs(32);

fn request(method: &str, branch: &str) -> Bytes {
    Bytes::from(format!(
        "{method} sip:+15551234@gw.example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5069;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.10>;tag=f1\r\nTo: <sip:b@gw.example.test>\r\n\
         Call-ID: flows-1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn trying(branch: &str) -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 192.0.2.10:5069;branch={branch}\r\n\
         From: <sip:a@192.0.2.10>;tag=f1\r\nTo: <sip:b@gw.example.test>\r\n\
         Call-ID: flows-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// A datagram-borne INVITE arrives on `remote` and we answer 100 Trying: it carries a call.
fn carry_call(t: &mut FlowTable, now: Instant, remote: SocketAddr) {
    let flow = t.flow_mut(remote).unwrap();
    let invite = crate::sip::parse(&request("INVITE", "z9hG4bKcall")).unwrap();
    assert!(flow.txns.receive(now, invite).is_some());
    flow.txns.send(now, trying("z9hG4bKcall"));
    while flow.txns.poll_transmit().is_some() {}
    t.update(now, remote, true);
}

#[test]
fn two_thousand_spoofed_ports_cannot_keep_the_gateway_out() {
    let mut t = table(FlowLimits::default());
    let now = Instant::now();
    let mut evicted = 0;
    for port in 0..2000u16 {
        let got = t.insert_inbound(now, addr("192.0.2.7", 10_000 + port), ConnId::next());
        evicted += got.expect("room is made by eviction").len();
    }
    assert_eq!(t.len(), 32, "the IP's call-less flows are capped");
    assert_eq!(
        evicted,
        2000 - 32,
        "each evicted flow's id is reported closed"
    );
    assert_eq!(t.conns(), 32, "evicted ids are forgotten");
    // The real gateway from a port never seen before still gets a flow.
    let gw = addr("192.0.2.7", 5060);
    let conn = ConnId::next();
    assert!(t.insert_inbound(now, gw, conn).is_ok());
    assert!(t.is_live(gw));
    // Once it carries a call, a new burst of spoofed ports does not evict it.
    carry_call(&mut t, now, gw);
    for port in 0..2000u16 {
        let later = now + Duration::from_millis(1);
        t.insert_inbound(later, addr("192.0.2.7", 20_000 + port), ConnId::next())
            .unwrap();
    }
    assert!(t.is_live(gw));
    assert_eq!(t.remote_of(now, conn), Some(gw));
    // Another gateway IP is not affected by the first one's spoofers.
    assert!(t
        .insert_inbound(now, addr("198.51.100.1", 5060), ConnId::next())
        .unwrap()
        .is_empty());
}

#[test]
fn least_recently_active_flow_of_the_ip_goes_first() {
    let mut t = table(FlowLimits {
        per_source: 2,
        total: 100,
    });
    let t0 = Instant::now();
    let (a, b, c) = (
        addr("192.0.2.7", 1),
        addr("192.0.2.7", 2),
        addr("192.0.2.7", 3),
    );
    let (ca, cb) = (ConnId::next(), ConnId::next());
    t.insert_inbound(t0, a, ca).unwrap();
    t.insert_inbound(t0 + Duration::from_secs(1), b, cb)
        .unwrap();
    // `a` speaks again: `b` is now the least recently active.
    t.update(t0 + Duration::from_secs(2), a, true);
    let gone = t
        .insert_inbound(t0 + Duration::from_secs(3), c, ConnId::next())
        .unwrap();
    assert_eq!(gone, vec![cb]);
    assert!(t.is_live(a) && !t.is_live(b) && t.is_live(c));
}

#[test]
fn a_full_table_refuses_a_new_ip_but_never_our_own_flows() {
    let mut t = table(FlowLimits {
        per_source: 10,
        total: 2,
    });
    let now = Instant::now();
    t.insert_inbound(now, addr("192.0.2.7", 1), ConnId::next())
        .unwrap();
    t.insert_inbound(now, addr("192.0.2.8", 1), ConnId::next())
        .unwrap();
    assert_eq!(
        t.insert_inbound(now, addr("192.0.2.9", 1), ConnId::next()),
        Err(TableFull)
    );
    // An IP with a flow of its own gives that up instead.
    assert_eq!(
        t.insert_inbound(now, addr("192.0.2.7", 2), ConnId::next())
            .unwrap()
            .len(),
        1
    );
    // Flows the call layer opens are never refused.
    let out = ConnId::next();
    t.insert_outbound(now, addr("192.0.2.9", 5060), out);
    assert_eq!(t.remote_of(now, out), Some(addr("192.0.2.9", 5060)));
}

#[test]
fn idle_call_less_flows_are_forgotten_after_64_t1() {
    let mut t = table(FlowLimits::default());
    let t0 = Instant::now();
    let remote = addr("192.0.2.7", 5060);
    let conn = ConnId::next();
    t.insert_inbound(t0, remote, conn).unwrap();
    assert_eq!(t.next_deadline(), Some(t0 + IDLE));
    // Activity pushes the expiry back.
    t.update(t0 + Duration::from_secs(10), remote, true);
    assert!(t.due(t0 + IDLE).is_empty());
    let later = t0 + Duration::from_secs(10) + IDLE;
    assert_eq!(t.due(later), vec![remote]);
    assert_eq!(t.expire(later, remote), Some(Gone::Closed(vec![conn])));
    assert!(!t.knows(remote));
    assert_eq!((t.len(), t.conns()), (0, 0));
    assert_eq!(t.remote_of(later, conn), None);
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn a_flow_with_transactions_is_not_idle() {
    let mut t = table(FlowLimits::default());
    let t0 = Instant::now();
    let remote = addr("192.0.2.7", 5060);
    t.insert_inbound(t0, remote, ConnId::next()).unwrap();
    let options = crate::sip::parse(&request("OPTIONS", "z9hG4bKo")).unwrap();
    t.flow_mut(remote).unwrap().txns.receive(t0, options);
    t.update(t0, remote, true);
    // Never answered: the server transaction lives 180 s, longer than the idle time.
    assert_eq!(t.expire(t0 + IDLE, remote), None);
    assert!(t.is_live(remote));
}

#[test]
fn a_flow_that_carried_a_call_is_parked_and_comes_back_under_the_same_id() {
    let mut t = table(FlowLimits::default());
    let t0 = Instant::now();
    let remote = addr("192.0.2.7", 5060);
    let conn = ConnId::next();
    t.insert_inbound(t0, remote, conn).unwrap();
    carry_call(&mut t, t0, remote);
    // The answered INVITE's transaction ends (180 s unanswered limit here), then 64*T1 idle.
    let mut now = t0;
    while t.is_live(remote) {
        now = t.next_deadline().expect("a deadline");
        for r in t.due(now) {
            t.flow_mut(r).unwrap().txns.handle_timeout(now);
            if let Some(gone) = t.expire(now, r) {
                assert_eq!(gone, Gone::Parked);
            }
        }
    }
    // Not before the unanswered server transaction (180 s) has ended.
    assert!(now >= t0 + Duration::from_secs(180), "{:?}", now - t0);
    assert_eq!((t.len(), t.parked(), t.conns()), (0, 1, 1));
    assert!(t.knows(remote));
    // Hours later the call layer sends a BYE on the same id: the flow is back.
    let bye_at = now + Duration::from_secs(3600);
    assert_eq!(t.remote_of(bye_at, conn), Some(remote));
    assert!(t.is_live(remote));
    assert_eq!(t.parked(), 0);
    // The call layer closes the id (no call uses it): the address is forgotten.
    assert!(t.close(conn));
    assert!(!t.knows(remote));
    assert_eq!(t.conns(), 0);
    assert!(!t.close(conn), "only once");
}

#[test]
fn a_datagram_brings_a_parked_flow_back() {
    let mut t = table(FlowLimits::default());
    let t0 = Instant::now();
    let remote = addr("192.0.2.7", 5060);
    let conn = ConnId::next();
    t.insert_outbound(t0, remote, conn);
    assert_eq!(t.expire(t0 + IDLE, remote), Some(Gone::Parked));
    assert!(t.revive(t0 + IDLE, remote));
    assert_eq!(t.flow_mut(remote).unwrap().conns, vec![conn]);
    assert!(!t.revive(t0 + IDLE, remote), "already live");
}

#[test]
fn only_due_flows_are_handed_out() {
    let mut t = table(FlowLimits {
        per_source: 5000,
        total: 5000,
    });
    let t0 = Instant::now();
    for port in 0..1000u16 {
        t.insert_inbound(t0, addr("192.0.2.7", port), ConnId::next())
            .unwrap();
    }
    // One flow sends a request: timer E is due after T1; the others idle for 64*T1.
    let busy = addr("192.0.2.7", 5060);
    t.insert_inbound(t0, busy, ConnId::next()).unwrap();
    t.flow_mut(busy)
        .unwrap()
        .txns
        .send(t0, request("OPTIONS", "z9hG4bKe"));
    t.update(t0, busy, true);
    let t1 = Timers::default().t1;
    assert_eq!(t.next_deadline(), Some(t0 + t1));
    assert_eq!(t.due(t0 + t1), vec![busy]);
    assert!(t.due(t0 + t1).is_empty(), "taken out until updated");
    t.flow_mut(busy).unwrap().txns.handle_timeout(t0 + t1);
    t.update(t0 + t1, busy, false);
    assert_eq!(t.next_deadline(), Some(t0 + t1 * 3), "timer E doubled");
}

#[test]
fn responses_find_the_flow_their_request_went_out_on() {
    let mut t = table(FlowLimits::default());
    let now = Instant::now();
    let out = addr("192.0.2.7", 5060);
    t.insert_outbound(now, out, ConnId::next());
    t.sent_request(out, "z9hG4bKq".into(), "invite".into());
    assert_eq!(t.sent_on("z9hG4bKq", "INVITE"), Some(out));
    assert_eq!(t.sent_on("z9hG4bKq", "BYE"), None);
    assert_eq!(t.sent_on("z9hG4bKz", "INVITE"), None);
    // A forgotten flow owns nothing.
    assert_eq!(t.expire(now + IDLE, out), Some(Gone::Parked));
    assert_eq!(t.sent_on("z9hG4bKq", "INVITE"), None);
}
