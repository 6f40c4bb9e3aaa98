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
use crate::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling};
use crate::sip::transaction::Timers;
use crate::transport::SipEvent;

struct Rig {
    addr: SocketAddr,
    handle: UdpHandle,
    events: mpsc::Receiver<SipEvent>,
    metrics: Metrics,
    _shutdown: watch::Sender<bool>,
}

/// A UDP door that admits only `allowed` as gateway `gw3`, with T1 = 50 ms.
async fn rig(allowed: SocketAddr) -> Rig {
    rig_with(move |remote| remote == allowed, Duration::from_millis(50)).await
}

/// A UDP door that admits as gateway `gw3` whatever `admit` accepts, with this T1.
async fn rig_with(admit: impl Fn(SocketAddr) -> bool + Send + Sync + 'static, t1: Duration) -> Rig {
    rig_on("127.0.0.1:0", admit, t1).await
}

/// As [`rig_with`], the socket bound to `bind`.
async fn rig_on(
    bind: &str,
    admit: impl Fn(SocketAddr) -> bool + Send + Sync + 'static,
    t1: Duration,
) -> Rig {
    let (tx, events) = mpsc::channel(64);
    let (shutdown, rx) = watch::channel(false);
    let metrics = Metrics::new();
    let ctx = UdpContext {
        admit: Arc::new(move |remote| {
            admit(remote).then(|| PeerIdentity {
                peer: Peer::Gateway("gw3".into()),
                signalling: Signalling::Udp,
                listener: Listener::GatewayUdp,
                remote,
            })
        }),
        events: tx,
        timers: Timers {
            t1,
            ..Timers::default()
        },
        limits: FlowLimits::default(),
        max_message_bytes: 65_535,
        metrics: metrics.clone(),
    };
    let (addr, handle) = bind_udp(bind.parse().unwrap(), ctx, rx).await.unwrap();
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
    assert!(
        reply.starts_with("SIP/2.0 400 Bad Content-Length\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("Warning: 399 mediation \"body has 0 bytes, Content-Length says 9999\"\r\n"),
        "{reply}"
    );
    gw.send_to(b"\x00\x01 not sip", r.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        r.metrics
            .sip_udp_dropped
            .with_label_values(&["unknown_source"])
            .get(),
        1
    );
    for part in ["Content-Length", "message"] {
        let counted = r
            .metrics
            .sip_malformed
            .with_label_values(&["gateway_udp", part]);
        assert_eq!(counted.get(), 1, "{part}");
    }
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
    let SipEvent::Message { msg, .. } = event else {
        panic!("a response");
    };
    assert_eq!(msg.code(), Some(408));
}

fn options(branch: &str) -> String {
    format!(
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch={branch}\r\n\
         Call-ID: o\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn spoofed_source_ports_do_not_lock_the_gateway_out() {
    // Anything from 127.0.0.1 is the gateway's IP: 2000 "spoofed" ports, then the real one.
    let Rig {
        addr,
        mut events,
        metrics,
        _shutdown,
        ..
    } = rig_with(|r| r.ip().is_loopback(), Duration::from_millis(50)).await;
    // The call layer: counts what comes up, and reports the first INVITE's source.
    let (invite_tx, mut invite_rx) = mpsc::channel(1);
    let layer = tokio::spawn(async move {
        let (mut opened, mut closed) = (0usize, 0usize);
        let mut outs = std::collections::HashMap::new();
        while let Some(event) = events.recv().await {
            match event {
                SipEvent::Opened { conn, out, .. } => {
                    opened += 1;
                    outs.insert(conn, out);
                }
                SipEvent::Closed { conn } => {
                    closed += 1;
                    outs.remove(&conn);
                }
                SipEvent::Message { conn, msg } => {
                    if msg.method() == Some(&crate::sip::Method::Invite) {
                        let _ = invite_tx.send((conn, opened, closed, outs.len())).await;
                    }
                }
            }
        }
    });
    for i in 0..2000 {
        let spoof = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        spoof
            .send_to(options(&format!("z9hG4bKs{i}")).as_bytes(), addr)
            .await
            .unwrap();
        // OPTIONS is answered on its flow: proof it got one.
        assert!(
            recv_text(&spoof).await.starts_with("SIP/2.0 200"),
            "spoofed port {i} got a flow"
        );
    }
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    gw.send_to(invite("z9hG4bKreal").as_bytes(), addr)
        .await
        .unwrap();
    let (_, opened, closed, held) = tokio::time::timeout(Duration::from_secs(5), invite_rx.recv())
        .await
        .expect("the real gateway's INVITE comes through")
        .unwrap();
    // (The system may hand a port out again: a few "new" ports may find their flow alive.)
    assert!(opened > 1900, "{opened}");
    assert_eq!(held, 32, "one source IP holds 32 call-less flows");
    assert_eq!(closed, opened - 32, "evicted flows are reported closed");
    assert_eq!(
        metrics
            .sip_udp_dropped
            .with_label_values(&["flow_evicted"])
            .get(),
        closed as u64
    );
    assert_eq!(
        metrics
            .sip_udp_dropped
            .with_label_values(&["flow_table_full"])
            .get(),
        0
    );
    layer.abort();
}

#[tokio::test]
async fn an_idle_flow_is_forgotten_and_reported_closed() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let allowed = gw.local_addr().unwrap();
    // T1 = 10 ms: a flow is forgotten 64*T1 = 640 ms after its last activity.
    let mut r = rig_with(move |a| a == allowed, Duration::from_millis(10)).await;
    gw.send_to(options("z9hG4bKi1").as_bytes(), r.addr)
        .await
        .unwrap();
    let SipEvent::Opened { conn, .. } = next(&mut r.events).await else {
        panic!("Opened");
    };
    assert!(recv_text(&gw).await.starts_with("SIP/2.0 200"));
    let SipEvent::Closed { conn: closed } = next(&mut r.events).await else {
        panic!("then Closed");
    };
    assert_eq!(closed, conn);
    // The gateway comes back: a new flow, a new connection.
    gw.send_to(options("z9hG4bKi2").as_bytes(), r.addr)
        .await
        .unwrap();
    let SipEvent::Opened { conn: again, .. } = next(&mut r.events).await else {
        panic!("Opened again");
    };
    assert_ne!(again, conn);
}

#[tokio::test]
async fn close_from_the_call_layer_forgets_the_flow() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut r = rig(gw.local_addr().unwrap()).await;
    gw.send_to(options("z9hG4bKc1").as_bytes(), r.addr)
        .await
        .unwrap();
    let SipEvent::Opened { conn, out, .. } = next(&mut r.events).await else {
        panic!("Opened");
    };
    out.send(crate::transport::CLOSE).await.unwrap();
    let SipEvent::Closed { conn: closed } = next(&mut r.events).await else {
        panic!("Closed");
    };
    assert_eq!(closed, conn);
}

#[tokio::test]
async fn a_call_flow_outlives_idleness_and_the_bye_goes_out_on_the_same_connection() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let allowed = gw.local_addr().unwrap();
    let mut r = rig_with(move |a| a == allowed, Duration::from_millis(10)).await;
    gw.send_to(invite("z9hG4bKp1").as_bytes(), r.addr)
        .await
        .unwrap();
    let SipEvent::Opened { conn, out, .. } = next(&mut r.events).await else {
        panic!("Opened");
    };
    assert!(matches!(
        next(&mut r.events).await,
        SipEvent::Message { .. }
    ));
    // The call layer answers 100 then 200; the gateway ACKs.
    let answer = |code: &str| {
        format!(
            "SIP/2.0 {code}\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKp1\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n\
             Call-ID: udp-test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    out.send(Bytes::from(answer("100 Trying"))).await.unwrap();
    out.send(Bytes::from(answer("200 OK"))).await.unwrap();
    assert!(recv_text(&gw).await.starts_with("SIP/2.0 100"));
    assert!(recv_text(&gw).await.starts_with("SIP/2.0 200"));
    let ack = invite("z9hG4bKp2")
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK")
        .replace("To: <sip:b@127.0.0.1>", "To: <sip:b@127.0.0.1>;tag=2");
    gw.send_to(ack.as_bytes(), r.addr).await.unwrap();
    assert!(matches!(
        next(&mut r.events).await,
        SipEvent::Message { .. }
    ));
    // Well past 64*T1 of silence: the flow carried a call, so no Closed reaches the call layer.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), r.events.recv())
            .await
            .is_err(),
        "the call's connection is kept"
    );
    // The BYE goes out on the same connection to the same address.
    let bye = invite("z9hG4bKp3")
        .replace("INVITE sip", "BYE sip")
        .replace("1 INVITE", "2 BYE");
    out.send(Bytes::from(bye)).await.unwrap();
    assert!(recv_text(&gw).await.starts_with("BYE "));
    let _ = conn;
}

/// `[gateway_listen] udp = "[::]:5069"` takes IPv4 gateways too: one is admitted, answered and
/// keeps one flow by its IPv4 address (not the `::ffff:` form the socket reports), the same flow
/// an outbound request toward that address opens.
#[tokio::test]
async fn a_dual_stack_socket_knows_ipv4_gateways_by_their_ipv4_address() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let allowed = gw.local_addr().unwrap();
    let mut r = rig_on("[::]:0", move |a| a == allowed, Duration::from_millis(50)).await;
    assert!(r.addr.is_ipv6());
    let door: SocketAddr = ([127, 0, 0, 1], r.addr.port()).into();
    gw.send_to(invite("z9hG4bK6").as_bytes(), door)
        .await
        .unwrap();
    let SipEvent::Opened { peer, out, .. } = next(&mut r.events).await else {
        panic!("admitted by its IPv4 address");
    };
    assert_eq!(peer.remote, allowed);
    assert!(matches!(
        next(&mut r.events).await,
        SipEvent::Message { .. }
    ));
    let busy = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK6\r\n\
                From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n\
                Call-ID: udp-test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    out.send(Bytes::from_static(busy.as_bytes())).await.unwrap();
    assert!(recv_text(&gw).await.starts_with("SIP/2.0 486"));

    // An IPv6 gateway on the same socket.
    let gw6 = UdpSocket::bind("[::1]:0").await.unwrap();
    let allowed6 = gw6.local_addr().unwrap();
    let mut r6 = rig_on("[::]:0", move |a| a == allowed6, Duration::from_millis(50)).await;
    let door6: SocketAddr = format!("[::1]:{}", r6.addr.port()).parse().unwrap();
    gw6.send_to(invite("z9hG4bK7").as_bytes(), door6)
        .await
        .unwrap();
    let SipEvent::Opened { peer, .. } = next(&mut r6.events).await else {
        panic!("admitted by its IPv6 address");
    };
    assert_eq!(peer.remote, allowed6);
}
