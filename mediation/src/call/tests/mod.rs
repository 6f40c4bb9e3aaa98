//! The harness the call-flow tests share: the engine with no socket and no sleep (messages and
//! time in, messages, connections and media commands out), the peers' connections, the SIP and
//! SDP they send, and the steps most calls begin with. Each test plays the gateway and the next
//! hop; the flows are in the files beside this one.

mod early_media;
mod encryption;
mod headers;
mod in_dialog;
mod ipv6;
mod limits;
mod numbers;
mod reoffer;
mod routing;
mod sdp_dialects;
mod session_timers;
mod setup_failures;
mod teardown;

use std::sync::Arc;
use std::time::Instant;

use super::example::{engine_config, gateway};
use super::media_plan::LegPlan;
use super::{Engine, EngineConfig, Input, MediaCommand, Output, PortAllocator};
use crate::config::{EncryptionLevel, GatewayConfig, GatewayTransport, IpFamily, SrtpMode};
use crate::metrics::Metrics;
use crate::peer::{ConnId, Listener, Peer, PeerIdentity, Signalling, TlsVersionSeen};
use crate::sip::outgoing::ReceivedRequest;
use crate::srtp::Protection;
use rand::rngs::StdRng;
use rand::SeedableRng;

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

/// A call's first step: the caller's connection (`a`), the connection the engine opened toward
/// the callee (`b`, not up yet), our INVITE on it and everything the caller's INVITE put out.
struct Call {
    a: ConnId,
    b: ConnId,
    b_invite: String,
    outs: Vec<Output>,
}

impl Harness {
    fn new(encryption: EncryptionLevel, gateways: Vec<GatewayConfig>) -> Self {
        Self::with(encryption, gateways, |_| {})
    }

    /// The harness most tests use: encryption required, one gateway, gw1, over MTLS with SRTP
    /// optional.
    fn gw1() -> Self {
        Self::new(
            EncryptionLevel::Required,
            vec![gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional)],
        )
    }

    /// As [`Harness::new`], the configuration ([`engine_config`]) adjusted by `adjust`.
    fn with(
        encryption: EncryptionLevel,
        gateways: Vec<GatewayConfig>,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> Self {
        let metrics = Metrics::new();
        let mut cfg = engine_config(encryption, gateways);
        adjust(&mut cfg);
        Harness {
            // A fixed seed: every run of a test sees the same tags, Call-IDs and branches.
            engine: Engine::new(cfg, Ports::default(), StdRng::seed_from_u64(7)),
            now: Instant::now(),
            metrics,
        }
    }

    /// The operator's counters, as the driver keeps them: every report the engine made so far
    /// counted in Prometheus metrics.
    fn metrics(&mut self) -> &Metrics {
        while let Some(report) = self.engine.poll_report() {
            self.metrics.record(&report);
        }
        &self.metrics
    }

    fn open(&mut self, _n: u64, who: Arc<PeerIdentity>) -> ConnId {
        // Ids come from the same counter as the engine's outbound connections.
        let conn = ConnId::next();
        self.engine
            .handle(self.now, Input::Opened { conn, peer: who });
        conn
    }

    /// A connection from gateway `name` over `signalling`, at the door for that signalling.
    fn open_gateway(&mut self, name: &str, signalling: Signalling) -> ConnId {
        let listener = match signalling {
            Signalling::Mtls { .. } => Listener::GatewayTls,
            Signalling::Tcp => Listener::GatewayTcp,
            Signalling::Udp => Listener::GatewayUdp,
        };
        self.open(1, peer(Peer::Gateway(name.into()), signalling, listener))
    }

    /// A connection from the next hop, at its MTLS door.
    fn open_next_hop(&mut self) -> ConnId {
        self.open(1, peer(Peer::NextHop, MTLS, Listener::NextHop))
    }

    /// The next hop is up, over MTLS, on the connection the engine opened to it.
    fn next_hop_accepts(&mut self, conn: ConnId) {
        let peer = peer(Peer::NextHop, MTLS, Listener::Outbound);
        self.engine.handle(self.now, Input::Opened { conn, peer });
    }

    /// Gateway `name` is up, over `signalling`, on the connection the engine opened to it.
    fn gateway_accepts(&mut self, conn: ConnId, name: &str, signalling: Signalling) {
        let peer = peer(Peer::Gateway(name.into()), signalling, Listener::Outbound);
        self.engine.handle(self.now, Input::Opened { conn, peer });
    }

    /// `invite_text` arrives on `a`; the engine opens a connection for the far leg and sends
    /// its INVITE there.
    fn call_from(&mut self, a: ConnId, invite_text: &str) -> Call {
        let outs = self.feed(a, invite_text);
        let (b, _) = connected(&outs).expect("a connection for the far leg");
        let b_invite = sent(&outs, b).remove(0);
        Call {
            a,
            b,
            b_invite,
            outs,
        }
    }

    /// gw1, over MTLS, calls +15551234 with `offer` (Call-ID `call_id`): toward the next hop.
    fn call_to_next_hop(&mut self, call_id: &str, offer: &str) -> Call {
        let a = self.open_gateway("gw1", MTLS);
        self.call_from(a, &invite(call_id, "sip:+15551234@192.0.2.10", offer))
    }

    /// The next hop calls `uri` with `offer` (Call-ID `call_id`): toward a gateway.
    fn call_to_gateway(&mut self, call_id: &str, uri: &str, offer: &str) -> Call {
        let a = self.open_next_hop();
        self.call_from(a, &invite(call_id, uri, offer))
    }

    /// The next hop takes the connection `nh` the engine opened and answers `b_invite` with
    /// SRTP ([`srtp_answer`] with NH_KEY); the outputs.
    fn next_hop_answers_srtp(&mut self, nh: ConnId, b_invite: &str) -> Vec<Output> {
        self.next_hop_accepts(nh);
        let answer = srtp_answer(b_invite, NH_KEY);
        self.feed(nh, &respond(b_invite, 200, "OK", Some(&answer)))
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

/// The caller's SRTP offer from a gateway: RTP/SAVP on port 4000, AES_CM_128_HMAC_SHA1_80 with
/// GW_KEY.
fn gw_offer() -> String {
    sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", GW_KEY)),
    )
}

/// The caller's SRTP offer from the next hop: as [`gw_offer`], with NH_KEY.
fn nh_offer() -> String {
    sdp(
        4000,
        "RTP/SAVP",
        Some((1, "AES_CM_128_HMAC_SHA1_80", NH_KEY)),
    )
}

/// An SRTP answer to `offer` from port 5000: AES_CM_128_HMAC_SHA1_80 under the tag we offered
/// it with, keyed with `key`.
fn srtp_answer(offer: &str, key: &str) -> String {
    let tag = offered_tag(offer, "AES_CM_128_HMAC_SHA1_80");
    sdp(
        5000,
        "RTP/SAVP",
        Some((tag, "AES_CM_128_HMAC_SHA1_80", key)),
    )
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

/// The caller's re-INVITE in its dialog (`to` with our tag) with `body`.
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

/// The value of header `name` in `msg`.
fn header_value(msg: &str, name: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
        .to_string()
}

fn media_start(outs: &[Output]) -> Option<&[LegPlan; 2]> {
    outs.iter().find_map(|o| match o {
        Output::Media(MediaCommand::Start { legs, .. }) => Some(&**legs),
        _ => None,
    })
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
    let gw = h.open_gateway("gw1", MTLS);
    let Call {
        b: nh, b_invite, ..
    } = h.call_from(gw, invite_text);
    let outs = h.next_hop_answers_srtp(nh, &b_invite);
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

/// Calls to numbers starting +1 go to gw1, then gw2.
fn routed(h: &mut Harness) {
    h.engine.set_routes(vec![super::Route {
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
