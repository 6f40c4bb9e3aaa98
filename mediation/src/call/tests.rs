//! Call flows through the engine with no socket and no sleep: messages and time in, messages,
//! connections and media commands out. Each test plays the gateway and the next hop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{Engine, EngineConfig, Input, MediaCommand, Output, PortAllocator};
use super::media_plan::Protection;
use crate::config::{
    EncryptionLevel, GatewayConfig, GatewayTransport, IpFamily, SrtpMode, SrtpOfferStyle,
};
use crate::metrics::Metrics;
use crate::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
use crate::sip::outgoing::ReceivedRequest;
use crate::srtp::SrtpSuite;

/// Hands out even ports from 30000 (at most `limit` when set), whatever the family, and
/// remembers the families asked for and what was given back.
#[derive(Default)]
struct Ports {
    next: u16,
    released: Vec<u16>,
    limit: Option<u16>,
    families: Vec<(IpFamily, u16)>,
}

impl PortAllocator for Ports {
    fn allocate(&mut self, family: IpFamily) -> Option<u16> {
        if self.limit.is_some_and(|limit| self.next / 2 >= limit) {
            return None;
        }
        self.next += 2;
        self.families.push((family, 30000 + self.next));
        Some(30000 + self.next)
    }
    fn release(&mut self, _family: IpFamily, port: u16) {
        self.released.push(port);
    }
}

const GW_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const NH_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn gateway(name: &str, transport: GatewayTransport, srtp: SrtpMode) -> GatewayConfig {
    GatewayConfig {
        name: name.into(),
        address: format!("{name}.example.test:5067"),
        transport,
        identity: (transport == GatewayTransport::Tls).then(|| format!("{name}.example.test")),
        sources: vec![],
        srtp,
        options_interval_secs: 0,
        enable_session_timer: false,
        srtp_suites: None,
        srtp_offer_style: SrtpOfferStyle::Savp,
        media_sources: Default::default(),
        media_networks: Vec::new(),
        max_calls: None,
        user_phone: true,
    }
}

struct Harness {
    engine: Engine<Ports>,
    now: Instant,
    metrics: Metrics,
}

fn peer(p: Peer, signalling: Signalling, listener: Listener) -> Arc<PeerIdentity> {
    Arc::new(PeerIdentity {
        peer: p,
        signalling,
        listener,
        remote: "10.0.0.1:40000".parse().unwrap(),
    })
}

const MTLS: Signalling = Signalling::Mtls {
    version: TlsVersionSeen::Tls13,
};

impl Harness {
    fn new(encryption: EncryptionLevel, gateways: Vec<GatewayConfig>) -> Self {
        Self::with(encryption, gateways, |_| {})
    }

    /// As [`Harness::new`], the configuration adjusted by `adjust`.
    fn with(
        encryption: EncryptionLevel,
        gateways: Vec<GatewayConfig>,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let metrics = Metrics::new();
        let mut cfg = EngineConfig {
            advertise: "192.0.2.10".parse().unwrap(),
            next_hop_address: "frontend.example.test:5061".into(),
            next_hop_identity: "frontend.example.test".into(),
            encryption,
            gateways,
            suites: SrtpSuite::ALL.to_vec(),
            answer_timeout: Duration::from_secs(90),
            max_calls: 3,
            forward_pai: true,
            pass_headers: vec!["X-*".into(), "User-to-User".into()],
            next_hop_user_phone: true,
            routes: Vec::new(),
            failover_timeout: Duration::from_secs(10),
            next_hop_port: 5070,
            gateway_tls_port: 5067,
            gateway_tcp_port: 5068,
            session_expires: 1800,
            max_early_dialogs: 3,
            max_pending_per_connection: 2,
            media_timeout: Some(Duration::from_secs(30)),
            gateway_udp_port: 5069,
        };
        adjust(&mut cfg);
        Harness {
            engine: Engine::new(cfg, Ports::default(), metrics.clone()),
            now: Instant::now(),
            metrics,
        }
    }

    fn open(&mut self, _n: u64, who: Arc<PeerIdentity>) -> ConnId {
        // Ids come from the same counter as the engine's outbound connections.
        let conn = ConnId::next();
        self.engine
            .handle(self.now, Input::Opened { conn, peer: who });
        conn
    }

    fn feed(&mut self, conn: ConnId, text: &str) -> Vec<Output> {
        let msg = crate::sip::parse(text.as_bytes()).expect("test message parses");
        self.engine.handle(self.now, Input::Message { conn, msg });
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }
}

/// Every message sent on `conn`, as text.
fn sent(outs: &[Output], conn: ConnId) -> Vec<String> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, bytes } if *c == conn => {
                Some(String::from_utf8(bytes.to_vec()).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// The connection a `Connect` output opened.
fn connected(outs: &[Output]) -> Option<(ConnId, Peer)> {
    outs.iter().find_map(|o| match o {
        Output::Connect { conn, target } => Some((*conn, target.peer.clone())),
        _ => None,
    })
}

fn status(msg: &str) -> u16 {
    msg.split(' ').nth(1).unwrap().parse().unwrap()
}

fn sdp(port: u16, proto: &str, crypto: Option<(u32, &str, &str)>) -> String {
    let mut s = format!(
        "v=0\r\no=peer 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
         m=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    );
    if let Some((tag, suite, key)) = crypto {
        s += &format!("a=crypto:{tag} {suite} inline:{key}\r\n");
    }
    s
}

fn invite(call_id: &str, uri: &str, body: &str) -> String {
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: <{uri}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@10.0.0.1:5067;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The callee's response to a request we sent, with its tag and an optional SDP body.
fn respond(request: &str, code: u16, reason: &str, body: Option<&str>) -> String {
    let msg = crate::sip::parse(request.as_bytes()).unwrap();
    let r = ReceivedRequest::of(&msg)
        .unwrap()
        .respond(code, reason, "callee");
    let r = r.header("Contact", "<sip:callee@10.0.0.2:5061;transport=tls>");
    let r = match body {
        Some(b) => r.sdp(b.to_string()),
        None => r,
    };
    String::from_utf8(r.encode().to_vec()).unwrap()
}

/// The a=crypto tag and suite we offered for `suite` in an INVITE.
fn offered_tag(invite: &str, suite: &str) -> u32 {
    invite
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("a=crypto:")?;
            let (tag, rest) = rest.split_once(' ')?;
            rest.starts_with(suite).then(|| tag.parse().unwrap())
        })
        .expect("suite offered")
}

fn ack_and_bye(call_id: &str, to: &str, method: &str, cseq: u32) -> String {
    format!(
        "{method} sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-{method}{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn to_header(msg: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap()
        .to_string()
}

fn media_start(outs: &[Output]) -> Option<&[super::media_plan::LegPlan; 2]> {
    outs.iter().find_map(|o| match o {
        Output::Media(MediaCommand::Start { legs, .. }) => Some(&**legs),
        _ => None,
    })
}

#[test]
fn gateway_over_mtls_to_next_hop_negotiates_srtp_on_both_legs_and_bye_ends_both() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c1", "sip:+15551234@192.0.2.10", &offer));
    let to_gw = sent(&outs, gw);
    assert_eq!(status(&to_gw[0]), 100, "100 Trying at once");
    let (nh, who) = connected(&outs).expect("connects to the next hop");
    assert_eq!(who, Peer::NextHop);
    let b_invite = sent(&outs, nh).remove(0);
    assert!(
        b_invite
            .starts_with("INVITE sip:+15551234@frontend.example.test:5061;transport=tls SIP/2.0"),
        "{b_invite}"
    );
    assert!(
        b_invite.contains("m=audio 30004 RTP/SAVP 0 101"),
        "{b_invite}"
    );
    assert!(b_invite.contains("a=crypto:"), "{b_invite}");
    assert!(
        !b_invite.contains(GW_KEY),
        "the caller's key never crosses to the other leg"
    );
    assert!(
        !b_invite.lines().any(|l| l == "Call-ID: c1"),
        "new Call-ID on the far leg"
    );
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );

    let outs = h.feed(nh, &respond(&b_invite, 180, "Ringing", None));
    assert_eq!(status(&sent(&outs, gw)[0]), 180);

    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let to_nh = sent(&outs, nh);
    assert!(
        to_nh[0].starts_with("ACK sip:callee@10.0.0.2:5061"),
        "{}",
        to_nh[0]
    );
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("m=audio 30002 RTP/SAVP 0 101"), "{ok}");
    assert!(
        ok.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{ok}"
    );
    assert!(
        !ok.contains(NH_KEY) && !ok.contains(GW_KEY),
        "fresh key on each leg"
    );
    assert!(ok.contains("a=rtpmap:101 telephone-event/8000"), "{ok}");
    let legs = media_start(&outs).expect("media starts");
    assert!(
        legs.iter()
            .all(|l| matches!(l.protection, Protection::Srtp { .. })),
        "SRTP on both legs"
    );
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        1
    );

    let a_to = to_header(ok);
    h.feed(gw, &ack_and_bye("c1", &a_to, "ACK", 1));
    let outs = h.feed(gw, &ack_and_bye("c1", &a_to, "BYE", 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert!(sent(&outs, nh)[0].starts_with("BYE sip:callee@10.0.0.2:5061"));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Stop { .. }))));
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn gateway_over_tcp_gets_plain_rtp_and_next_hop_keeps_srtp() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(
            Peer::Gateway("gw2".into()),
            Signalling::Tcp,
            Listener::GatewayTcp,
        ),
    );
    // Best-effort crypto in an RTP/AVP offer over TCP: the key is ignored and counted.
    let offer = sdp(
        4000,
        "RTP/AVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c2", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    assert!(
        b_invite.contains("RTP/SAVP"),
        "next hop always offered SRTP: {b_invite}"
    );
    assert_eq!(
        h.metrics
            .sdes_keys_ignored
            .with_label_values(&["plain_tcp"])
            .get(),
        1
    );
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );
    let tag = offered_tag(&b_invite, "AEAD_AES_128_GCM");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((
            tag,
            "AEAD_AES_128_GCM",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==",
        )),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = &sent(&outs, gw)[0];
    assert!(ok.contains("m=audio 30002 RTP/AVP 0 101"), "{ok}");
    assert!(!ok.contains("a=crypto"), "no key ever goes over TCP: {ok}");
    let legs = media_start(&outs).unwrap();
    assert!(
        matches!(legs[0].protection, Protection::Rtp),
        "gateway leg plain"
    );
    assert!(
        matches!(legs[1].protection, Protection::Srtp { .. }),
        "next-hop leg SRTP"
    );
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw2", "rtp", "answered"])
            .get(),
        1
    );
}

#[test]
fn srtp_only_offer_over_tcp_is_refused_with_488() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(
            Peer::Gateway("gw2".into()),
            Signalling::Tcp,
            Listener::GatewayTcp,
        ),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c3", "sip:+15551234@192.0.2.10", &offer));
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert!(connected(&outs).is_none(), "no call toward the next hop");
}

#[test]
fn next_hop_requires_srtp_refuses_a_plain_offer_and_supported_accepts_it() {
    for (level, want) in [
        (EncryptionLevel::Required, 488),
        (EncryptionLevel::Supported, 100),
    ] {
        let mut h = Harness::new(
            level,
            vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        );
        let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
        let outs = h.feed(
            nh,
            &invite(
                "c4",
                "sip:+15551234@gw1.example.test",
                &sdp(4000, "RTP/AVP", None),
            ),
        );
        assert_eq!(status(&sent(&outs, nh)[0]), want, "{level:?}");
    }
}

#[test]
fn next_hop_to_gateway_with_srtp_required_and_plain_answer_gets_488_and_bye() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Required),
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c5", "sip:+15551234@gw1.example.test", &offer));
    let (gw, who) = connected(&outs).unwrap();
    assert_eq!(
        who,
        Peer::Gateway("gw1".into()),
        "routed by Request-URI host"
    );
    let b_invite = sent(&outs, gw).remove(0);
    assert!(b_invite.contains("RTP/SAVP") && b_invite.contains("a=crypto:"));
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let outs = h.feed(
        gw,
        &respond(&b_invite, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
    );
    let to_gw = sent(&outs, gw);
    assert!(to_gw[0].starts_with("ACK "), "{}", to_gw[0]);
    assert!(to_gw[1].starts_with("BYE "), "{}", to_gw[1]);
    let to_nh = sent(&outs, nh);
    assert_eq!(status(&to_nh[0]), 488);
    assert!(to_nh[0].contains("trunk_requires_srtp"), "{}", to_nh[0]);
    assert!(media_start(&outs).is_none());
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn next_hop_to_tcp_gateway_never_offers_keys() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c6", "sip:+15551234@anything", &offer));
    let (gw, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, gw).remove(0);
    assert!(b_invite.contains("m=audio 30004 RTP/AVP"), "{b_invite}");
    assert!(!b_invite.contains("a=crypto"), "{b_invite}");
    assert!(b_invite.contains("transport=tcp"), "{b_invite}");
}

#[test]
fn busy_is_relayed_and_acked_in_the_same_transaction() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c7", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
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
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c8", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    h.engine.handle(h.now, Input::Closed { conn: nh });
    let outs = h.drain();
    assert_eq!(status(&sent(&outs, gw)[0]), 503);
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn no_answer_in_time_gives_408_and_cancels_the_callee() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c9", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
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
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c10", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    let cancel = ack_and_bye("c10", "<sip:+15551234@192.0.2.10>", "CANCEL", 1)
        .replace("branch=z9hG4bK-CANCEL1", "branch=z9hG4bK-c10");
    let outs = h.feed(gw, &cancel);
    let to_gw = sent(&outs, gw);
    assert_eq!(status(&to_gw[0]), 200);
    assert_eq!(status(&to_gw[1]), 487);
    assert!(sent(&outs, nh)[0].starts_with("CANCEL "));
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let to_nh = sent(&outs, nh);
    assert!(
        to_nh[0].starts_with("ACK ") && to_nh[1].starts_with("BYE "),
        "{to_nh:?}"
    );
    assert!(sent(&outs, gw).is_empty(), "nothing more to the caller");
    assert_eq!(h.engine.calls(), 0);
}

/// The value of header `name` in `msg`.
fn header_value(msg: &str, name: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
        .to_string()
}

/// A call from gw1 to the next hop, ringing (a 180 with the callee's tag relayed): the caller's
/// connection, the callee's, our INVITE to the callee and the 180 the caller got.
fn ringing_call(h: &mut Harness, call_id: &str) -> (ConnId, ConnId, String, String) {
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite(call_id, "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
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
fn bye_from_the_caller_on_an_early_dialog_cancels_the_callee_and_a_late_200_is_acked_and_ended() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
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
        h.metrics
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
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
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
    assert_eq!(h.metrics.active_calls.with_label_values(&["srtp"]).get(), 0);
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        0
    );
}

#[test]
fn bye_from_the_callee_before_it_answers_ends_the_attempt_and_cancels_its_invite() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
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
        h.metrics
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
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let inv = invite("c11", "sip:+15551234@192.0.2.10", &offer)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(&sent(&h.feed(gw, &inv), gw)[0]), 483);
    let bye = ack_and_bye("nope", "<sip:x@y>;tag=zz", "BYE", 2);
    assert_eq!(status(&sent(&h.feed(gw, &bye), gw)[0]), 481);
}

impl Harness {
    fn engine_ports_released(&mut self) -> usize {
        self.engine.ports_mut().released.len()
    }
}

#[test]
fn optional_gateway_refusing_srtp_gets_a_plain_offer_and_the_call_completes_as_rtp() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c12", "sip:+15551234@gw1.example.test", &offer));
    let (gw, _) = connected(&outs).unwrap();
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let first = sent(&outs, gw).remove(0);
    assert!(first.contains("RTP/SAVP"));
    let outs = h.feed(gw, &respond(&first, 488, "Not Acceptable Here", None));
    let to_gw = sent(&outs, gw);
    assert!(
        to_gw[0].starts_with("ACK ") && to_gw[0].contains("CSeq: 1 ACK"),
        "{}",
        to_gw[0]
    );
    let second = &to_gw[1];
    assert!(
        second.starts_with("INVITE ") && second.contains("CSeq: 1 INVITE"),
        "{second}"
    );
    let call_id = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Call-ID:"))
            .unwrap()
            .to_string()
    };
    assert_ne!(call_id(second), call_id(&first), "a fresh dialog attempt");
    assert!(
        second.contains("m=audio 30004 RTP/AVP") && !second.contains("a=crypto"),
        "{second}"
    );
    assert!(
        sent(&outs, nh).is_empty(),
        "the caller sees nothing of the retry"
    );
    let outs = h.feed(
        gw,
        &respond(second, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
    );
    assert!(sent(&outs, gw)[0].contains("CSeq: 1 ACK"));
    let ok = &sent(&outs, nh)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("RTP/SAVP"), "next hop keeps SRTP: {ok}");
    let legs = media_start(&outs).unwrap();
    assert!(matches!(legs[0].protection, Protection::Rtp));
    assert!(matches!(legs[1].protection, Protection::Srtp { .. }));
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["outbound", "gw1", "rtp", "answered"])
            .get(),
        1
    );
}

/// A gateway's offer in Lync's dialect: SRTP as an option on RTP/AVP, its key with a lifetime
/// and an MKI, and `a=encryption:`.
fn lync_offer(encryption: &str) -> String {
    sdp(4000, "RTP/AVP", None)
        + &format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{GW_KEY}|2^31|1:1\r\na=encryption:{encryption}\r\n"
        )
}

/// The next hop answers `b_invite` with SRTP and the call is answered; the outputs.
fn next_hop_answers_srtp(h: &mut Harness, nh: ConnId, b_invite: &str) -> Vec<Output> {
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );
    let tag = offered_tag(b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    h.feed(nh, &respond(b_invite, 200, "OK", Some(&answer)))
}

#[test]
fn lync_style_offer_on_rtp_avp_is_answered_in_kind_with_its_mki_and_lifetime_kept() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(
        gw,
        &invite("lync1", "sip:+15551234@192.0.2.10", &lync_offer("optional")),
    );
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    assert!(b_invite.contains("m=audio 30004 RTP/SAVP"), "{b_invite}");
    assert!(!b_invite.contains("a=encryption"), "{b_invite}");
    let outs = next_hop_answers_srtp(&mut h, nh, &b_invite);
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    // RFC 3264 keeps the offer's profile: RTP/AVP, with our key under the offer's tag.
    assert!(ok.contains("m=audio 30002 RTP/AVP 0 101"), "{ok}");
    assert!(
        ok.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{ok}"
    );
    let legs = media_start(&outs).unwrap();
    let Protection::Srtp { rx, .. } = &legs[0].protection else {
        panic!("SRTP on the gateway leg");
    };
    assert_eq!(rx.mki(), crate::srtp::Mki::new(1, 1));
    assert_eq!(rx.lifetime(), Some(1 << 31));
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        1
    );
}

#[test]
fn lync_encryption_required_needs_srtp_and_rejected_withdraws_the_keys() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    // Over plain TCP no key may be used: `required` cannot be met.
    let tcp = h.open(
        1,
        peer(
            Peer::Gateway("gw2".into()),
            Signalling::Tcp,
            Listener::GatewayTcp,
        ),
    );
    let outs = h.feed(
        tcp,
        &invite("lync2", "sip:+15551234@192.0.2.10", &lync_offer("required")),
    );
    assert_eq!(status(&sent(&outs, tcp)[0]), 488);
    assert!(connected(&outs).is_none());

    // `rejected` over MTLS: plain RTP on the gateway leg, answered without a key.
    let gw = h.open(
        2,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(
        gw,
        &invite("lync3", "sip:+15551234@192.0.2.10", &lync_offer("rejected")),
    );
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    let outs = next_hop_answers_srtp(&mut h, nh, &b_invite);
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("RTP/AVP") && !ok.contains("a=crypto"), "{ok}");
    let legs = media_start(&outs).unwrap();
    assert!(matches!(legs[0].protection, Protection::Rtp));
    assert!(matches!(legs[1].protection, Protection::Srtp { .. }));
}

#[test]
fn avp_crypto_offer_style_and_gateway_suites_let_the_gateway_answer_either_way() {
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.srtp_offer_style = SrtpOfferStyle::AvpCrypto;
    gw1.srtp_suites = Some(vec![SrtpSuite::AesCm128HmacSha1_32]);
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let nh_offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let mut legs_by_answer = Vec::new();
    for (n, with_key) in [(1, false), (2, true)] {
        let call_id = format!("avp{n}");
        let outs = h.feed(
            nh,
            &invite(&call_id, "sip:+15551234@gw1.example.test", &nh_offer),
        );
        let gw = match connected(&outs) {
            Some((gw, _)) => {
                h.engine.handle(
                    h.now,
                    Input::Opened {
                        conn: gw,
                        peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
                    },
                );
                gw
            }
            None => outs
                .iter()
                .find_map(|o| match o {
                    Output::Send { conn, bytes } if bytes.starts_with(b"INVITE ") => Some(*conn),
                    _ => None,
                })
                .unwrap(),
        };
        let offer = sent(&outs, gw).remove(0);
        assert!(offer.contains(" RTP/AVP 0 101\r\n"), "{offer}");
        assert!(offer.contains("a=encryption:optional\r\n"), "{offer}");
        // Only the gateway's own suite list, not [media]'s.
        assert_eq!(offer.matches("a=crypto:").count(), 1, "{offer}");
        let tag = offered_tag(&offer, "AES_CM_128_HMAC_SHA1_32");
        let answer = if with_key {
            sdp(
                5000,
                "RTP/AVP",
                Some((tag, "AES_CM_128_HMAC_SHA1_32", GW_KEY)),
            )
        } else {
            sdp(5000, "RTP/AVP", None)
        };
        let outs = h.feed(gw, &respond(&offer, 200, "OK", Some(&answer)));
        // Answered at once: no 488 and retry as with an RTP/SAVP offer.
        assert!(sent(&outs, gw)[0].contains("CSeq: 1 ACK"));
        assert_eq!(status(&sent(&outs, nh)[0]), 200);
        let legs = media_start(&outs).unwrap();
        legs_by_answer.push(legs[0].protection.label());
    }
    assert_eq!(legs_by_answer, ["rtp", "srtp"]);
}

#[test]
fn rtcp_mux_offered_by_the_caller_is_answered_and_relayed_muxed() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    ) + "a=rtcp-mux\r\n";
    let outs = h.feed(gw, &invite("c13", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    assert!(
        !b_invite.contains("a=rtcp-mux"),
        "the far leg is offered plain RTCP: {b_invite}"
    );
    assert!(b_invite.contains("a=rtcp:30005"), "{b_invite}");
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = &sent(&outs, gw)[0];
    assert!(ok.contains("a=rtcp-mux"), "{ok}");
    let legs = media_start(&outs).unwrap();
    assert!(legs[0].rtcp_mux, "gateway leg muxed");
    assert_eq!(legs[0].remote_rtcp, Some("10.0.0.1:4000".parse().unwrap()));
    assert!(!legs[1].rtcp_mux);
    assert_eq!(legs[1].remote_rtcp, Some("10.0.0.1:5001".parse().unwrap()));
}

#[test]
fn options_probes_mark_gateways_up_and_down() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.options_interval_secs = 30;
    let mut g2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    g2.options_interval_secs = 30;
    let mut h = Harness::new(EncryptionLevel::Required, vec![g1, g2]);
    let up = |h: &Harness, g: &str| h.metrics.gateway_up.with_label_values(&[g]).get();
    h.engine.start(h.now);
    let first = h.engine.poll_timeout().unwrap();
    assert_eq!(first, h.now + Duration::from_secs(1));
    h.now = first;
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let conns: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Connect { conn, target } => Some((*conn, target.peer.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(conns.len(), 2, "one connection per gateway");
    let (gw1, _) = conns
        .iter()
        .find(|(_, p)| *p == Peer::Gateway("gw1".into()))
        .unwrap();
    let (gw2, _) = conns
        .iter()
        .find(|(_, p)| *p == Peer::Gateway("gw2".into()))
        .unwrap();
    let probe = sent(&outs, *gw1).remove(0);
    assert!(
        probe.starts_with("OPTIONS sip:gw1.example.test;transport=tls SIP/2.0"),
        "{probe}"
    );
    // gw1 answers; gw2's connection fails.
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: *gw1,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    h.feed(*gw1, &respond(&probe, 200, "OK", None));
    h.engine.handle(h.now, Input::Closed { conn: *gw2 });
    assert_eq!(up(&h, "gw1"), 1);
    assert_eq!(up(&h, "gw2"), 0);
    // Next round: gw1 stays silent past the probe timeout and goes down.
    h.now += Duration::from_secs(30);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        sent(&outs, *gw1)[0].starts_with("OPTIONS "),
        "reuses the open connection"
    );
    h.now += Duration::from_secs(5);
    h.engine.handle_timeout(h.now);
    assert_eq!(up(&h, "gw1"), 0);
}

/// The caller's SRTP offer used by the answered-call tests.
fn gw_offer() -> String {
    sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    )
}

/// Plays an answered and acknowledged SRTP call gw1 → next hop from `invite_text`; returns the
/// gateway and next-hop connections, the 200 the caller got and the INVITE the next hop got.
fn answered_call_from(h: &mut Harness, invite_text: &str) -> (ConnId, ConnId, String, String) {
    let (gw, nh, ok, b_invite) = answered_call_unacked(h, invite_text);
    let call_id = ok
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap();
    assert!(h
        .feed(gw, &ack_and_bye(call_id, &to_header(&ok), "ACK", 1))
        .is_empty());
    (gw, nh, ok, b_invite)
}

/// As [`answered_call_from`], without the caller's ACK.
fn answered_call_unacked(h: &mut Harness, invite_text: &str) -> (ConnId, ConnId, String, String) {
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, invite_text);
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = sent(&outs, gw).remove(0);
    assert_eq!(status(&ok), 200);
    (gw, nh, ok, b_invite)
}

/// An answered SRTP call gw1 → next hop; returns (gateway conn, next-hop conn).
fn answered_call(h: &mut Harness, call_id: &str) -> (ConnId, ConnId) {
    let (gw, nh, _, _) =
        answered_call_from(h, &invite(call_id, "sip:+15551234@192.0.2.10", &gw_offer()));
    (gw, nh)
}

#[test]
fn media_timeout_ends_both_legs_with_bye() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, nh) = answered_call(&mut h, "c20");
    let id = 1;
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: id,
            both: true,
        },
    );
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "caller's leg ended");
    assert!(sent(&outs, nh)[0].starts_with("BYE "), "callee's leg ended");
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Stop { .. }))));
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "media_timeout"])
            .get(),
        1
    );
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn draining_refuses_new_calls_with_503_and_end_all_byes_the_rest() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, nh) = answered_call(&mut h, "c21");
    h.engine.handle(h.now, Input::Drain);
    let offer = sdp(
        4002,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c22", "sip:+15551234@192.0.2.10", &offer));
    let refused = &sent(&outs, gw)[0];
    assert_eq!(status(refused), 503);
    assert!(refused.contains("Retry-After: 30"), "{refused}");
    assert_eq!(h.engine.active(), 1, "the call in progress goes on");
    h.engine.handle(h.now, Input::EndAll);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(h.engine.active(), 0);
}

#[test]
fn one_silent_party_ends_the_call_only_after_a_full_timeout_since_the_answer() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, nh) = answered_call(&mut h, "c21");
    // Right after the answer (a caller may have sent nothing during early media): kept.
    h.now += Duration::from_secs(29);
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: false,
        },
    );
    assert!(h.drain().is_empty());
    assert_eq!(h.engine.calls(), 1);
    // A full timeout after the answer: the gateway vanished; both legs get BYE.
    h.now += Duration::from_secs(1);
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: false,
        },
    );
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "media_timeout"])
            .get(),
        1
    );
}

#[test]
fn a_caller_that_never_acks_our_200_is_hung_up_after_64_t1() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, nh, _, _) = answered_call_unacked(
        &mut h,
        &invite("c22", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    h.now += Duration::from_secs(31);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty(), "still waiting for the ACK");
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "no_ack"])
            .get(),
        1
    );
    // With the ACK in time, nothing happens at 32 s.
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    answered_call(&mut h, "c23");
    h.now += Duration::from_secs(40);
    h.engine.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.engine.calls(), 1);
}

#[test]
fn early_media_in_183_starts_the_relay_and_the_200_repeats_the_answer() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c30", "sip:+15551234@gw1", &offer));
    let (gw, _) = connected(&outs).unwrap();
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let b_invite = sent(&outs, gw).remove(0);
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let early = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
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
    assert_eq!(h.metrics.active_calls.with_label_values(&["srtp"]).get(), 1);
}

#[test]
fn cancel_during_early_media_stops_the_relay_without_counting_an_active_call() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c31", "sip:+15551234@gw1", &offer));
    let (gw, _) = connected(&outs).unwrap();
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let b_invite = sent(&outs, gw).remove(0);
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let early = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
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
    assert_eq!(h.metrics.active_calls.with_label_values(&["srtp"]).get(), 0);
    assert_eq!(h.engine.calls(), 0);
}

fn reinvite(call_id: &str, to: &str, body: &str, cseq: u32) -> String {
    format!(
        "INVITE sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-re{cseq}\r\nMax-Forwards: 70\r\n\
         From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\nContact: <sip:gw@10.0.0.1:5067;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn reinvite_hold_and_resume_cross_the_call_rekeys_stay_on_their_leg_and_hold_is_exempt_from_media_timeout(
) {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let offer = gw_offer();
    let (gw, nh, ok, b_invite) =
        answered_call_from(&mut h, &invite("c40", "sip:+15551234@192.0.2.10", &offer));
    let to = to_header(&ok);
    let our_key = ok
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap()
        .to_string();

    let version = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("o="))
            .unwrap()
            .split(' ')
            .nth(2)
            .unwrap()
            .to_string()
    };
    let key_of = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("a=crypto:"))
            .unwrap()
            .to_string()
    };
    let nh_answer = |direction: &str| {
        sdp(
            5000,
            "RTP/SAVP",
            Some((
                offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80"),
                "AES_CM_128_HMAC_SHA1_80",
                NH_KEY,
            )),
        )
        .replace("a=sendrecv", direction)
    };

    // Hold: same keys, sendonly. It changes what the next hop hears: carried across as our
    // re-INVITE there, with a fresh key of ours on that leg.
    let hold = offer.replace("a=sendrecv", "a=sendonly");
    let outs = h.feed(gw, &reinvite("c40", &to, &hold, 2));
    assert!(
        sent(&outs, gw).is_empty(),
        "answered once the next hop answers"
    );
    let relayed = sent(&outs, nh)[0].clone();
    assert!(
        relayed.starts_with("INVITE ") && relayed.contains("CSeq: 2 INVITE\r\n"),
        "{relayed}"
    );
    assert!(
        relayed.contains("a=sendonly") && relayed.contains("m=audio 30004 RTP/SAVP"),
        "{relayed}"
    );
    assert_eq!(version(&relayed), "2", "{relayed}");
    assert_ne!(
        key_of(&relayed),
        key_of(&b_invite),
        "fresh key toward the next hop"
    );
    assert!(!relayed.contains(GW_KEY), "the gateway's key never crosses");
    // A second re-offer while this one crosses: 491.
    let outs = h.feed(gw, &reinvite("c40", &to, &offer, 3));
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // The next hop answers recvonly: ACKed; the gateway gets our recvonly answer.
    let outs = h.feed(
        nh,
        &respond(&relayed, 200, "OK", Some(&nh_answer("a=recvonly"))),
    );
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 2 ACK"),
        "{ack}"
    );
    let held = &sent(&outs, gw)[0];
    assert_eq!(status(held), 200, "{held}");
    assert!(
        held.contains("a=recvonly") && held.contains("m=audio 30002 RTP/SAVP"),
        "{held}"
    );
    assert!(
        held.contains(&our_key),
        "same key on the gateway's leg: {held}"
    );
    assert_eq!(version(held), "2", "{held}");
    assert!(
        outs.iter().any(|o| matches!(
            o,
            Output::Media(MediaCommand::Rekey {
                leg: "next_hop",
                ..
            })
        )),
        "the next hop's leg takes our fresh key"
    );
    h.engine.handle(
        h.now,
        Input::MediaTimeout {
            call: 1,
            both: true,
        },
    );
    assert_eq!(h.engine.calls(), 1, "a held call is not ended for silence");

    // Resume, carried across the same way.
    let outs = h.feed(gw, &reinvite("c40", &to, &offer, 4));
    let relayed = sent(&outs, nh)[0].clone();
    assert!(
        relayed.contains("a=sendrecv") && version(&relayed) == "3",
        "{relayed}"
    );
    let outs = h.feed(
        nh,
        &respond(&relayed, 200, "OK", Some(&nh_answer("a=sendrecv"))),
    );
    let resumed = &sent(&outs, gw)[0];
    assert!(
        resumed.contains("a=sendrecv") && version(resumed) == "3",
        "{resumed}"
    );
    // A refusal from the far side is relayed with its code (and ACKed there).
    let outs = h.feed(gw, &reinvite("c40", &to, &hold, 5));
    let relayed = sent(&outs, nh)[0].clone();
    let outs = h.feed(nh, &respond(&relayed, 488, "Not Acceptable Here", None));
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 4 ACK"),
        "{ack}"
    );
    let branch = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(branch(ack), branch(&relayed), "same transaction");
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert_eq!(h.engine.calls(), 1);

    // New keys: the leg is rekeyed (fresh keys of ours too) and the relay told.
    let rekey = offer.replace(GW_KEY, NH_KEY);
    let outs = h.feed(gw, &reinvite("c40", &to, &rekey, 4));
    let rekeyed = &sent(&outs, gw)[0];
    assert_eq!(status(rekeyed), 200, "{rekeyed}");
    let new_key = rekeyed
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap();
    assert_ne!(new_key, our_key, "our key changes with theirs");
    assert!(!rekeyed.contains(NH_KEY), "their key is never echoed");
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { leg: "gateway", .. }))),
        "the relay gets the new keys"
    );
    assert!(sent(&outs, nh).is_empty(), "the other leg keeps its keys");
    // A later refresh with the same new key is answered with the same new key of ours.
    let outs = h.feed(gw, &reinvite("c40", &to, &rekey, 5));
    let again = &sent(&outs, gw)[0];
    assert!(again.contains(new_key), "{again}");
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { .. }))));
    // An offer with no suite we allow is refused without ending the call.
    let unknown = offer.replace(
        "AES_CM_128_HMAC_SHA1_80 inline:",
        "F8_128_HMAC_SHA1_80 inline:",
    );
    let outs = h.feed(gw, &reinvite("c40", &to, &unknown, 6));
    assert_eq!(status(&sent(&outs, gw)[0]), 488);
    assert_eq!(h.engine.calls(), 1);

    // A session refresh from the next hop's side (no SDP) gets our SDP as an offer.
    let b_call_id = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap()
        .to_string();
    let b_from = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .unwrap()
        .to_string();
    let refresh = format!(
        "INVITE sip:mediation@192.0.2.10:5070;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-nh1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15551234@10.0.0.2>;tag=callee\r\nTo: {b_from}\r\nCall-ID: {b_call_id}\r\n\
         CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let outs = h.feed(nh, &refresh);
    let r = &sent(&outs, nh)[0];
    assert_eq!(status(r), 200, "{r}");
    assert!(
        r.contains("m=audio 30004 RTP/SAVP") && r.matches("a=crypto:").count() == 1,
        "{r}"
    );
    // Our SDP toward the next hop went to version 3 with the relayed resume (the refused
    // offer after it never took effect).
    assert_eq!(version(r), "4", "{r}");
}

#[test]
fn max_calls_gives_503_with_retry_after_and_loops_get_482() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw_peer = || peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls);
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    // Two unanswered calls per connection at most (the harness's limit): a third waits.
    let gw = h.open(1, gw_peer());
    for i in 0..2 {
        let outs = h.feed(
            gw,
            &invite(&format!("m{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        assert_eq!(status(&sent(&outs, gw)[0]), 100);
    }
    let outs = h.feed(gw, &invite("m2", "sip:+15551234@192.0.2.10", &offer));
    let busy = &sent(&outs, gw)[0];
    assert_eq!(status(busy), 503);
    assert!(
        busy.contains("max_pending_per_connection reached"),
        "{busy}"
    );
    // Another connection still gets in, up to max_calls (3).
    let gw2 = h.open(1, gw_peer());
    let outs = h.feed(gw2, &invite("m2", "sip:+15551234@192.0.2.10", &offer));
    assert_eq!(status(&sent(&outs, gw2)[0]), 100);
    let outs = h.feed(gw2, &invite("m3", "sip:+15551234@192.0.2.10", &offer));
    let busy = &sent(&outs, gw2)[0];
    assert_eq!(status(busy), 503);
    assert!(busy.contains("Retry-After: 5"), "{busy}");
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "none", "max_calls"])
            .get(),
        1
    );

    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let looped = invite("loop", "sip:+15551234@gw1", &offer).replace(
        "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop\r\n",
        "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop\r\nVia: SIP/2.0/TLS 192.0.2.10:5070;branch=z9hG4bK-ours\r\n",
    );
    let outs = h.feed(nh, &looped);
    assert_eq!(status(&sent(&outs, nh)[0]), 482);
    assert!(connected(&outs).is_none());
}

#[test]
fn p_asserted_identity_and_privacy_pass_through() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let inv = invite("pai", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nP-Asserted-Identity: <sip:+15550001@gw1.example.test>\r\nPrivacy: id\r\n",
    );
    let outs = h.feed(gw, &inv);
    let (nh, _) = connected(&outs).unwrap();
    let b = sent(&outs, nh).remove(0);
    assert!(
        b.contains("P-Asserted-Identity: <sip:+15550001@gw1.example.test>\r\n"),
        "{b}"
    );
    assert!(b.contains("Privacy: id\r\n"), "{b}");
    assert!(b.contains("Max-Forwards: 69\r\n"), "decremented: {b}");
}

#[test]
fn vendor_headers_pass_through_byte_for_byte_as_configured_and_others_stay() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    // The harness passes `X-*` and `User-to-User`; folding and odd spacing are kept.
    let inv = invite("vendor", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nx-carrier-route :  trunk-7\r\n  ;q=1\r\nUser-to-User: 00FA;encoding=hex\r\n\
         ms-call-source: ms-tenant\r\nSubject: not passed\r\n",
    );
    let outs = h.feed(gw, &inv);
    let (nh, _) = connected(&outs).unwrap();
    let b = sent(&outs, nh).remove(0);
    assert!(
        b.contains("\r\nx-carrier-route :  trunk-7\r\n  ;q=1\r\n"),
        "{b}"
    );
    assert!(b.contains("\r\nUser-to-User: 00FA;encoding=hex\r\n"), "{b}");
    assert!(
        !b.contains("ms-call-source") && !b.contains("Subject:"),
        "{b}"
    );
}

#[test]
fn a_tel_request_uri_is_routed_by_its_number_and_sent_on_with_user_phone() {
    let mut gw2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    gw2.user_phone = false;
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gw2,
        ],
    );
    h.engine.set_routes(vec![
        super::engine::Route {
            pattern: regex::Regex::new(r"^\+1555").unwrap(),
            gateways: vec!["gw1".into()],
        },
        super::engine::Route {
            pattern: regex::Regex::new(r"^\+44").unwrap(),
            gateways: vec!["gw2".into()],
        },
    ]);
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    for (call, uri, expected) in [
        // Visual separators go; the route matches the digits; gw1 keeps user=phone.
        (
            "t1",
            "tel:+1-555-123-4567;npdi",
            "INVITE sip:+15551234567@gw1.example.test:5067;transport=tls;user=phone SIP/2.0",
        ),
        // gw2 says user_phone = false.
        (
            "t2",
            "tel:+44-20-7946-0000",
            "INVITE sip:+442079460000@gw2.example.test:5067;transport=tcp SIP/2.0",
        ),
        // A sip: URI's user part is matched as before, and gets no user=phone.
        (
            "t3",
            "sip:+15557654321@192.0.2.10",
            "INVITE sip:+15557654321@gw1.example.test:5067;transport=tls SIP/2.0",
        ),
    ] {
        let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
        let outs = h.feed(nh, &invite(call, uri, &offer));
        // The first call to gw1 opens its connection; the third reuses it.
        let b = outs
            .iter()
            .find_map(|o| match o {
                Output::Send { bytes, .. } if bytes.starts_with(b"INVITE ") => {
                    Some(String::from_utf8(bytes.to_vec()).unwrap())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{uri}: no INVITE toward a gateway: {:?}", sent(&outs, nh)));
        assert!(b.starts_with(&format!("{expected}\r\n")), "{uri}: {b}");
    }
}

fn routed(h: &mut Harness) {
    h.engine.set_routes(vec![super::engine::Route {
        pattern: regex::Regex::new(r"^\+1").unwrap(),
        gateways: vec!["gw1".into(), "gw2".into()],
    }]);
}

/// The INVITE sent on a connection the engine opened, and that connection.
fn invite_on_new_connection(outs: &[Output]) -> (ConnId, Peer, String) {
    let (conn, who) = connected(outs).expect("a new connection");
    let invite = sent(outs, conn)
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("an INVITE");
    (conn, who, invite)
}

#[test]
fn route_fails_over_on_connection_failure_503_and_silence() {
    for failure in ["connection", "503", "silence"] {
        let mut h = Harness::new(
            EncryptionLevel::Required,
            vec![
                gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
                gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
            ],
        );
        routed(&mut h);
        let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
        let offer = sdp(
            4000,
            "RTP/SAVP",
            Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
        );
        let outs = h.feed(
            nh,
            &invite(&format!("f-{failure}"), "sip:+15551234@anything", &offer),
        );
        let (gw1, who, first) = invite_on_new_connection(&outs);
        assert_eq!(who, Peer::Gateway("gw1".into()), "{failure}");
        let outs = match failure {
            "connection" => {
                h.engine.handle(h.now, Input::Closed { conn: gw1 });
                h.drain()
            }
            "503" => {
                h.engine.handle(
                    h.now,
                    Input::Opened {
                        conn: gw1,
                        peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
                    },
                );
                let outs = h.feed(gw1, &respond(&first, 503, "Service Unavailable", None));
                assert!(
                    sent(&outs, gw1)[0].starts_with("ACK "),
                    "{failure}: the 503 is acknowledged"
                );
                outs
            }
            _ => {
                h.engine.handle(
                    h.now,
                    Input::Opened {
                        conn: gw1,
                        peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
                    },
                );
                h.now += Duration::from_secs(10);
                h.engine.handle_timeout(h.now);
                let outs = h.drain();
                assert!(
                    sent(&outs, gw1)[0].starts_with("CANCEL "),
                    "{failure}: the silent gateway is cancelled"
                );
                outs
            }
        };
        assert!(
            sent(&outs, nh).is_empty(),
            "{failure}: the caller sees nothing of the failover"
        );
        let (gw2, who, second) = invite_on_new_connection(&outs);
        assert_eq!(who, Peer::Gateway("gw2".into()), "{failure}");
        assert!(
            second.contains("RTP/AVP") && !second.contains("a=crypto"),
            "{failure}: gw2 is TCP: {second}"
        );
        h.engine.handle(
            h.now,
            Input::Opened {
                conn: gw2,
                peer: peer(
                    Peer::Gateway("gw2".into()),
                    Signalling::Tcp,
                    Listener::Outbound,
                ),
            },
        );
        let outs = h.feed(
            gw2,
            &respond(&second, 200, "OK", Some(&sdp(5000, "RTP/AVP", None))),
        );
        assert_eq!(status(&sent(&outs, nh)[0]), 200, "{failure}");
        assert_eq!(
            h.metrics.failovers.with_label_values(&["gw1"]).get(),
            1,
            "{failure}"
        );
        assert_eq!(
            h.metrics
                .calls
                .with_label_values(&["outbound", "gw2", "rtp", "answered"])
                .get(),
            1,
            "{failure}"
        );
    }
}

#[test]
fn a_gateway_marked_down_by_options_is_skipped() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.options_interval_secs = 30;
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            g1,
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    routed(&mut h);
    h.engine.start(h.now);
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let (probe_conn, _) = connected(&outs).unwrap();
    h.engine.handle(h.now, Input::Closed { conn: probe_conn });
    assert_eq!(h.metrics.gateway_up.with_label_values(&["gw1"]).get(), 0);
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("skip", "sip:+15551234@anything", &offer));
    let (_, who, _) = invite_on_new_connection(&outs);
    assert_eq!(
        who,
        Peer::Gateway("gw2".into()),
        "gw1 is down: straight to gw2"
    );
}

#[test]
fn session_timer_asked_by_the_caller_is_answered_in_the_200_and_in_refreshes() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let offer = gw_offer();
    let inv = invite("st", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer, 100rel\r\nSession-Expires: 1800;refresher=uac\r\n",
    );
    let (gw, _, ok, _) = answered_call_from(&mut h, &inv);
    assert!(
        ok.contains("Session-Expires: 1800;refresher=uac\r\n") && ok.contains("Require: timer\r\n"),
        "{ok}"
    );
    let refresh = reinvite("st", &to_header(&ok), &offer, 2).replace(
        "CSeq: 2 INVITE\r\n",
        "CSeq: 2 INVITE\r\nSupported: timer\r\nSession-Expires: 1800\r\n",
    );
    let outs = h.feed(gw, &refresh);
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 200);
    assert!(
        r.contains("Session-Expires: 1800;refresher=uac\r\n") && r.contains("Require: timer"),
        "{r}"
    );
    // The caller refreshes; when it stops, the call ends 32 s before the interval runs out.
    h.now += Duration::from_secs(1767);
    h.engine.handle_timeout(h.now);
    assert!(
        h.drain().is_empty(),
        "refreshed at t=0: still within 1800 - 32 s"
    );
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "{outs:?}");
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "session_expired"])
            .get(),
        1
    );
}

#[test]
fn session_interval_below_min_se_gets_422() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let inv = invite("se60", "sip:+15551234@192.0.2.10", &gw_offer()).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 60\r\n",
    );
    let outs = h.feed(gw, &inv);
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 422, "{r}");
    assert!(r.contains("Min-SE: 90\r\n"), "{r}");
    assert!(connected(&outs).is_none() && h.engine.calls() == 0);
}

/// A call from the next hop to gw1, whose trunk enables session timers; the gateway answers
/// with `answer_headers` added to its 200. Returns (next-hop conn, gateway conn, gateway's
/// INVITE).
fn call_to_timed_gateway(
    h: &mut Harness,
    call_id: &str,
    answer_headers: &str,
) -> (ConnId, ConnId, String) {
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite(call_id, "sip:+15551234@gw1", &offer));
    let (gw, _) = connected(&outs).unwrap();
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let b_invite = sent(&outs, gw).remove(0);
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let ok = respond(&b_invite, 200, "OK", Some(&answer)).replacen(
        "Contact:",
        &format!("{answer_headers}Contact:"),
        1,
    );
    let outs = h.feed(gw, &ok);
    assert!(sent(&outs, gw)[0].starts_with("ACK "));
    let ok = &sent(&outs, nh)[0];
    assert_eq!(status(ok), 200);
    assert!(h
        .feed(nh, &ack_and_bye(call_id, &to_header(ok), "ACK", 1))
        .is_empty());
    (nh, gw, b_invite)
}

fn timed_gateway() -> Vec<GatewayConfig> {
    let mut g = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g.enable_session_timer = true;
    vec![g]
}

fn advance(h: &mut Harness, secs: u64) -> Vec<Output> {
    h.now += Duration::from_secs(secs);
    h.engine.handle_timeout(h.now);
    h.drain()
}

#[test]
fn enabled_session_timer_is_asked_for_refreshed_by_update_and_a_408_ends_the_call() {
    let mut h = Harness::new(EncryptionLevel::Required, timed_gateway());
    let (nh, gw, b_invite) = call_to_timed_gateway(
        &mut h,
        "st1",
        "Session-Expires: 120;refresher=uac\r\nRequire: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    assert!(
        b_invite.contains("Supported: timer\r\nSession-Expires: 1800\r\nMin-SE: 90\r\n"),
        "{b_invite}"
    );
    assert!(
        advance(&mut h, 59).is_empty(),
        "refresh at half the interval"
    );
    let outs = advance(&mut h, 1);
    let update = &sent(&outs, gw)[0];
    assert!(update.starts_with("UPDATE "), "{update}");
    assert!(
        update.contains("CSeq: 2 UPDATE\r\n")
            && update.contains("Session-Expires: 120;refresher=uac\r\n")
            && update.contains(";tag=callee"),
        "{update}"
    );
    assert!(sent(&outs, nh).is_empty(), "the other leg is not disturbed");
    assert!(h.feed(gw, &respond(update, 200, "OK", None)).is_empty());

    // Glare-free retry after 491, then 408 ends the call on both legs.
    let outs = advance(&mut h, 60);
    let update = sent(&outs, gw)[0].clone();
    assert!(update.contains("CSeq: 3 UPDATE"), "{update}");
    assert!(h
        .feed(gw, &respond(&update, 491, "Request Pending", None))
        .is_empty());
    assert!(advance(&mut h, 2).is_empty(), "no retry before 2.1 s");
    let outs = advance(&mut h, 2);
    let update = sent(&outs, gw)[0].clone();
    assert!(update.contains("CSeq: 4 UPDATE"), "{update}");
    let outs = h.feed(gw, &respond(&update, 408, "Request Timeout", None));
    assert!(sent(&outs, gw)[0].starts_with("BYE "), "{outs:?}");
    assert!(sent(&outs, nh)[0].starts_with("BYE "), "{outs:?}");
    assert_eq!(
        h.metrics
            .calls
            .with_label_values(&["outbound", "gw1", "srtp", "session_expired"])
            .get(),
        1
    );
}

#[test]
fn refresh_by_reinvite_repeats_our_sdp_is_acked_and_a_crossing_reinvite_gets_491() {
    let mut h = Harness::new(EncryptionLevel::Required, timed_gateway());
    // No Session-Expires in the 200 (the gateway knows no timers) and no UPDATE: we refresh
    // with re-INVITE at half our own interval.
    let (nh, gw, b_invite) = call_to_timed_gateway(&mut h, "st2", "");
    let outs = advance(&mut h, 900);
    let refresh = sent(&outs, gw)[0].clone();
    assert!(
        refresh.starts_with("INVITE ") && refresh.contains("CSeq: 2 INVITE"),
        "{refresh}"
    );
    assert_eq!(
        refresh.split("\r\n\r\n").nth(1),
        b_invite.split("\r\n\r\n").nth(1),
        "the same SDP, same version: no change"
    );
    // The gateway's own re-INVITE crosses ours: 491.
    let theirs = format!(
        "INVITE sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-glare\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        to_header(&refresh),
        refresh
            .lines()
            .find_map(|l| l.strip_prefix("From: "))
            .unwrap(),
        refresh
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap(),
    );
    let outs = h.feed(gw, &theirs);
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // Our refresh is answered: ACKed with its CSeq; nothing toward the next hop.
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((
            offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80"),
            "AES_CM_128_HMAC_SHA1_80",
            GW_KEY,
        )),
    );
    let outs = h.feed(gw, &respond(&refresh, 200, "OK", Some(&answer)));
    let ack = &sent(&outs, gw)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 2 ACK"),
        "{ack}"
    );
    assert!(sent(&outs, nh).is_empty());
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::Rekey { .. }))),
        "same keys: no rekey"
    );
    // After our refresh the gateway may re-INVITE again.
    let outs = h.feed(gw, &theirs.replace("CSeq: 7", "CSeq: 8"));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
}

#[test]
fn forks_up_to_max_early_dialogs_are_relayed_a_second_2xx_is_ended_and_a_repeated_one_reacked() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, &invite("fork", "sip:+15551234@192.0.2.10", &gw_offer()));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: nh,
            peer: peer(Peer::NextHop, MTLS, Listener::Outbound),
        },
    );
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
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
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
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("fk2", "sip:+15551234@gw1", &offer));
    let (gw, _) = connected(&outs).unwrap();
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let b_invite = sent(&outs, gw).remove(0);
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let early = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(
        gw,
        &respond(&b_invite, 183, "Session Progress", Some(&early))
            .replace(";tag=callee", ";tag=e1"),
    );
    assert!(media_start(&outs).is_some());
    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";
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

#[test]
fn a_codec_change_from_the_next_hop_crosses_to_the_gateway_and_an_unanswered_one_ends_the_call() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, nh, ok, b_invite) = answered_call_from(
        &mut h,
        &invite("c50", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let field = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    // The next hop re-offers PCMA only (its own dialog: it is the caller there now).
    let pcma = sdp(
        5000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    )
    .replace("RTP/SAVP 0 101", "RTP/SAVP 8 101")
    .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000");
    let reoffer = format!(
        "INVITE sip:mediation@192.0.2.10:5070;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.2:5061;branch=z9hG4bK-codec\r\nMax-Forwards: 70\r\n\
         From: <sip:+15551234@10.0.0.2>;tag=callee\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 INVITE\r\n\
         Contact: <sip:nh@10.0.0.2:5061;transport=tls>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{pcma}",
        field(&b_invite, "From: "),
        field(&b_invite, "Call-ID: "),
        pcma.len()
    );
    let outs = h.feed(nh, &reoffer);
    assert!(sent(&outs, gw).len() == 1, "{outs:?}");
    let relayed = sent(&outs, gw)[0].clone();
    assert!(
        relayed.starts_with("INVITE sip:gw@10.0.0.1:5067"),
        "{relayed}"
    );
    assert!(
        relayed.contains("m=audio 30002 RTP/SAVP 8 101") && relayed.contains("PCMA/8000"),
        "{relayed}"
    );
    assert!(
        relayed.contains(&format!(
            "From: {};tag=",
            field(&ok, "To: ").split(";tag=").next().unwrap()
        )) && relayed.contains("To: <sip:+15550001@10.0.0.1>;tag=caller"),
        "our request in the caller's dialog: {relayed}"
    );
    // The gateway's own re-INVITE crosses ours: 491.
    let outs = h.feed(gw, &reinvite("c50", &to_header(&ok), &gw_offer(), 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 491);
    // Nobody answers ours: after 32 s the next hop gets 408 and the call ends.
    h.now += Duration::from_secs(33);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    let to_nh = sent(&outs, nh);
    assert_eq!(status(&to_nh[0]), 408, "{to_nh:?}");
    assert!(to_nh[1].starts_with("BYE "), "{to_nh:?}");
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}

#[test]
fn next_hop_to_udp_gateway_is_plain_like_tcp_with_a_udp_via() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("c6u", "sip:+15551234@anything", &offer));
    let (gw, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, gw).remove(0);
    assert!(b_invite.contains("m=audio 30004 RTP/AVP"), "{b_invite}");
    assert!(!b_invite.contains("a=crypto"), "{b_invite}");
    assert!(
        b_invite.contains("Via: SIP/2.0/UDP 192.0.2.10:5069;rport;branch="),
        "{b_invite}"
    );
    assert!(b_invite.contains("transport=udp"), "{b_invite}");
}

#[test]
fn keys_from_a_udp_gateway_are_ignored() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(
            Peer::Gateway("gw3".into()),
            Signalling::Udp,
            Listener::GatewayUdp,
        ),
    );
    let offer = sdp(
        4000,
        "RTP/AVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &invite("c8u", "sip:+15551234@192.0.2.10", &offer));
    let (nh, _) = connected(&outs).unwrap();
    assert!(
        !sent(&outs, nh).is_empty(),
        "the call goes on, keys ignored"
    );
    let ignored = h
        .metrics
        .sdes_keys_ignored
        .with_label_values(&["plain_udp"])
        .get();
    assert_eq!(ignored, 1);
}

#[test]
fn an_offer_with_too_many_media_lines_gets_488() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let mut offer = gw_offer();
    for i in 0..16 {
        offer.push_str(&format!("m=video {} RTP/AVP 96\r\n", 6000 + 2 * i));
    }
    let outs = h.feed(gw, &invite("c60", "sip:+15551234@192.0.2.10", &offer));
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 488, "{r}");
    assert!(r.contains("too many media lines"), "{r}");
    assert!(connected(&outs).is_none());
}

/// Security review, finding 7: a dialog's Call-ID and tags do not let another peer act on it.
/// Another gateway (or the TCP door) that learned them gets 481 for BYE and re-INVITE, never
/// our SDP or keys, and the call goes on; the leg's own peer on a new connection is served.
#[test]
fn in_dialog_requests_from_another_peer_get_481_and_change_nothing() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw2", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw-tcp", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    let (_gw, nh, ok, _) = answered_call_from(
        &mut h,
        &invite("c70", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let to = to_header(&ok);
    let strangers = [
        peer(Peer::Gateway("gw2".into()), MTLS, Listener::GatewayTls),
        peer(
            Peer::Gateway("gw1".into()),
            Signalling::Tcp,
            Listener::GatewayTcp,
        ),
        peer(Peer::NextHop, MTLS, Listener::NextHop),
    ];
    for (i, who) in strangers.into_iter().enumerate() {
        let other = h.open(2 + i as u64, who);
        let reinvite = format!(
            "INVITE sip:mediation@192.0.2.10:5067;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS 10.0.0.9:5067;branch=z9hG4bK-re{i}\r\nMax-Forwards: 70\r\n\
             From: <sip:+15550001@10.0.0.1>;tag=caller\r\nTo: {to}\r\nCall-ID: c70\r\n\
             CSeq: {} INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            10 + i,
            gw_offer().len(),
            gw_offer()
        );
        for request in [reinvite, ack_and_bye("c70", &to, "BYE", 20 + i as u32)] {
            let outs = h.feed(other, &request);
            let answers = sent(&outs, other);
            assert_eq!(answers.len(), 1, "{answers:?}");
            assert_eq!(status(&answers[0]), 481, "{}", answers[0]);
            assert!(!answers[0].contains("inline:"), "no keys to a stranger");
            assert!(sent(&outs, nh).is_empty(), "nothing reached the callee");
            assert_eq!(h.engine.calls(), 1, "the call goes on");
        }
    }
    // gw1 itself, on a new MTLS connection (TLS 1.2 this time), ends the call.
    let again = h.open(
        9,
        peer(
            Peer::Gateway("gw1".into()),
            Signalling::Mtls {
                version: TlsVersionSeen::Tls12,
            },
            Listener::GatewayTls,
        ),
    );
    let outs = h.feed(again, &ack_and_bye("c70", &to, "BYE", 30));
    assert_eq!(status(&sent(&outs, again)[0]), 200);
    assert!(sent(&outs, nh)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}

/// Security review, low: when only one of a call's two port pairs could be had, the one that
/// was handed out goes back.
#[test]
fn a_call_refused_for_want_of_ports_gives_back_the_pair_it_got() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    h.engine.ports_mut().limit = Some(1);
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, &invite("p1", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(status(&sent(&outs, gw)[0]), 503);
    assert_eq!(h.engine.ports_mut().released, vec![30002]);
}

/// Security review, low: Max-Forwards is at most 255 hops (RFC 3261 §20.22), however large the
/// number sent, so a peer cannot give a request more hops than the protocol allows. (A value
/// that is not a number never reaches the engine: the door answers 400.)
#[test]
fn max_forwards_above_255_is_held_to_255() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let mut nh = None;
    for (i, (value, forwarded)) in [("300", "254"), ("4000000000", "254"), ("9", "8")]
        .into_iter()
        .enumerate()
    {
        // A connection each: at most two INVITEs may be pending on one.
        let gw = h.open(
            1,
            peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
        );
        let inv = invite(&format!("mf{i}"), "sip:+15551234@192.0.2.10", &gw_offer())
            .replace("Max-Forwards: 70", &format!("Max-Forwards: {value}"));
        let outs = h.feed(gw, &inv);
        let nh = *nh.get_or_insert_with(|| connected(&outs).expect("connects").0);
        let b_invite = &sent(&outs, nh)[0];
        assert_eq!(header_value(b_invite, "Max-Forwards"), forwarded, "{value}");
    }
}

/// Security review, low: a peer's Session-Expires is bounded (a day), and refreshing often does
/// not grow the timer table.
#[test]
fn session_expires_is_bounded_and_refreshes_do_not_grow_the_timer_table() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let offer = gw_offer();
    let inv = invite("se", "sip:+15551234@192.0.2.10", &offer).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 4000000000;refresher=uac\r\n",
    );
    let (gw, _, ok, _) = answered_call_from(&mut h, &inv);
    assert!(
        ok.contains("Session-Expires: 86400;refresher=uac\r\n"),
        "{ok}"
    );
    let before = h.engine.timer_entries();
    for cseq in 2..200 {
        let refresh = reinvite("se", &to_header(&ok), &offer, cseq).replace(
            &format!("CSeq: {cseq} INVITE\r\n"),
            &format!("CSeq: {cseq} INVITE\r\nSupported: timer\r\nSession-Expires: 1800\r\n"),
        );
        h.now += Duration::from_millis(10);
        let outs = h.feed(gw, &refresh);
        assert_eq!(status(&sent(&outs, gw)[0]), 200);
    }
    assert!(
        h.engine.timer_entries() <= before + 2,
        "{} timer entries after 198 refreshes (from {before})",
        h.engine.timer_entries()
    );
}

/// Security review, low: user parts copied into the far leg's Request-URI, From and To are
/// checked: one that could end a URI or a header is refused by name, nothing is sent on.
#[test]
fn user_parts_that_could_break_the_far_legs_headers_are_refused() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    for (i, (uri, from, reason)) in [
        (
            "sip:+1555,666@192.0.2.10",
            "+15550001",
            "400 Malformed Request-URI",
        ),
        (
            "sip:+1555>x@192.0.2.10",
            "+15550001",
            "400 Malformed Request-URI",
        ),
        ("sip:+15551234@192.0.2.10", "a\"b", "400 Bad From"),
        ("sip:+15551234@192.0.2.10", "a<b", "400 Bad From"),
    ]
    .into_iter()
    .enumerate()
    {
        let gw = h.open(
            1,
            peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
        );
        let inv = invite(&format!("u{i}"), uri, &gw_offer()).replace(
            "From: <sip:+15550001@10.0.0.1>",
            &format!("From: <sip:{from}@10.0.0.1>"),
        );
        // What the grammar forbids is refused at the door, the rest by the engine.
        if let Err(e) = crate::sip::parse(inv.as_bytes()) {
            let (code, phrase) = e.response_status();
            assert_eq!(format!("{code} {phrase}"), reason, "{uri} {from}: {e}");
            continue;
        }
        let outs = h.feed(gw, &inv);
        assert!(connected(&outs).is_none(), "{uri} {from}: sent on");
        let answers = sent(&outs, gw);
        assert!(
            answers
                .iter()
                .any(|a| a.starts_with(&format!("SIP/2.0 {reason}"))),
            "{uri} {from}: {answers:?}"
        );
    }
    // Percent escapes and visual separators are fine.
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(
        gw,
        &invite("u9", "sip:+1-555-123%2D4@192.0.2.10", &gw_offer()),
    );
    let (nh, _) = connected(&outs).expect("sent on");
    assert!(sent(&outs, nh)[0].starts_with("INVITE sip:+1-555-123%2D4@"));
}

/// Security review, low: the relay's remote follows a re-offer that moves the peer's media (a
/// PBX handing the call to another media server), and only then: the same address again moves
/// nothing.
#[test]
fn a_reoffer_that_moves_the_peers_media_moves_the_relays_remote() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
    );
    let (gw, _nh, ok, _) = answered_call_from(
        &mut h,
        &invite("mv", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let to = to_header(&ok);
    let remotes = |outs: &[Output]| -> Vec<(
        &'static str,
        std::net::SocketAddr,
        Option<std::net::SocketAddr>,
    )> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Media(MediaCommand::Remote { leg, rtp, rtcp, .. }) => {
                    Some((*leg, *rtp, *rtcp))
                }
                _ => None,
            })
            .collect()
    };
    let moved = gw_offer()
        .replace("c=IN IP4 10.0.0.1", "c=IN IP4 10.0.0.7")
        .replace("m=audio 4000", "m=audio 4100");
    let outs = h.feed(gw, &reinvite("mv", &to, &moved, 2));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert_eq!(
        remotes(&outs),
        [(
            "gateway",
            "10.0.0.7:4100".parse().unwrap(),
            Some("10.0.0.7:4101".parse().unwrap())
        )]
    );
    let outs = h.feed(gw, &reinvite("mv", &to, &moved, 3));
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    assert!(remotes(&outs).is_empty(), "same address: nothing to move");
}

/// Security review, low: with `media_networks`, a gateway's SDP cannot aim our RTP at a third
/// party: an offer or re-offer naming an address outside them gets 488 and nothing moves.
#[test]
fn a_gateways_media_must_stay_inside_its_media_networks() {
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.media_networks = vec!["10.0.0.0/24".parse().unwrap()];
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let elsewhere = gw_offer().replace("c=IN IP4 10.0.0.1", "c=IN IP4 203.0.113.5");
    let outs = h.feed(gw, &invite("mn1", "sip:+15551234@192.0.2.10", &elsewhere));
    let answer = &sent(&outs, gw)[0];
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    assert!(answer.contains("media_networks"), "{answer}");
    assert!(connected(&outs).is_none());

    // Inside: the call goes through; a re-offer moving outside is refused and not followed.
    let (gw, _nh, ok, _) = answered_call_from(
        &mut h,
        &invite("mn2", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let moved = gw_offer().replace("c=IN IP4 10.0.0.1", "c=IN IP4 10.0.1.7");
    let outs = h.feed(gw, &reinvite("mn2", &to_header(&ok), &moved, 2));
    assert!(
        sent(&outs, gw)[0].starts_with("SIP/2.0 488"),
        "{:?}",
        sent(&outs, gw)
    );
    assert!(!outs
        .iter()
        .any(|o| matches!(o, Output::Media(MediaCommand::Remote { .. }))));
    assert_eq!(h.engine.calls(), 1, "the call goes on where it was");
}

#[test]
fn spoofed_udp_ports_share_their_gateways_pending_invite_cap() {
    let mut h = Harness::new(
        EncryptionLevel::Supported,
        vec![gateway("gw3", GatewayTransport::Udp, SrtpMode::Optional)],
    );
    let udp = || {
        peer(
            Peer::Gateway("gw3".into()),
            Signalling::Udp,
            Listener::GatewayUdp,
        )
    };
    let offer = sdp(4000, "RTP/AVP", None);
    // Every INVITE from its own source port (its own flow, its own connection id): the
    // harness allows two unanswered calls per connection, and over UDP per gateway.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let port = h.open(1, udp());
        let outs = h.feed(
            port,
            &invite(&format!("spoof{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        statuses.push(status(&sent(&outs, port)[0]));
    }
    assert_eq!(statuses, [100, 100, 503, 503]);
    // A TCP gateway's connections still count one by one.
    let mut h = Harness::new(
        EncryptionLevel::Supported,
        vec![gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional)],
    );
    for i in 0..3 {
        let conn = h.open(
            1,
            peer(
                Peer::Gateway("gw2".into()),
                Signalling::Tcp,
                Listener::GatewayTcp,
            ),
        );
        let outs = h.feed(
            conn,
            &invite(&format!("tcp{i}"), "sip:+15551234@192.0.2.10", &offer),
        );
        assert_eq!(status(&sent(&outs, conn)[0]), 100);
    }
}

/// Security review, low: `max_calls` per gateway, so one trunk cannot take every call place:
/// a further call from it gets 503 with Retry-After, and a call toward it goes to the next
/// gateway of its route.
#[test]
fn a_gateway_at_its_max_calls_is_refused_and_routed_around() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.max_calls = Some(1);
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            g1,
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    routed(&mut h);
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, &invite("g1", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(status(&sent(&outs, gw)[0]), 100);
    let other = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(
        other,
        &invite("g2", "sip:+15551234@192.0.2.10", &gw_offer()),
    );
    let refused = &sent(&outs, other)[0];
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(refused.contains("Retry-After: 5"), "{refused}");
    assert!(refused.contains("gateway_max_calls reached"), "{refused}");

    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("g3", "sip:+15551234@anything", &offer));
    let (_, who, _) = invite_on_new_connection(&outs);
    assert_eq!(who, Peer::Gateway("gw2".into()), "gw1 is full: to gw2");
}

// IPv6: each leg in the family of its peer's signalling address (docs/design.md §3).

/// A relay advertising 192.0.2.10 and 2001:db8::10 (`advertise`, in that order unless given),
/// its next hop at `next_hop`.
fn dual_stack(gateways: Vec<GatewayConfig>, next_hop: &str, advertise: &str) -> Harness {
    Harness::with(EncryptionLevel::Required, gateways, |cfg| {
        cfg.advertise = advertise.parse().unwrap();
        cfg.next_hop_address = next_hop.into();
    })
}

const BOTH: &str = "192.0.2.10, 2001:db8::10";

/// `who` over `signalling`, connected from `remote`.
fn peer_from(
    who: Peer,
    signalling: Signalling,
    listener: Listener,
    remote: &str,
) -> Arc<PeerIdentity> {
    Arc::new(PeerIdentity {
        peer: who,
        signalling,
        listener,
        remote: remote.parse().unwrap(),
    })
}

/// The target of the connection the engine opened.
fn target(outs: &[Output]) -> super::engine::Target {
    outs.iter()
        .find_map(|o| match o {
            Output::Connect { target, .. } => Some(target.clone()),
            _ => None,
        })
        .expect("a connection opened")
}

/// The IPv6 next hop at [2001:db8::5] takes the connection the engine opened; returns its SDP
/// answer to `b_invite` (SRTP with the suite offered).
fn v6_next_hop_connects(h: &mut Harness, nh: ConnId, b_invite: &str) -> String {
    let peer = peer_from(
        Peer::NextHop,
        MTLS,
        Listener::Outbound,
        "[2001:db8::5]:5061",
    );
    h.engine.handle(h.now, Input::Opened { conn: nh, peer });
    let tag = offered_tag(b_invite, "AES_CM_128_HMAC_SHA1_80");
    sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    )
    .replace("IN IP4 10.0.0.1", "IN IP6 2001:db8::5")
}

/// Asserts that `text` holds every one of `needles`.
fn assert_has(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
}

/// The families the engine drew media ports from, in order.
fn port_families(h: &mut Harness) -> Vec<IpFamily> {
    let ports = &h.engine.ports_mut().families;
    ports.iter().map(|(f, _)| *f).collect()
}

fn o_line(msg: &str) -> &str {
    msg.lines().find(|l| l.starts_with("o=")).unwrap()
}

#[test]
fn an_ipv4_gateway_calls_an_ipv6_next_hop_each_leg_in_its_family() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "[2001:db8::5]:5061",
        BOTH,
    );
    let offer = gw_offer();
    let gw = h.open(
        1,
        peer_from(
            Peer::Gateway("gw1".into()),
            MTLS,
            Listener::GatewayTls,
            "10.0.0.1:40000",
        ),
    );
    let outs = h.feed(gw, &invite("v6a", "sip:+15551234@192.0.2.10", &offer));
    let t = target(&outs);
    assert_eq!(
        (t.address.as_str(), t.family),
        ("[2001:db8::5]:5061", IpFamily::V6)
    );
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    assert_has(
        &b_invite,
        &[
            "INVITE sip:+15551234@[2001:db8::5]:5061;transport=tls SIP/2.0\r\n",
            "Via: SIP/2.0/TLS [2001:db8::10]:5070;branch=",
            "Contact: <sip:mediation@[2001:db8::10]:5070;transport=tls>\r\n",
            "From: <sip:+15550001@[2001:db8::10]>;tag=",
            "c=IN IP6 2001:db8::10\r\n",
        ],
    );
    assert!(
        o_line(&b_invite).ends_with(" IN IP6 2001:db8::10"),
        "{b_invite}"
    );
    assert!(!b_invite.contains("192.0.2.10"), "{b_invite}");
    assert_eq!(port_families(&mut h), [IpFamily::V4, IpFamily::V6]);

    let answer = v6_next_hop_connects(&mut h, nh, &b_invite);
    let outs = h.feed(nh, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ack = &sent(&outs, nh)[0];
    assert!(
        ack.starts_with("ACK ") && ack.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{ack}"
    );
    let ok = sent(&outs, gw).remove(0);
    assert_eq!(status(&ok), 200);
    assert!(ok.contains("c=IN IP4 192.0.2.10\r\n"), "{ok}");
    assert!(o_line(&ok).ends_with(" IN IP4 192.0.2.10"), "{ok}");
    assert!(
        ok.contains("Contact: <sip:mediation@192.0.2.10:5067;transport=tls>\r\n"),
        "{ok}"
    );
    assert!(!ok.contains("2001:db8"), "{ok}");
    let legs = media_start(&outs).expect("media starts");
    assert_eq!(
        (legs[0].label, legs[0].family, legs[0].remote_rtp),
        (
            "gateway",
            IpFamily::V4,
            Some("10.0.0.1:4000".parse().unwrap())
        )
    );
    assert_eq!(
        (legs[1].label, legs[1].family, legs[1].remote_rtp),
        (
            "next_hop",
            IpFamily::V6,
            Some("[2001:db8::5]:5000".parse().unwrap())
        )
    );

    // A hold from the gateway crosses to the next hop in IPv6 and is answered in IPv4.
    let to = to_header(&ok);
    h.feed(gw, &ack_and_bye("v6a", &to, "ACK", 1));
    let hold = offer.replace("a=sendrecv", "a=sendonly");
    let outs = h.feed(gw, &reinvite("v6a", &to, &hold, 2));
    let relayed = sent(&outs, nh)[0].clone();
    assert!(relayed.contains("c=IN IP6 2001:db8::10\r\n"), "{relayed}");
    assert!(
        relayed.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{relayed}"
    );
    let held = answer.replace("a=sendrecv", "a=recvonly");
    let outs = h.feed(nh, &respond(&relayed, 200, "OK", Some(&held)));
    let held = &sent(&outs, gw)[0];
    assert_eq!(status(held), 200, "{held}");
    assert!(held.contains("c=IN IP4 192.0.2.10\r\n"), "{held}");

    // The gateway hangs up: the BYE toward the next hop is ours in IPv6.
    let outs = h.feed(gw, &ack_and_bye("v6a", &to, "BYE", 3));
    let bye = &sent(&outs, nh)[0];
    assert!(
        bye.starts_with("BYE ") && bye.contains("Via: SIP/2.0/TLS [2001:db8::10]:5070;"),
        "{bye}"
    );
}

#[test]
fn a_call_from_an_ipv6_next_hop_is_answered_in_ipv6_and_offered_to_the_gateway_in_ipv4() {
    let mut g = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g.address = "10.0.0.1:5067".into();
    let mut h = dual_stack(vec![g], "[2001:db8::5]:5061", BOTH);
    let nh = h.open(
        1,
        peer_from(
            Peer::NextHop,
            MTLS,
            Listener::NextHop,
            "[2001:db8::5]:40000",
        ),
    );
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    )
    .replace("IN IP4 10.0.0.1", "IN IP6 2001:db8::5");
    let outs = h.feed(nh, &invite("v6b", "sip:+15551234@gw1", &offer));
    assert_eq!(target(&outs).family, IpFamily::V4);
    let (gw, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, gw).remove(0);
    assert!(b_invite.contains("c=IN IP4 192.0.2.10\r\n"), "{b_invite}");
    assert!(
        b_invite.contains("Via: SIP/2.0/TLS 192.0.2.10:5067;"),
        "{b_invite}"
    );
    assert!(!b_invite.contains("2001:db8"), "{b_invite}");
    assert_eq!(port_families(&mut h), [IpFamily::V6, IpFamily::V4]);
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let tag = offered_tag(&b_invite, "AES_CM_128_HMAC_SHA1_80");
    let answer = sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    );
    let outs = h.feed(gw, &respond(&b_invite, 200, "OK", Some(&answer)));
    let ok = sent(&outs, nh).remove(0);
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(ok.contains("c=IN IP6 2001:db8::10\r\n"), "{ok}");
    assert!(o_line(&ok).ends_with(" IN IP6 2001:db8::10"), "{ok}");
    assert!(
        ok.contains("Contact: <sip:mediation@[2001:db8::10]:5070;transport=tls>\r\n"),
        "{ok}"
    );
    let legs = media_start(&outs).expect("media starts");
    assert_eq!((legs[0].label, legs[0].family), ("gateway", IpFamily::V4));
    assert_eq!((legs[1].label, legs[1].family), ("next_hop", IpFamily::V6));
}

#[test]
fn a_peer_known_by_host_name_gets_the_first_advertise_address() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "frontend.example.test:5061",
        "2001:db8::10, 192.0.2.10",
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, &invite("v6c", "sip:+15551234@192.0.2.10", &gw_offer()));
    assert_eq!(target(&outs).family, IpFamily::V6);
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    assert!(b_invite.contains("c=IN IP6 2001:db8::10\r\n"), "{b_invite}");
    // The caller came from 10.0.0.1: its leg is IPv4 whatever the order.
    assert_eq!(port_families(&mut h), [IpFamily::V4, IpFamily::V6]);
}

#[test]
fn failover_to_a_gateway_of_the_other_family_moves_the_leg_and_its_ports() {
    let mut g1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    g1.address = "10.0.0.3:5067".into();
    let mut g2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    g2.address = "[2001:db8::6]:5068".into();
    let mut h = dual_stack(vec![g1, g2], "frontend.example.test:5061", BOTH);
    routed(&mut h);
    let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
    let offer = sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    );
    let outs = h.feed(nh, &invite("v6d", "sip:+15551234@anything", &offer));
    let (gw1, _, first) = invite_on_new_connection(&outs);
    assert!(first.contains("c=IN IP4 192.0.2.10\r\n"), "{first}");
    h.engine.handle(
        h.now,
        Input::Opened {
            conn: gw1,
            peer: peer(Peer::Gateway("gw1".into()), MTLS, Listener::Outbound),
        },
    );
    let outs = h.feed(gw1, &respond(&first, 503, "Service Unavailable", None));
    assert_eq!(target(&outs).family, IpFamily::V6);
    let (_, who, second) = invite_on_new_connection(&outs);
    assert_eq!(who, Peer::Gateway("gw2".into()));
    assert_has(
        &second,
        &[
            "INVITE sip:+15551234@[2001:db8::6]:5068;transport=tcp SIP/2.0\r\n",
            "Via: SIP/2.0/TCP [2001:db8::10]:5068;branch=",
            "c=IN IP6 2001:db8::10\r\n",
            "m=audio 30006 RTP/AVP",
        ],
    );
    let ports = h.engine.ports_mut();
    assert_eq!(ports.released, [30004], "the IPv4 pair goes back");
    assert_eq!(ports.families.last(), Some(&(IpFamily::V6, 30006)));
}

#[test]
fn our_via_with_either_address_is_a_loop() {
    for ours in [
        "192.0.2.10:5070",
        "[2001:db8::10]:5070",
        "[2001:db8::10]:5068",
    ] {
        let mut h = dual_stack(
            vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
            "frontend.example.test:5061",
            BOTH,
        );
        let nh = h.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop));
        let looped = invite("loop6", "sip:+15551234@gw1", &gw_offer()).replace(
            "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop6\r\n",
            &format!(
                "Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-loop6\r\nVia: SIP/2.0/TLS {ours};branch=z9hG4bK-ours\r\n"
            ),
        );
        let outs = h.feed(nh, &looped);
        assert_eq!(status(&sent(&outs, nh)[0]), 482, "{ours}");
        assert!(connected(&outs).is_none(), "{ours}");
    }
}

#[test]
fn options_probes_to_an_ipv6_gateway_are_written_in_ipv6() {
    let mut g = gateway("gw6", GatewayTransport::Tls, SrtpMode::Optional);
    g.address = "[2001:db8::6]:5067".into();
    g.options_interval_secs = 30;
    let mut h = dual_stack(vec![g], "frontend.example.test:5061", BOTH);
    h.engine.start(h.now);
    h.now += Duration::from_secs(1);
    h.engine.handle_timeout(h.now);
    let outs = h.drain();
    assert_eq!(target(&outs).family, IpFamily::V6);
    let (conn, _) = connected(&outs).unwrap();
    let probe = sent(&outs, conn).remove(0);
    assert_has(
        &probe,
        &[
            "OPTIONS sip:[2001:db8::6];transport=tls SIP/2.0\r\n",
            "Via: SIP/2.0/TLS [2001:db8::10]:5067;branch=",
            "From: <sip:mediation@[2001:db8::10]>;tag=",
            "To: <sip:[2001:db8::6]>\r\n",
            "Contact: <sip:mediation@[2001:db8::10]:5067;transport=tls>\r\n",
        ],
    );
    assert!(
        probe
            .lines()
            .any(|l| l.starts_with("Call-ID: probe-") && l.ends_with("@[2001:db8::10]")),
        "{probe}"
    );
}

/// The next hop, over IPv6, ends the call with a BYE addressed to our IPv6 Contact.
#[test]
fn an_ipv6_next_hop_hangs_up_with_a_bye_to_our_ipv6_contact() {
    let mut h = dual_stack(
        vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        "[2001:db8::5]:5061",
        BOTH,
    );
    let gw = h.open(
        1,
        peer(Peer::Gateway("gw1".into()), MTLS, Listener::GatewayTls),
    );
    let outs = h.feed(gw, &invite("v6e", "sip:+15551234@192.0.2.10", &gw_offer()));
    let (nh, _) = connected(&outs).unwrap();
    let b_invite = sent(&outs, nh).remove(0);
    let answer = v6_next_hop_connects(&mut h, nh, &b_invite);
    // The peer's own response, parsed from our INVITE as it is (IPv6 Request-URI and all).
    let ok = respond(&b_invite, 200, "OK", Some(&answer)).replace(
        "<sip:callee@10.0.0.2:5061;",
        "<sip:callee@[2001:db8::5]:5061;",
    );
    let outs = h.feed(nh, &ok);
    assert_eq!(status(&sent(&outs, gw)[0]), 200);
    let call_id = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap();
    let from = b_invite
        .lines()
        .find_map(|l| l.strip_prefix("From: "))
        .unwrap();
    let bye = format!(
        "BYE sip:mediation@[2001:db8::10]:5070;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK-bye6\r\nMax-Forwards: 70\r\n\
         From: <sip:+15551234@[2001:db8::5]>;tag=callee\r\nTo: {from}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let outs = h.feed(nh, &bye);
    assert_eq!(status(&sent(&outs, nh)[0]), 200);
    assert!(sent(&outs, gw)[0].starts_with("BYE "));
    assert_eq!(h.engine.calls(), 0);
}
