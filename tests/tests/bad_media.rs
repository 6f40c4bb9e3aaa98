//! Hostile media: while a stranger on another address sprays every media port with garbage, RTP
//! of the wrong version, oversized datagrams and well-formed RTP and RTCP (a new SSRC in every
//! packet), from before the calls start until they end, the real calls (one SRTP, one plain
//! RTP) lose nothing, get their RTCP, send the stranger nothing, and every bad packet that
//! reached a call is dropped and counted by reason.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use e2e::{http_get, Caller, Lab, Mediation, Setup, Sim};

/// The bad datagrams, each to every port of the media range, every 100 ms until `stop`.
/// Returns (datagrams sent, datagrams the stranger received: media that reached it).
fn spray(first: u16, count: u16, stop: &AtomicBool) -> (u64, u64) {
    let socket = UdpSocket::bind("127.0.0.5:0").expect("bind a second loopback address");
    socket.set_nonblocking(true).unwrap();
    let mut received = 0u64;
    // An RTCP sender report (RFC 3550 §6.4.1), well-formed.
    let mut rtcp = vec![0x80, 200, 0x00, 0x06];
    rtcp.extend_from_slice(&[0u8; 24]);
    let mut rtp = vec![0u8; 172];
    rtp[0] = 0x80; // version 2
    rtp[1] = 0; // PCMU
    rtp[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    let mut wrong_version = rtp.clone();
    wrong_version[0] = 0x40;
    let mut oversized = vec![0u8; 4000];
    oversized[0] = 0x80;
    let garbage = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    let mut sent = 0u64;
    let mut seq = 0u16;
    while !stop.load(Ordering::Relaxed) {
        seq = seq.wrapping_add(1);
        rtp[2..4].copy_from_slice(&seq.to_be_bytes());
        for port in first..first + count {
            // A flood of SSRCs nobody negotiated: a new one in every packet.
            let ssrc = 0xdead_0000u32 | u32::from(seq) << 8 | u32::from(port & 0xff);
            rtp[8..12].copy_from_slice(&ssrc.to_be_bytes());
            rtcp[4..8].copy_from_slice(&ssrc.to_be_bytes());
            for datagram in [&garbage, &wrong_version, &oversized, &rtp, &rtcp] {
                if socket.send_to(datagram, ("127.0.0.1", port)).is_ok() {
                    sent += 1;
                }
            }
        }
        let mut buf = [0u8; 2048];
        while socket.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (sent, received)
}

fn dropped(metrics: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("mediation_media_packets_dropped_total{")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn calls_lose_nothing_while_a_stranger_sprays_the_media_ports() {
    let lab = Lab::new();
    let setup = Setup {
        media_ports: 40,
        ..Setup::default()
    };
    let nh = Sim::answer(
        &lab,
        "bad-media-nh",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    let m = Mediation::start(&lab, &setup);
    let stop = AtomicBool::new(false);
    let (first, count) = (m.ports.media, setup.media_ports);
    let (srtp, plain, sprayed) = std::thread::scope(|scope| {
        let sprayer = scope.spawn(|| spray(first, count, &stop));
        let call = |port, transport, srtp, name: &'static str| {
            let lab = &lab;
            scope.spawn(move || {
                Caller {
                    lab,
                    port,
                    transport,
                    cert: Some("gateway"),
                    srtp,
                    to: "sip:+15551234@mediation.example.test",
                    duration: 6,
                    extra: vec![],
                }
                .run(name)
            })
        };
        let srtp = call(m.ports.gateway_tls, "tls", "offer", "bad-media-srtp");
        let plain = call(m.ports.gateway_tcp, "tcp", "accept", "bad-media-rtp");
        let srtp = srtp.join().unwrap();
        let plain = plain.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        (srtp, plain, sprayer.join().unwrap())
    });
    let (sprayed, stolen) = sprayed;
    println!("sprayed {sprayed} bad datagrams at {count} media ports; {stolen} came back");
    for (name, (ok, report)) in [("srtp", &srtp), ("rtp", &plain)] {
        let c = &report["calls"][0];
        assert!(ok, "{name}: {report:#}\n{}", m.log_text());
        assert_eq!(c["payload_ok"], true, "{name}: {report:#}");
        assert!(
            c["packets_received"].as_u64().unwrap_or(0) > 250,
            "{name}: {report:#}"
        );
        assert_eq!(c["packets_lost"].as_u64(), Some(0), "{name}: {report:#}");
        // The next hop's RTCP reached the gateway, not the stranger.
        assert!(
            c["rtcp_received"].as_u64().unwrap_or(0) >= 1,
            "{name}: no RTCP reached the gateway: {report:#}"
        );
    }
    assert_eq!(stolen, 0, "media or RTCP went to the stranger");
    let metrics = http_get(m.ports.metrics, "/metrics");
    for reason in ["malformed", "unknown_source", "auth_failed"] {
        println!("dropped as {reason}: {}", dropped(&metrics, reason));
    }
    for reason in ["malformed", "unknown_source"] {
        assert!(dropped(&metrics, reason) > 100.0, "{reason}: {metrics}");
    }
    assert!(
        !m.log_text().contains("re-latched"),
        "no stranger took over a call's media: {}",
        m.log_text()
    );
    // The gateways' RTCP reached the next hop, on both calls.
    let nh = nh.stop();
    for c in nh["calls"].as_array().expect("the next hop's calls") {
        assert!(c["rtcp_received"].as_u64().unwrap_or(0) >= 1, "{nh:#}");
    }
}
