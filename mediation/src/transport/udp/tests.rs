//! The UDP door on loopback: admission by source, `Opened` then `Message`s, retransmission of
//! what the call layer sends, absorption of repeats, 400 for garbage, outbound flows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::{bind_udp, FlowLimits, UdpContext, UdpHandle};
use crate::metrics::Metrics;
use crate::sip::transaction::Timers;
use crate::transport::{ConnId, Listener, Peer, PeerIdentity, Signalling, SipEvent};

struct Rig {
    addr: SocketAddr,
    handle: UdpHandle,
    events: mpsc::Receiver<SipEvent>,
    metrics: Metrics,
    _shutdown: watch::Sender<bool>,
}

/// A UDP door that admits only `allowed` as gateway `gw3`, with T1 = 50 ms.
async fn rig(allowed: SocketAddr) -> Rig {
    let (tx, events) = mpsc::channel(64);
    let (shutdown, rx) = watch::channel(false);
    let metrics = Metrics::new();
    let ctx = UdpContext {
        admit: Arc::new(move |remote| {
            (remote == allowed).then(|| PeerIdentity {
                peer: Peer::Gateway("gw3".into()),
                signalling: Signalling::Udp,
                listener: Listener::GatewayUdp,
                remote,
            })
        }),
        events: tx,
        timers: Timers {
            t1: Duration::from_millis(50),
            ..Timers::default()
        },
        limits: FlowLimits::default(),
        max_message_bytes: 65_535,
        metrics: metrics.clone(),
    };
    let (addr, handle) = bind_udp("127.0.0.1:0".parse().unwrap(), ctx, rx)
        .await
        .unwrap();
    Rig {
        addr,
        handle,
        events,
        metrics,
        _shutdown: shutdown,
    }
}

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:+15551234@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n\
         Call-ID: udp-test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn next(events: &mut mpsc::Receiver<SipEvent>) -> SipEvent {
    tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .expect("an event in time")
        .expect("events open")
}

async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("a datagram in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn gateway_flow_opens_delivers_and_absorbs_repeats() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut r = rig(gw.local_addr().unwrap()).await;
    gw.send_to(b"\r\n\r\n", r.addr).await.unwrap(); // keep-alive: ignored
    gw.send_to(invite("z9hG4bK1").as_bytes(), r.addr)
        .await
        .unwrap();
    let SipEvent::Opened { conn, peer, out } = next(&mut r.events).await else {
        panic!("Opened first");
    };
    assert_eq!(peer.signalling, Signalling::Udp);
    assert_eq!(peer.listener, Listener::GatewayUdp);
    let SipEvent::Message { conn: c, .. } = next(&mut r.events).await else {
        panic!("then the INVITE");
    };
    assert_eq!(c, conn);
    // A retransmitted INVITE is absorbed, not handed up twice.
    gw.send_to(invite("z9hG4bK1").as_bytes(), r.addr)
        .await
        .unwrap();
    // The call layer answers 486: retransmitted (timer G) until the ACK.
    let busy = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\n\
                From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n\
                Call-ID: udp-test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    out.send(Bytes::from_static(busy.as_bytes())).await.unwrap();
    assert!(recv_text(&gw).await.starts_with("SIP/2.0 486"));
    assert!(
        recv_text(&gw).await.starts_with("SIP/2.0 486"),
        "retransmitted"
    );
    let ack = invite("z9hG4bK1")
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK");
    gw.send_to(ack.as_bytes(), r.addr).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), r.events.recv())
            .await
            .is_err(),
        "neither the repeated INVITE nor the ACK of the 486 reach the call layer"
    );
    assert_eq!(
        r.metrics
            .sip_udp_dropped
            .with_label_values(&["unknown_source"])
            .get(),
        0
    );
}

#[tokio::test]
async fn strangers_are_dropped_and_garbage_gets_400() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut r = rig(gw.local_addr().unwrap()).await;
    stranger
        .send_to(invite("z9hG4bK2").as_bytes(), r.addr)
        .await
        .unwrap();
    gw.send_to(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK3\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", r.addr)
        .await
        .unwrap();
    assert!(matches!(next(&mut r.events).await, SipEvent::Opened { .. }));
    assert!(
        recv_text(&gw).await.starts_with("SIP/2.0 200"),
        "OPTIONS answered"
    );
    gw.send_to(
        b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK4\r\nCall-ID: g\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 9999\r\n\r\n",
        r.addr,
    )
    .await
    .unwrap();
    let reply = recv_text(&gw).await;
    assert!(reply.starts_with("SIP/2.0 4"), "{reply}");
    gw.send_to(b"\x00\x01 not sip", r.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        r.metrics
            .sip_udp_dropped
            .with_label_values(&["unknown_source"])
            .get(),
        1
    );
    assert_eq!(
        r.metrics
            .sip_malformed
            .with_label_values(&["gateway_udp"])
            .get(),
        2
    );
}

#[tokio::test]
async fn outbound_flow_retransmits_and_times_out_with_408() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut r = rig("127.0.0.1:1".parse().unwrap()).await;
    let conn = ConnId::next();
    assert!(
        r.handle
            .open(conn, Peer::Gateway("gw3".into()), gw.local_addr().unwrap())
            .await
    );
    let SipEvent::Opened { conn: c, peer, out } = next(&mut r.events).await else {
        panic!("Opened");
    };
    assert_eq!((c, peer.listener), (conn, Listener::Outbound));
    out.send(Bytes::from(invite("z9hG4bK5"))).await.unwrap();
    let started = std::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        assert!(recv_text(&gw).await.starts_with("INVITE "));
        at.push(started.elapsed());
    }
    // Timer A: 50 ms, then 100 ms later.
    let gap = at[2] - at[1];
    assert!(gap >= Duration::from_millis(80), "{at:?}");
    // Timer B (64*T1 = 3.2 s): a 408 comes up.
    let event = tokio::time::timeout(Duration::from_secs(5), r.events.recv())
        .await
        .unwrap()
        .unwrap();
    let SipEvent::Message {
        msg: rsip::SipMessage::Response(resp),
        ..
    } = event
    else {
        panic!("a response");
    };
    assert_eq!(resp.status_code.code(), 408);
}
