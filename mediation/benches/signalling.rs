//! Signalling costs per call: parsing a SIP INVITE, the B2BUA's whole handling of it (parse,
//! then the call engine's transform into a 100 Trying and the far leg's INVITE with our SDP
//! and fresh SRTP keys), and the SDP rewrite alone.
//!
//! `cargo bench -p mediation --bench signalling`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use mediation::call::{example, Engine, Input, PortAllocator};
use mediation::config::{EncryptionLevel, GatewayTransport, IpFamily, SrtpMode};
use mediation::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
use mediation::sdp::{leg_sdp, CryptoAttribute, LegSdpParams, PeerSdp, Proto};
use mediation::srtp::SrtpSuite;
use rand::{rngs::StdRng, SeedableRng};

/// Hands out even ports, never runs out.
struct Ports(u16);

impl PortAllocator for Ports {
    fn allocate(&mut self, _family: IpFamily) -> Option<u16> {
        self.0 = self.0.wrapping_add(2).max(30000);
        Some(self.0)
    }
    fn release(&mut self, _family: IpFamily, _port: u16) {}
}

const OFFER: &str = "v=0\r\no=gw 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
    m=audio 40000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";

fn invite() -> String {
    let uri = "sip:+15551234@mediation.example.test";
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-bench1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: <{uri}>\r\n\
         Call-ID: bench-call-1@10.0.0.1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:gw@10.0.0.1:5067;transport=tls>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\nSupported: timer\r\n\
         User-Agent: gateway-sim bench\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

fn engine() -> (Engine<Ports>, ConnId) {
    let gateway = example::gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    let mut cfg = example::engine_config(EncryptionLevel::Required, vec![gateway]);
    // The bench's own values where they differ from the unit tests': room for 10 calls, and no
    // headers passed through.
    cfg.max_calls = 10;
    cfg.pass_headers = Vec::new();
    let mut engine = Engine::new(cfg, Ports(30000), StdRng::seed_from_u64(1));
    let conn = ConnId::next();
    let peer = Arc::new(PeerIdentity {
        peer: Peer::Gateway("gw1".into()),
        signalling: Signalling::Mtls {
            version: TlsVersionSeen::Tls13,
        },
        listener: Listener::GatewayTls,
        remote: "10.0.0.1:40000".parse().unwrap(),
    });
    engine.handle(Instant::now(), Input::Opened { conn, peer });
    while engine.poll_output().is_some() {}
    (engine, conn)
}

fn sip(c: &mut Criterion) {
    let invite = invite();
    c.bench_function("sip/parse INVITE", |b| {
        b.iter(|| black_box(mediation::sip::parse(black_box(invite.as_bytes())).unwrap()))
    });

    // Check once that the engine really forwards the INVITE (a 100 and a new INVITE out).
    let (mut e, conn) = engine();
    let msg = mediation::sip::parse(invite.as_bytes()).unwrap();
    e.handle(Instant::now(), Input::Message { conn, msg });
    let outputs = std::iter::from_fn(|| e.poll_output()).count();
    assert!(
        outputs >= 2,
        "the engine did not forward the INVITE ({outputs} outputs)"
    );

    // A fresh engine per INVITE (made outside the timing) so that every one is a new call.
    c.bench_function("b2bua/INVITE parse + transform", |b| {
        b.iter_batched(
            engine,
            |(mut e, conn)| {
                let msg = mediation::sip::parse(black_box(invite.as_bytes())).unwrap();
                e.handle(Instant::now(), Input::Message { conn, msg });
                let mut n = 0;
                while let Some(out) = e.poll_output() {
                    black_box(out);
                    n += 1;
                }
                (e, n)
            },
            BatchSize::SmallInput,
        )
    });
}

fn sdp(c: &mut Criterion) {
    let params = LegSdpParams {
        session_id: 42,
        version: 1,
        address: "192.0.2.10".parse().unwrap(),
        port: 30002,
        proto: Proto::Savp,
        crypto: vec![CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80)],
        rtcp_mux: false,
        encryption: None,
    };
    let peer = PeerSdp::parse(OFFER.as_bytes()).unwrap();
    c.bench_function("sdp/parse", |b| {
        b.iter(|| black_box(PeerSdp::parse(black_box(OFFER.as_bytes())).unwrap()))
    });
    c.bench_function("sdp/rewrite (leg_sdp)", |b| {
        b.iter(|| black_box(leg_sdp(black_box(&peer), &params)))
    });
    c.bench_function("sdp/parse + rewrite", |b| {
        b.iter(|| {
            let peer = PeerSdp::parse(black_box(OFFER.as_bytes())).unwrap();
            black_box(leg_sdp(&peer, &params))
        })
    });
}

criterion_group!(benches, sip, sdp);
criterion_main!(benches);
