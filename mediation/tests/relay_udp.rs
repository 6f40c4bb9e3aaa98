//! The media relay over real loopback sockets: test "phones" on each leg send RTP/RTCP or
//! SRTP/SRTCP to the relay's ports and check what comes out on the other leg, byte for byte,
//! decrypting with our SRTP module; plus latching, drops and their metrics.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::libsrtp::{libsrtp, Kind};
use mediation::media::{
    spawn_relay, LegMedia, MediaSources, PortPool, Protection, RelayHandle, Side,
};
use mediation::metrics::Metrics;
use mediation::srtp::{MasterKey, Protector, ReplayWindow, SrtpSuite, Unprotector};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Outside Linux's ephemeral range, so the phones' port-0 sockets never land in it; pairs other
/// tests hold are skipped by the pool.
fn pool() -> PortPool {
    PortPool::new(LOOPBACK, 21000..=28999).unwrap()
}

/// A test endpoint with an RTP and an RTCP socket.
struct Phone {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Phone {
    async fn new() -> Self {
        Self {
            rtp: UdpSocket::bind((LOOPBACK, 0)).await.unwrap(),
            rtcp: UdpSocket::bind((LOOPBACK, 0)).await.unwrap(),
        }
    }

    fn rtp_addr(&self) -> SocketAddr {
        self.rtp.local_addr().unwrap()
    }

    fn rtcp_addr(&self) -> SocketAddr {
        self.rtcp.local_addr().unwrap()
    }
}

/// The relay's addresses for one leg.
#[derive(Clone, Copy)]
struct RelayPorts {
    rtp: SocketAddr,
    rtcp: SocketAddr,
}

fn leg(
    pool: &PortPool,
    label: &'static str,
    protection: Protection,
    peer: &Phone,
) -> (LegMedia, RelayPorts) {
    let sockets = pool.allocate().unwrap();
    let ports = RelayPorts {
        rtp: SocketAddr::new(LOOPBACK, sockets.rtp_port()),
        rtcp: SocketAddr::new(LOOPBACK, sockets.rtcp_port()),
    };
    let media = LegMedia::new(label, sockets, protection)
        .with_remote(Some(peer.rtp_addr()), Some(peer.rtcp_addr()));
    (media, ports)
}

/// One leg's key pair: `ours` protects what the relay sends, `theirs` what the phone sends.
struct Keys {
    ours: MasterKey,
    theirs: MasterKey,
}

impl Keys {
    fn new(suite: SrtpSuite) -> Self {
        Self {
            ours: MasterKey::generate(suite).unwrap(),
            theirs: MasterKey::generate(suite).unwrap(),
        }
    }

    fn protection(&self) -> Protection {
        Protection::Srtp {
            tx: self.ours.clone(),
            rx: self.theirs.clone(),
        }
    }

    /// What the phone on this leg protects with.
    fn phone_tx(&self) -> Protector {
        Protector::new(&self.theirs).unwrap()
    }

    /// What the phone on this leg unprotects with.
    fn phone_rx(&self) -> Unprotector {
        Unprotector::new(&self.ours, ReplayWindow::DEFAULT).unwrap()
    }
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    // A recognisable 20 ms G.711 payload that differs per packet.
    p.extend((0..160u32).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn sender_report(ssrc: u32, n: u8) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[
        0xE8, 0, 0, n, 0, 0, 0, 0, 0, 0, 0x1F, 0x40, 0, 0, 0, 50, 0, 0, 0x1F, 0x40,
    ]);
    p
}

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
        .await
        .expect("nothing arrived within 3 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn nothing_arrives(socket: &UdpSocket, what: &str) {
    let mut buf = [0u8; 2048];
    let got = timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
    assert!(got.is_err(), "{what} arrived but should have been dropped");
}

/// Waits until the relay has counted `n` packets in on `side` (its stats are immediate).
async fn wait_in(relay: &RelayHandle, side: Side, n: u64) {
    for _ in 0..300 {
        if relay.stats().leg(side).packets_in >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "relay never counted {n} packets in on {side:?}: {:?}",
        relay.stats().leg(side)
    );
}

async fn wait_dropped(relay: &RelayHandle, side: Side, n: u64) {
    for _ in 0..300 {
        if relay.stats().leg(side).dropped >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "relay never dropped {n} packets on {side:?}: {:?}",
        relay.stats().leg(side)
    );
}

fn packets(m: &Metrics, leg: &str, protection: &str, direction: &str) -> u64 {
    m.media_packets
        .with_label_values(&[leg, protection, direction])
        .get()
}

fn dropped(m: &Metrics, leg: &str, reason: &str) -> u64 {
    m.media_dropped.with_label_values(&[leg, reason]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rtp_to_srtp_and_back() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let keys = Keys::new(SrtpSuite::AesCm128HmacSha1_80);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", keys.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    assert_eq!(pool.in_use(), 2);

    // Gateway → next hop: 50 plain RTP packets come out as SRTP under our next-hop key.
    let mut nh_rx = keys.phone_rx();
    for seq in 1000..1050u16 {
        let plain = rtp(seq, 0x6A7E_0001);
        gw_phone.rtp.send_to(&plain, a_ports.rtp).await.unwrap();
        let (wire, from) = recv(&nh_phone.rtp).await;
        assert_eq!(from, b_ports.rtp, "sent from the leg's own RTP port");
        assert_eq!(wire.len(), plain.len() + 10, "an 80-bit tag added");
        assert_eq!(&wire[..12], &plain[..12], "RTP header in the clear");
        assert_ne!(
            &wire[12..plain.len()],
            &plain[12..],
            "payload on the wire is not plaintext"
        );
        assert_eq!(nh_rx.unprotect_rtp(&wire).unwrap(), plain, "seq {seq}");
    }

    // Next hop → gateway: SRTP in, exactly the plaintext out.
    let mut nh_tx = keys.phone_tx();
    let mut sent = Vec::new();
    for seq in 7000..7050u16 {
        let plain = rtp(seq, 0x6A7E_0002);
        let srtp = nh_tx.protect_rtp(&plain).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        let (wire, _) = recv(&gw_phone.rtp).await;
        assert_eq!(wire, plain, "seq {seq}");
        sent.push(srtp);
    }

    // A tampered packet and a replayed one are dropped and counted; a good one still passes.
    let mut tampered = nh_tx.protect_rtp(&rtp(7050, 0x6A7E_0002)).unwrap().to_vec();
    tampered[40] ^= 0x20;
    nh_phone.rtp.send_to(&tampered, b_ports.rtp).await.unwrap();
    nh_phone.rtp.send_to(&sent[10], b_ports.rtp).await.unwrap();
    wait_dropped(&relay, Side::B, 2).await;
    nothing_arrives(&gw_phone.rtp, "a tampered or replayed packet").await;
    let good = nh_tx.protect_rtp(&rtp(7051, 0x6A7E_0002)).unwrap();
    nh_phone.rtp.send_to(&good, b_ports.rtp).await.unwrap();
    assert_eq!(recv(&gw_phone.rtp).await.0, rtp(7051, 0x6A7E_0002));

    // RTCP on the RTCP ports: protected as SRTCP toward the next hop, and back.
    let sr = sender_report(0x6A7E_0001, 1);
    gw_phone.rtcp.send_to(&sr, a_ports.rtcp).await.unwrap();
    let (srtcp, from) = recv(&nh_phone.rtcp).await;
    assert_eq!(from, b_ports.rtcp);
    assert_ne!(&srtcp[8..sr.len()], &sr[8..], "SRTCP payload encrypted");
    assert_eq!(nh_rx.unprotect_rtcp(&srtcp).unwrap(), sr);

    let sr = sender_report(0x6A7E_0002, 2);
    let srtcp = nh_tx.protect_rtcp(&sr).unwrap();
    nh_phone.rtcp.send_to(&srtcp, b_ports.rtcp).await.unwrap();
    assert_eq!(recv(&gw_phone.rtcp).await.0, sr);
    // ... and a replayed SRTCP packet is dropped too.
    nh_phone.rtcp.send_to(&srtcp, b_ports.rtcp).await.unwrap();
    wait_dropped(&relay, Side::B, 3).await;
    nothing_arrives(&gw_phone.rtcp, "a replayed SRTCP packet").await;

    // A packet older than the replay window (128) is dropped as too old, and a truncated one
    // as malformed; both counted.
    let late = nh_tx.protect_rtp(&rtp(7052, 0x6A7E_0002)).unwrap();
    let ahead = nh_tx.protect_rtp(&rtp(7300, 0x6A7E_0002)).unwrap();
    nh_phone.rtp.send_to(&ahead, b_ports.rtp).await.unwrap();
    assert_eq!(recv(&gw_phone.rtp).await.0, rtp(7300, 0x6A7E_0002));
    nh_phone.rtp.send_to(&late, b_ports.rtp).await.unwrap();
    nh_phone
        .rtp
        .send_to(&late[..11], b_ports.rtp)
        .await
        .unwrap();
    wait_dropped(&relay, Side::B, 5).await;
    nothing_arrives(&gw_phone.rtp, "a too-old or truncated packet").await;

    let stats = relay.stats().leg(Side::B);
    assert_eq!((stats.packets_in, stats.packets_out), (53, 51));
    assert!(stats.last_packet.is_some());
    relay.stop().await;
    assert_eq!(pool.in_use(), 0, "ports back in the pool");

    assert_eq!(packets(&metrics, "gateway", "rtp", "in"), 51);
    assert_eq!(packets(&metrics, "next_hop", "srtp", "out"), 51);
    assert_eq!(packets(&metrics, "next_hop", "srtp", "in"), 53);
    assert_eq!(packets(&metrics, "gateway", "rtp", "out"), 53);
    let auth = metrics
        .srtp_auth_failures
        .with_label_values(&["next_hop"])
        .get();
    let replays = metrics
        .srtp_replay_drops
        .with_label_values(&["next_hop"])
        .get();
    assert_eq!(
        (auth, replays),
        (1, 3),
        "srtp_replay_drops_total: replays and too old"
    );
    assert_eq!(dropped(&metrics, "next_hop", "auth_failed"), 1);
    assert_eq!(dropped(&metrics, "next_hop", "replay"), 2);
    assert_eq!(dropped(&metrics, "next_hop", "too_old"), 1);
    assert_eq!(dropped(&metrics, "next_hop", "malformed"), 1);
}

#[tokio::test]
async fn srtp_to_srtp_with_different_suites_and_rtcp_mux() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let gw_keys = Keys::new(SrtpSuite::AeadAes128Gcm);
    let nh_keys = Keys::new(SrtpSuite::AesCm128HmacSha1_80);
    let (a, a_ports) = leg(&pool, "gateway", gw_keys.protection(), &gw_phone);
    // The next hop multiplexes RTCP on its RTP port.
    let (b, b_ports) = leg(&pool, "next_hop", nh_keys.protection(), &nh_phone);
    let b = b.with_rtcp_mux(true);
    let relay = spawn_relay(a, b, &metrics).unwrap();

    let (mut gw_tx, mut gw_rx) = (gw_keys.phone_tx(), gw_keys.phone_rx());
    let (mut nh_tx, mut nh_rx) = (nh_keys.phone_tx(), nh_keys.phone_rx());
    for seq in 1..=50u16 {
        // GCM in on the gateway leg, AES-CM out on the next-hop leg...
        let plain = rtp(seq, 0x0000_0A0A);
        let srtp = gw_tx.protect_rtp(&plain).unwrap();
        gw_phone.rtp.send_to(&srtp, a_ports.rtp).await.unwrap();
        let (wire, _) = recv(&nh_phone.rtp).await;
        assert_eq!(wire.len(), plain.len() + 10, "AES-CM tag, not GCM's");
        assert_eq!(nh_rx.unprotect_rtp(&wire).unwrap(), plain);

        // ... and back.
        let plain = rtp(seq, 0x0000_0B0B);
        let srtp = nh_tx.protect_rtp(&plain).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        let (wire, _) = recv(&gw_phone.rtp).await;
        assert_eq!(wire.len(), plain.len() + 16, "GCM tag");
        assert_eq!(gw_rx.unprotect_rtp(&wire).unwrap(), plain);
    }

    // SRTCP from the gateway's RTCP port comes out on the next hop's RTP port (mux)...
    let sr = sender_report(0x0000_0A0A, 1);
    gw_phone
        .rtcp
        .send_to(&gw_tx.protect_rtcp(&sr).unwrap(), a_ports.rtcp)
        .await
        .unwrap();
    let (wire, from) = recv(&nh_phone.rtp).await;
    assert_eq!(from, b_ports.rtp, "muxed RTCP leaves from the RTP port");
    assert_eq!(nh_rx.unprotect_rtcp(&wire).unwrap(), sr);

    // ... and muxed SRTCP sent to the next hop's RTP port goes to the gateway's RTCP port.
    let sr = sender_report(0x0000_0B0B, 2);
    nh_phone
        .rtp
        .send_to(&nh_tx.protect_rtcp(&sr).unwrap(), b_ports.rtp)
        .await
        .unwrap();
    let (wire, from) = recv(&gw_phone.rtcp).await;
    assert_eq!(from, a_ports.rtcp);
    assert_eq!(gw_rx.unprotect_rtcp(&wire).unwrap(), sr);

    relay.stop().await;
    assert_eq!(packets(&metrics, "gateway", "srtp", "in"), 51);
    assert_eq!(packets(&metrics, "next_hop", "srtp", "out"), 51);
    assert_eq!(packets(&metrics, "next_hop", "srtp", "in"), 51);
    assert_eq!(packets(&metrics, "gateway", "srtp", "out"), 51);
}

#[tokio::test]
async fn answers_the_address_the_peer_really_sends_from() {
    let metrics = Metrics::new();
    let pool = pool();
    // The gateway's SDP names `sdp_phone`, but it sends from `natted_phone` (NAT).
    let (sdp_phone, natted_phone, nh_phone) =
        (Phone::new().await, Phone::new().await, Phone::new().await);
    let stranger = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let nh_keys = Keys::new(SrtpSuite::AesCm128HmacSha1_32);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &sdp_phone);
    let (b, b_ports) = leg(&pool, "next_hop", nh_keys.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    let mut nh_tx = nh_keys.phone_tx();

    // Before the gateway sends anything, media toward it goes to the SDP address.
    let srtp = nh_tx.protect_rtp(&rtp(1, 0xB0B)).unwrap();
    nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
    assert_eq!(recv(&sdp_phone.rtp).await.0, rtp(1, 0xB0B));

    // The gateway's first packet, from its real address, latches it...
    natted_phone
        .rtp
        .send_to(&rtp(500, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    wait_in(&relay, Side::A, 1).await;
    let mut nh_rx = nh_keys.phone_rx();
    let (wire, _) = recv(&nh_phone.rtp).await;
    assert_eq!(nh_rx.unprotect_rtp(&wire).unwrap(), rtp(500, 0x6A7E));
    let srtp = nh_tx.protect_rtp(&rtp(2, 0xB0B)).unwrap();
    nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
    let (wire, from) = recv(&natted_phone.rtp).await;
    assert_eq!(
        (wire, from),
        (rtp(2, 0xB0B), a_ports.rtp),
        "answered where it came from"
    );
    nothing_arrives(&sdp_phone.rtp, "media to the SDP address after latching").await;

    // ... and plain RTP from anyone else is dropped: it proves nothing.
    stranger
        .send_to(&rtp(501, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    wait_dropped(&relay, Side::A, 1).await;
    natted_phone
        .rtp
        .send_to(&rtp(502, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    let (wire, _) = recv(&nh_phone.rtp).await;
    assert_eq!(
        nh_rx.unprotect_rtp(&wire).unwrap(),
        rtp(502, 0x6A7E),
        "not the stranger's 501"
    );

    // On the SRTP leg, a packet from a new address re-latches only if it authenticates.
    let moved = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let mut forged = nh_tx.protect_rtp(&rtp(3, 0xB0B)).unwrap().to_vec();
    forged[30] ^= 1;
    moved.send_to(&forged, b_ports.rtp).await.unwrap();
    wait_dropped(&relay, Side::B, 1).await;
    natted_phone
        .rtp
        .send_to(&rtp(503, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    let (wire, _) = recv(&nh_phone.rtp).await;
    assert_eq!(
        nh_rx.unprotect_rtp(&wire).unwrap(),
        rtp(503, 0x6A7E),
        "still the old address"
    );

    let srtp = nh_tx.protect_rtp(&rtp(4, 0xB0B)).unwrap();
    moved.send_to(&srtp, b_ports.rtp).await.unwrap();
    assert_eq!(recv(&natted_phone.rtp).await.0, rtp(4, 0xB0B));
    natted_phone
        .rtp
        .send_to(&rtp(504, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    let (wire, _) = recv(&moved).await;
    assert_eq!(
        nh_rx.unprotect_rtp(&wire).unwrap(),
        rtp(504, 0x6A7E),
        "re-latched"
    );

    relay.stop().await;
    assert_eq!(dropped(&metrics, "gateway", "unknown_source"), 1);
    assert_eq!(dropped(&metrics, "next_hop", "unknown_source"), 1);
    assert_eq!(
        metrics
            .srtp_auth_failures
            .with_label_values(&["next_hop"])
            .get(),
        1
    );
}

#[tokio::test]
async fn what_is_not_rtp_is_dropped_as_malformed() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let keys = Keys::new(SrtpSuite::AeadAes256Gcm);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", keys.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();

    let mut version_1 = rtp(1, 1);
    version_1[0] = 0x40;
    let stun_like = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0,
    ];
    for junk in [&[0x80u8; 11][..], &version_1, &stun_like, &[]] {
        gw_phone.rtp.send_to(junk, a_ports.rtp).await.unwrap();
    }
    // Plain RTP sent to the SRTP leg is not SRTP: it fails authentication.
    nh_phone.rtp.send_to(&rtp(9, 9), b_ports.rtp).await.unwrap();
    wait_dropped(&relay, Side::A, 4).await;
    wait_dropped(&relay, Side::B, 1).await;
    nothing_arrives(&nh_phone.rtp, "junk").await;
    nothing_arrives(&gw_phone.rtp, "unauthenticated RTP").await;

    relay.stop().await;
    assert_eq!(dropped(&metrics, "gateway", "malformed"), 4);
    assert_eq!(dropped(&metrics, "next_hop", "auth_failed"), 1);
    assert_eq!(packets(&metrics, "next_hop", "srtp", "out"), 0);
}

#[tokio::test]
async fn dropping_the_handle_ends_the_relay_and_frees_the_ports() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let (a, _) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, _) = leg(&pool, "next_hop", Protection::Rtp, &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    assert_eq!(pool.in_use(), 2);
    drop(relay);
    for _ in 0..300 {
        if pool.in_use() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ports not returned after the handle was dropped");
}

/// New keys by re-INVITE: what we send switches at once, what arrives under the old keys (in
/// flight) is still accepted for a moment, and the new keys start their own rollover counter.
#[tokio::test]
async fn rekeying_keeps_packets_in_flight_under_the_old_keys() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let old = Keys::new(SrtpSuite::AesCm128HmacSha1_80);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", old.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    let mut old_tx = old.phone_tx();
    for seq in 1..=10u16 {
        let srtp = old_tx.protect_rtp(&rtp(seq, 0xBEEF)).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        assert_eq!(recv(&gw_phone.rtp).await.0, rtp(seq, 0xBEEF));
    }
    // A packet protected with the old key but still on its way when the keys change.
    let in_flight = old_tx.protect_rtp(&rtp(11, 0xBEEF)).unwrap();

    let new = Keys::new(SrtpSuite::AeadAes128Gcm);
    relay.rekey(Side::B, new.ours.clone(), new.theirs.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    nh_phone.rtp.send_to(&in_flight, b_ports.rtp).await.unwrap();
    assert_eq!(
        recv(&gw_phone.rtp).await.0,
        rtp(11, 0xBEEF),
        "old-key packet in flight accepted"
    );

    // The peer's new key, from sequence 12 on.
    let mut new_tx = new.phone_tx();
    for seq in 12..=20u16 {
        let srtp = new_tx.protect_rtp(&rtp(seq, 0xBEEF)).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        assert_eq!(recv(&gw_phone.rtp).await.0, rtp(seq, 0xBEEF), "seq {seq}");
    }
    // What we send toward the next hop now uses our new key only.
    gw_phone
        .rtp
        .send_to(&rtp(500, 0xCAFE), a_ports.rtp)
        .await
        .unwrap();
    let (wire, _) = recv(&nh_phone.rtp).await;
    assert_eq!(
        new.phone_rx().unprotect_rtp(&wire).unwrap(),
        rtp(500, 0xCAFE)
    );
    assert!(
        old.phone_rx().unprotect_rtp(&wire).is_err(),
        "not the old key"
    );
    // After the grace period, the old key is refused.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = old_tx.protect_rtp(&rtp(21, 0xBEEF)).unwrap();
    nh_phone.rtp.send_to(&late, b_ports.rtp).await.unwrap();
    wait_dropped(&relay, Side::B, 1).await;
    nothing_arrives(&gw_phone.rtp, "an old-key packet after the grace period").await;
    relay.stop().await;
}

/// Many calls, each phone's burst (both ways) already queued on the relay's sockets when the
/// relays start: every packet comes out on the other leg, in order. A media thread reads one
/// datagram per ready socket per round while it keeps up, so this holds only if a socket that
/// still has datagrams queued is served again in the next rounds (level-triggered readiness),
/// and if a thread with a backlog catches up.
#[tokio::test]
async fn bursts_queued_on_many_calls_all_arrive_in_order() {
    const CALLS: usize = 100;
    const BURST: u16 = 25;
    let metrics = Metrics::new();
    let pool = pool();
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let phones = [(); 2].map(|_| std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap());
        let legs = [("gateway", &phones[0]), ("next_hop", &phones[1])].map(|(label, phone)| {
            let sockets = pool.allocate().unwrap();
            let port = SocketAddr::new(LOOPBACK, sockets.rtp_port());
            let media = LegMedia::new(label, sockets, Protection::Rtp)
                .with_rtcp_mux(true)
                .with_remote(Some(phone.local_addr().unwrap()), None);
            (media, port)
        });
        calls.push((legs, phones));
    }
    for seq in 0..BURST {
        for (n, (legs, phones)) in calls.iter().enumerate() {
            for side in 0..2 {
                let ssrc = (n * 2 + side) as u32;
                phones[side].send_to(&rtp(seq, ssrc), legs[side].1).unwrap();
            }
        }
    }
    let calls: Vec<_> = calls
        .into_iter()
        .map(|([(a, _), (b, _)], phones)| (spawn_relay(a, b, &metrics).unwrap(), phones))
        .collect();
    for (n, (relay, phones)) in calls.into_iter().enumerate() {
        for side in 0..2 {
            // What phone `side` sent arrives at the other phone.
            let receiver = phones[1 - side].try_clone().unwrap();
            receiver.set_nonblocking(true).unwrap();
            let receiver = UdpSocket::from_std(receiver).unwrap();
            let ssrc = (n * 2 + side) as u32;
            for seq in 0..BURST {
                let (got, _) = recv(&receiver).await;
                assert_eq!(got, rtp(seq, ssrc), "call {n}, side {side}, packet {seq}");
            }
        }
        relay.stop().await;
    }
}

/// The RTP stream a test phone hands the relay on a plain leg, sequence numbers running from
/// `first` (wrapping), and the SRTP the relay makes of it on the other leg.
async fn relay_plain_stream(
    from: (&Phone, RelayPorts),
    to: &Phone,
    ssrc: u32,
    seqs: impl Iterator<Item = u16>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for seq in seqs {
        let plain = rtp(seq, ssrc);
        from.0.rtp.send_to(&plain, from.1.rtp).await.unwrap();
        out.push((plain, recv(&to.rtp).await.0));
    }
    out
}

/// libsrtp protects `seqs` with `key` in one session (so its rollover counter runs across them)
/// and the relay must hand each one on in the clear.
async fn relay_libsrtp_stream(
    key: &MasterKey,
    from: (&Phone, RelayPorts),
    to: &Phone,
    ssrc: u32,
    seqs: &[u16],
) {
    let plain: Vec<_> = seqs
        .iter()
        .map(|&seq| (Kind::Rtp, rtp(seq, ssrc)))
        .collect();
    for ((_, clear), srtp) in plain.iter().zip(libsrtp("protect", key, &plain)) {
        let srtp = srtp.expect("libsrtp protects");
        from.0.rtp.send_to(&srtp, from.1.rtp).await.unwrap();
        assert_eq!(
            &recv(&to.rtp).await.0,
            clear,
            "seq {}",
            u16::from_be_bytes([clear[2], clear[3]])
        );
    }
}

/// Security review, finding 2: only the peer's key changes (it rekeys in its answer to our
/// session refresh, as hold and resume do) after our stream toward it has wrapped its sequence
/// number (rollover counter 1). Our sending context must go on under the same key without a
/// reset: libsrtp, receiving our whole stream in one session, authenticates every packet, and
/// no (key, SSRC, index) triple is protected twice. Media flows both ways throughout.
#[tokio::test]
async fn a_rekey_of_the_peer_alone_leaves_our_stream_and_its_rollover_counter_alone() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let keys = Keys::new(SrtpSuite::AesCm128HmacSha1_80);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", keys.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    let (ours_ssrc, theirs_ssrc) = (0x0A11_CE01, 0x0B0B_0002);

    // Before: both ways, our stream toward the next hop across its wrap (ROC 0 -> 1).
    let mut sent = relay_plain_stream(
        (&gw_phone, a_ports),
        &nh_phone,
        ours_ssrc,
        (65_500u16..=65_535).chain(0..20),
    )
    .await;
    relay_libsrtp_stream(
        &keys.theirs,
        (&nh_phone, b_ports),
        &gw_phone,
        theirs_ssrc,
        &[100, 101, 102],
    )
    .await;

    // Hold and resume: the next hop answers our refresh with a new key of its own; ours is
    // unchanged, so it is handed on again with the new one.
    let theirs_new = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
    relay.rekey(Side::B, keys.ours.clone(), theirs_new.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After: both ways again, our stream going on where it was.
    sent.extend(relay_plain_stream((&gw_phone, a_ports), &nh_phone, ours_ssrc, 20..60).await);
    relay_libsrtp_stream(
        &theirs_new,
        (&nh_phone, b_ports),
        &gw_phone,
        theirs_ssrc,
        &[103, 104, 105],
    )
    .await;

    // libsrtp at the next hop: one session under our (unchanged) key, every packet in order.
    let wire: Vec<_> = sent.iter().map(|(_, w)| (Kind::Rtp, w.clone())).collect();
    let answers = libsrtp("unprotect", &keys.ours, &wire);
    let mut triples = std::collections::HashSet::new();
    let mut roc = 0u64;
    let mut last_seq = None;
    for ((plain, _), answer) in sent.iter().zip(&answers) {
        let seq = u16::from_be_bytes([plain[2], plain[3]]);
        assert_eq!(
            answer.as_ref().ok(),
            Some(plain),
            "libsrtp refused our seq {seq} (ROC {roc})"
        );
        if last_seq.is_some_and(|last| seq < last) {
            roc += 1;
        }
        last_seq = Some(seq);
        // libsrtp authenticated it under our key at this index, so this is the triple we used.
        let index = (roc << 16) | u64::from(seq);
        assert!(
            triples.insert((ours_ssrc, index)),
            "index {index} protected twice"
        );
    }
    assert_eq!(roc, 1, "the stream wrapped once");
    relay.stop().await;
}

/// The mirror of the test above: only our key changes. The peer's stream goes on under its
/// unchanged key, so our receiving context keeps its replay window: a packet replayed from
/// before the rekey is refused.
#[tokio::test]
async fn a_rekey_of_ours_alone_keeps_the_replay_window_of_theirs() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let keys = Keys::new(SrtpSuite::AeadAes128Gcm);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", keys.protection(), &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    let mut phone_tx = keys.phone_tx();
    let mut recorded = Vec::new();
    for seq in 1..=10u16 {
        let srtp = phone_tx.protect_rtp(&rtp(seq, 0xFACE)).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        assert_eq!(recv(&gw_phone.rtp).await.0, rtp(seq, 0xFACE));
        recorded.push(srtp);
    }
    let ours_new = MasterKey::generate(SrtpSuite::AeadAes128Gcm).unwrap();
    relay.rekey(Side::B, ours_new.clone(), keys.theirs.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;

    // An attacker replays what the peer sent before the rekey: refused, counted as a replay.
    for srtp in &recorded {
        nh_phone.rtp.send_to(srtp, b_ports.rtp).await.unwrap();
    }
    wait_dropped(&relay, Side::B, 10).await;
    nothing_arrives(&gw_phone.rtp, "a replayed packet").await;
    // The media thread adds its tallies to the counters about once a second.
    for _ in 0..300 {
        if dropped(&metrics, "next_hop", "replay") >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        dropped(&metrics, "next_hop", "replay"),
        10,
        "counted as replays"
    );
    // The peer's stream goes on; what we send uses our new key.
    for seq in 11..=15u16 {
        let srtp = phone_tx.protect_rtp(&rtp(seq, 0xFACE)).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        assert_eq!(recv(&gw_phone.rtp).await.0, rtp(seq, 0xFACE), "seq {seq}");
    }
    gw_phone
        .rtp
        .send_to(&rtp(7, 0xD00D), a_ports.rtp)
        .await
        .unwrap();
    let (wire, _) = recv(&nh_phone.rtp).await;
    let mut phone_rx = Unprotector::new(&ours_new, ReplayWindow::DEFAULT).unwrap();
    assert_eq!(phone_rx.unprotect_rtp(&wire).unwrap(), rtp(7, 0xD00D));
    relay.stop().await;
}

/// Security review, finding 1: a stranger on another address sprays RTP and RTCP at a plain
/// leg's ports, before the relay starts (queued on the sockets) and while the peer's media
/// flows. The leg takes media only from the IP address in the peer's SDP: the peer's media all
/// arrives, media and RTCP toward it go to it alone, and each stranger packet is dropped and
/// counted as `unknown_source`.
#[tokio::test]
async fn a_stranger_cannot_take_a_plain_leg_before_or_after_the_peer_speaks() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let stranger = UdpSocket::bind(("127.0.0.2", 0)).await.unwrap();
    let keys = Keys::new(SrtpSuite::AesCm128HmacSha1_80);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", keys.protection(), &nh_phone);
    let spray = |n: u8| {
        let stranger = &stranger;
        async move {
            stranger
                .send_to(&rtp(9000 + u16::from(n), 0x5A5A), a_ports.rtp)
                .await
                .unwrap();
            stranger
                .send_to(&sender_report(0x5A5A, n), a_ports.rtcp)
                .await
                .unwrap();
        }
    };
    // Queued before the relay even starts, as when the sockets are bound at the INVITE.
    spray(0).await;
    let relay = spawn_relay(a, b, &metrics).unwrap();
    wait_dropped(&relay, Side::A, 2).await;

    let (mut nh_tx, mut nh_rx) = (keys.phone_tx(), keys.phone_rx());
    for seq in 1..=20u16 {
        spray(seq as u8).await;
        gw_phone
            .rtp
            .send_to(&rtp(seq, 0x6A7E), a_ports.rtp)
            .await
            .unwrap();
        let (wire, _) = recv(&nh_phone.rtp).await;
        assert_eq!(
            nh_rx.unprotect_rtp(&wire).unwrap(),
            rtp(seq, 0x6A7E),
            "seq {seq}"
        );
        let srtp = nh_tx.protect_rtp(&rtp(seq, 0xB0B)).unwrap();
        nh_phone.rtp.send_to(&srtp, b_ports.rtp).await.unwrap();
        assert_eq!(recv(&gw_phone.rtp).await, (rtp(seq, 0xB0B), a_ports.rtp));
    }
    // RTCP both ways, the gateway's own reaching the next hop and the next hop's reaching the
    // gateway (not the stranger, who sent RTCP first).
    gw_phone
        .rtcp
        .send_to(&sender_report(0x6A7E, 1), a_ports.rtcp)
        .await
        .unwrap();
    let (wire, _) = recv(&nh_phone.rtcp).await;
    assert_eq!(
        nh_rx.unprotect_rtcp(&wire).unwrap(),
        sender_report(0x6A7E, 1)
    );
    let srtcp = nh_tx.protect_rtcp(&sender_report(0xB0B, 2)).unwrap();
    nh_phone.rtcp.send_to(&srtcp, b_ports.rtcp).await.unwrap();
    assert_eq!(
        recv(&gw_phone.rtcp).await,
        (sender_report(0xB0B, 2), a_ports.rtcp)
    );
    let mut buf = [0u8; 2048];
    let got = timeout(Duration::from_millis(300), stranger.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the stranger received media");

    wait_dropped(&relay, Side::A, 42).await;
    relay.stop().await;
    assert_eq!(dropped(&metrics, "gateway", "unknown_source"), 42);
    assert_eq!(packets(&metrics, "gateway", "rtp", "in"), 21);
}

/// `media_sources = "any"` (a gateway behind NAT): the first packet latches wherever it comes
/// from, so a stranger who is first takes the leg, but only until the peer's own address (its
/// SDP's) speaks; from then on the latch never moves.
#[tokio::test]
async fn behind_nat_the_peer_takes_its_leg_back_from_a_stranger_for_good() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let stranger = UdpSocket::bind(("127.0.0.2", 0)).await.unwrap();
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let a = a.with_sources(MediaSources::Any);
    let (b, b_ports) = leg(&pool, "next_hop", Protection::Rtp, &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();

    stranger
        .send_to(&rtp(1, 0x5A5A), a_ports.rtp)
        .await
        .unwrap();
    assert_eq!(
        recv(&nh_phone.rtp).await.0,
        rtp(1, 0x5A5A),
        "first packet latched"
    );
    gw_phone
        .rtp
        .send_to(&rtp(2, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    assert_eq!(
        recv(&nh_phone.rtp).await.0,
        rtp(2, 0x6A7E),
        "the SDP's address took it"
    );
    nh_phone
        .rtp
        .send_to(&rtp(3, 0xB0B), b_ports.rtp)
        .await
        .unwrap();
    assert_eq!(recv(&gw_phone.rtp).await.0, rtp(3, 0xB0B));
    stranger
        .send_to(&rtp(4, 0x5A5A), a_ports.rtp)
        .await
        .unwrap();
    wait_dropped(&relay, Side::A, 1).await;
    nothing_arrives(&nh_phone.rtp, "the stranger's packet after the peer spoke").await;
    relay.stop().await;
}

/// A re-offer moves the peer's media (another media server, on another address): the relay
/// sends there and takes plain media from there alone; the old address is now a stranger.
#[tokio::test]
async fn a_moved_remote_is_followed_and_the_old_one_refused() {
    let metrics = Metrics::new();
    let pool = pool();
    let (gw_phone, nh_phone) = (Phone::new().await, Phone::new().await);
    let (a, a_ports) = leg(&pool, "gateway", Protection::Rtp, &gw_phone);
    let (b, b_ports) = leg(&pool, "next_hop", Protection::Rtp, &nh_phone);
    let relay = spawn_relay(a, b, &metrics).unwrap();
    gw_phone
        .rtp
        .send_to(&rtp(1, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    assert_eq!(recv(&nh_phone.rtp).await.0, rtp(1, 0x6A7E));

    let moved_rtp = UdpSocket::bind(("127.0.0.3", 0)).await.unwrap();
    let moved_rtcp = UdpSocket::bind(("127.0.0.3", 0)).await.unwrap();
    relay.set_remote(
        Side::A,
        moved_rtp.local_addr().unwrap(),
        Some(moved_rtcp.local_addr().unwrap()),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    nh_phone
        .rtp
        .send_to(&rtp(2, 0xB0B), b_ports.rtp)
        .await
        .unwrap();
    assert_eq!(
        recv(&moved_rtp).await.0,
        rtp(2, 0xB0B),
        "sent to the new address"
    );
    nh_phone
        .rtcp
        .send_to(&sender_report(0xB0B, 1), b_ports.rtcp)
        .await
        .unwrap();
    assert_eq!(recv(&moved_rtcp).await.0, sender_report(0xB0B, 1));
    moved_rtp
        .send_to(&rtp(3, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    assert_eq!(recv(&nh_phone.rtp).await.0, rtp(3, 0x6A7E), "taken from it");
    gw_phone
        .rtp
        .send_to(&rtp(4, 0x6A7E), a_ports.rtp)
        .await
        .unwrap();
    wait_dropped(&relay, Side::A, 1).await;
    nothing_arrives(&nh_phone.rtp, "media from the old address").await;
    relay.stop().await;
}
