//! The B2BUA engine, sans-IO: connection events, SIP messages and time go in; messages to send,
//! connections to open and media to start or stop come out. No socket and no clock here, so
//! every call flow is tested by feeding it messages (see the tests at the bottom).
//!
//! Transports are streams (TCP, TLS), so there are no retransmission timers (RFC 3261 §17.1.1.2:
//! timer A is not used on reliable transports); the answer timeout bounds every INVITE. UDP
//! gateways look the same from here: `sip::transaction` below retransmits for them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::legs::{ALeg, BLeg, Call, Direction, Phase};
use super::media_plan::{self, LegPlan};
use super::policy::{self, Decision, GatewaySignalling, PeerSrtp};
use super::reoffer;
use super::session_timer::{self, LegSession, UasAnswer};

mod debug;
mod leg_peer;
mod local;
mod media_follow;
mod probes;
pub mod reoffer_relay;
mod routing;
mod session_refresh;
mod teardown;
use crate::config::{
    AddressList, Config, EncryptionLevel, GatewayTransport, IpFamily, SrtpMode, SrtpOfferStyle,
};
use crate::metrics::Metrics;
use crate::peer::{ConnId, Peer, PeerIdentity, Signalling};
use crate::sdp::{self, CryptoAttribute, Proto};
use crate::sip::outgoing::{branch, token, Outgoing, ReceivedRequest};
use crate::sip::uri::is_safe_user;
use crate::sip::ALLOW;
use crate::sip::{Message, Method, Uri, View};
use crate::srtp::SrtpSuite;
use probes::Probe;
use reoffer_relay::Reoffer;

/// Hands out RTP ports (the RTCP port is the next one), from one pool per address family. The
/// service's implementation binds real sockets; tests use a counter.
pub trait PortAllocator {
    /// A free RTP port of `family`, or `None` when its range is exhausted (or it has none).
    fn allocate(&mut self, family: IpFamily) -> Option<u16>;
    /// Gives back a port of `family` whose media never started.
    fn release(&mut self, family: IpFamily, port: u16);
}

/// Where a new outbound connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Who it is.
    pub peer: Peer,
    /// `host:port`.
    pub address: String,
    /// For TLS: the name its certificate must carry. `None`: plain TCP.
    pub tls_identity: Option<String>,
    /// The family our leg toward it uses: a host name's addresses of this family are tried
    /// first.
    pub family: IpFamily,
}

/// What the engine is told.
// Moved once per SIP message, never per media packet: boxing the message would buy nothing.
// `Debug` (in `debug.rs`) prints the message with its keys redacted.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// A connection (accepted or opened by us) is up and its peer proved who it is.
    Opened {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: Arc<PeerIdentity>,
    },
    /// A connection closed (or could not be opened).
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// Stop taking new calls (`503` with `Retry-After`); calls in progress go on.
    Drain,
    /// End every call now: BYE both legs of answered calls, `503` to unanswered callers.
    EndAll,
    /// A call's media (RTP and RTCP) stopped for the media timeout: in both directions
    /// (`both`), or from one party only — a peer that vanished without closing its signalling
    /// (power cut, partition). End it.
    MediaTimeout {
        /// The call.
        call: u64,
        /// Neither party sent anything.
        both: bool,
    },
    /// A SIP message arrived.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: Message,
    },
}

/// Media relay commands.
// Moved once per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MediaCommand {
    /// Start relaying between two legs (ports were handed out by the allocator).
    Start {
        /// The call.
        call: u64,
        /// The gateway-side and next-hop-side legs' plans (boxed: keys make them large).
        legs: Box<[LegPlan; 2]>,
    },
    /// New SRTP keys for one leg of a running call.
    Rekey {
        /// The call.
        call: u64,
        /// `gateway` or `next_hop`.
        leg: &'static str,
        /// The new keys (always [`Protection::Srtp`]).
        protection: super::media_plan::Protection,
    },
    /// A leg's peer moved its media (a re-offer or answer with another address or port).
    Remote {
        /// The call.
        call: u64,
        /// `gateway` or `next_hop`.
        leg: &'static str,
        /// Where its RTP goes now.
        rtp: std::net::SocketAddr,
        /// Where its RTCP goes now (`None` with rtcp-mux: RTP's port).
        rtcp: Option<std::net::SocketAddr>,
    },
    /// Stop the call's relay and free its ports.
    Stop {
        /// The call.
        call: u64,
    },
}

/// What the engine asks the edges to do. `Debug` (in `debug.rs`) prints what is sent with its
/// keys redacted.
pub enum Output {
    /// Open a connection with this id (messages for it follow; queue them until it is up).
    Connect {
        /// The id to use.
        conn: ConnId,
        /// Where to.
        target: Target,
    },
    /// Write bytes on a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        bytes: Bytes,
    },
    /// Start or stop media.
    Media(MediaCommand),
}

/// What the engine needs from the configuration, plus the ports our listeners really use.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our addresses, at most one per family: each leg's SDP, Via and Contact carry the one of
    /// its peer's family.
    pub advertise: AddressList,
    /// The next hop: `host:port` and certificate identity.
    pub next_hop_address: String,
    /// Its certificate identity.
    pub next_hop_identity: String,
    /// SRTP policy toward it.
    pub encryption: EncryptionLevel,
    /// Gateways: name, address, transport, identity, SRTP mode.
    pub gateways: Vec<crate::config::GatewayConfig>,
    /// SRTP suites we offer and accept, in preference order.
    pub suites: Vec<SrtpSuite>,
    /// How long an INVITE may wait for a final answer.
    pub answer_timeout: Duration,
    /// Calls held at once, at most.
    pub max_calls: usize,
    /// Copy P-Asserted-Identity and Privacy to the far leg.
    pub forward_pai: bool,
    /// Further headers passed to the far leg (names, or prefixes ending in `*`).
    pub pass_headers: Vec<String>,
    /// Add `user=phone` to a tel: number sent to the next hop.
    pub next_hop_user_phone: bool,
    /// Routes for calls from the next hop, in order.
    pub routes: Vec<Route>,
    /// How long a gateway has to send a provisional response before the next one is tried.
    pub failover_timeout: Duration,
    /// Port of our next-hop listener (for Contact).
    pub next_hop_port: u16,
    /// Port of our gateway TLS listener.
    pub gateway_tls_port: u16,
    /// Port of our gateway TCP listener.
    pub gateway_tcp_port: u16,
    /// Session interval asked for where session timers are enabled.
    pub session_expires: u32,
    /// Early dialogs kept per call.
    pub max_early_dialogs: usize,
    /// Unanswered calls one connection may have at once.
    pub max_pending_per_connection: usize,
    /// Calls whose media stops this long are ended (`None`: never).
    pub media_timeout: Option<Duration>,
    /// Port of our gateway UDP socket (0: none).
    pub gateway_udp_port: u16,
}

impl EngineConfig {
    /// The SRTP suites of the gateway leg toward `gateway` (its own list, else `[media]`'s), or
    /// of the next-hop leg when `gateway` is `None`.
    pub fn suites_for(&self, gateway: Option<&str>) -> &[SrtpSuite] {
        gateway
            .and_then(|name| self.gateways.iter().find(|g| g.name == name))
            .and_then(|g| g.srtp_suites.as_deref())
            .unwrap_or(&self.suites)
    }

    /// Whether a header of the caller's INVITE named `name` goes on to the callee.
    pub fn passes(&self, name: &str) -> bool {
        let pai = ["P-Asserted-Identity", "Privacy"];
        (self.forward_pai && pai.iter().any(|p| p.eq_ignore_ascii_case(name)))
            || self.pass_headers.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name
                    .get(..prefix.len())
                    .is_some_and(|n| n.eq_ignore_ascii_case(prefix)),
                None => p.eq_ignore_ascii_case(name),
            })
    }

    /// From the file and the ports the listeners bound.
    pub fn new(
        c: &Config,
        next_hop_port: u16,
        gateway_tls_port: u16,
        gateway_tcp_port: u16,
    ) -> Self {
        Self {
            advertise: c.media.advertise.clone(),
            next_hop_address: c.next_hop.address.clone(),
            next_hop_identity: c.next_hop.identity.clone(),
            encryption: c.next_hop.encryption,
            gateways: c.gateways.clone(),
            suites: c.media.srtp_suites.clone(),
            answer_timeout: Duration::from_secs(c.sip.answer_timeout_secs),
            max_calls: c.sip.max_calls,
            forward_pai: c.sip.forward_pai,
            pass_headers: c.sip.pass_headers.clone(),
            next_hop_user_phone: c.next_hop.user_phone,
            routes: c
                .routes
                .iter()
                .map(|r| Route {
                    pattern: r.pattern.clone(),
                    gateways: r.gateways.clone(),
                })
                .collect(),
            failover_timeout: Duration::from_secs(c.sip.failover_timeout_secs),
            next_hop_port,
            gateway_tls_port,
            gateway_tcp_port,
            session_expires: c.sip.session_expires_secs,
            max_early_dialogs: c.sip.max_early_dialogs,
            max_pending_per_connection: c.sip.max_pending_per_connection,
            media_timeout: (c.media.media_timeout_secs > 0)
                .then(|| Duration::from_secs(c.media.media_timeout_secs)),
            gateway_udp_port: c.gateway_listen.udp.map_or(0, |a| a.port()),
        }
    }
}

/// How long an abandoned call waits for the callee's final answer.
const ABANDON_LINGER: Duration = Duration::from_secs(32);

/// The B2BUA.
pub struct Engine<P: PortAllocator> {
    cfg: EngineConfig,
    ports: P,
    metrics: Metrics,
    conns: HashMap<ConnId, Arc<PeerIdentity>>,
    outbound: HashMap<Peer, ConnId>,
    /// Boxed: a `Call` is a few KiB, and a map keeps up to twice the slots it uses.
    calls: HashMap<u64, Box<Call>>,
    by_a: HashMap<(String, String), u64>,
    by_b: HashMap<String, u64>,
    timers: BTreeSet<(Instant, u64)>,
    out: VecDeque<Output>,
    next_id: u64,
    draining: bool,
    probes: HashMap<String, Probe>,
}

/// A route: calls to numbers matching `pattern` go to `gateways`, in order.
#[derive(Debug, Clone)]
pub struct Route {
    /// Matched against the called number (the Request-URI's user part).
    pub pattern: regex::Regex,
    /// Gateway names, tried in order.
    pub gateways: Vec<String>,
}

/// What every INVITE toward the callee carries, kept for failover.
#[derive(Debug, Clone)]
pub struct CalleeRequest {
    /// The called number.
    pub user: String,
    /// The caller's number (From user part).
    pub caller: String,
    /// Max-Forwards, already decremented.
    pub max_forwards: u32,
    /// The called number came as a tel: URI: the far leg gets `user=phone` (RFC 3261 §19.1.1).
    pub phone: bool,
    /// Header fields of the caller's INVITE passed on to the callee byte for byte
    /// (P-Asserted-Identity and Privacy, `[sip] pass_headers`).
    pub passed: Vec<String>,
}

/// The outcome of negotiating the callee's answer.
struct Negotiated {
    /// The SDP answer for the caller.
    a_sdp: String,
    /// The relay plan.
    plans: Result<[LegPlan; 2], String>,
    /// The callee leg's decision.
    b_decision: Decision,
}

/// How long the caller has to acknowledge our 2xx (64*T1, RFC 3261 §13.3.1.4).
const ACK_TIMEOUT: Duration = Duration::from_secs(32);

impl<P: PortAllocator> Engine<P> {
    /// A new engine.
    pub fn new(cfg: EngineConfig, ports: P, metrics: Metrics) -> Self {
        Self {
            cfg,
            ports,
            metrics,
            conns: HashMap::new(),
            outbound: HashMap::new(),
            calls: HashMap::new(),
            by_a: HashMap::new(),
            by_b: HashMap::new(),
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            next_id: 1,
            draining: false,
            probes: HashMap::new(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Schedules the first OPTIONS probe of every gateway that has them on.
    pub fn start(&mut self, now: Instant) {
        for g in &self.cfg.gateways {
            if g.options_interval_secs > 0 {
                let probe = self.probes.entry(g.name.clone()).or_default();
                probe.next_at = Some(now + Duration::from_secs(1));
            }
        }
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probes = self
            .probes
            .values()
            .flat_map(|p| [p.next_at, p.pending.as_ref().map(|(_, t, _)| *t)])
            .flatten();
        self.timers
            .first()
            .map(|(t, _)| *t)
            .into_iter()
            .chain(probes)
            .min()
    }

    /// Replaces the routes (tests build them by hand).
    pub fn set_routes(&mut self, routes: Vec<Route>) {
        self.cfg.routes = routes;
    }

    /// The port allocator (the service takes bound sockets from it when media starts).
    pub fn ports_mut(&mut self) -> &mut P {
        &mut self.ports
    }

    /// True when a call (or an OPTIONS probe) uses the connection.
    pub fn uses(&self, conn: ConnId) -> bool {
        self.calls
            .values()
            .any(|c| c.a.conn == conn || c.b.conn == conn)
            || self
                .probes
                .values()
                .any(|p| p.pending.as_ref().is_some_and(|(_, _, c)| *c == conn))
    }

    /// Number of calls held.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Feeds an event.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Opened { conn, peer } => {
                self.conns.insert(conn, peer);
            }
            Input::Closed { conn } => self.on_closed(now, conn),
            Input::Drain => {
                tracing::info!(calls = self.calls.len(), "draining: new calls get 503");
                self.draining = true;
            }
            Input::EndAll => {
                let ids: Vec<u64> = self.calls.keys().copied().collect();
                for id in ids {
                    self.end_now(now, id, "shutdown");
                }
            }
            Input::MediaTimeout { call, both } if !self.media_timed_out(now, call, both) => {}
            Input::MediaTimeout { call, both } => {
                tracing::info!(
                    call,
                    "no media {} for the media timeout: ending the call",
                    if both {
                        "in either direction"
                    } else {
                        "from one party"
                    }
                );
                self.count_call(call, "media_timeout");
                self.end_now(now, call, "media_timeout");
            }
            Input::Message { conn, msg } => {
                if msg.is_request() {
                    self.on_request(now, conn, msg);
                } else {
                    self.on_response(now, conn, msg);
                }
            }
        }
    }

    /// Whether a media timeout ends the call: never on hold; one silent party only counts
    /// once the call has been answered for the whole timeout (a caller may send nothing while
    /// early media plays).
    fn media_timed_out(&self, now: Instant, id: u64, both: bool) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        if call.on_hold {
            return false;
        }
        both || matches!((call.answered, self.cfg.media_timeout),
            (Some(at), Some(limit)) if now.saturating_duration_since(at) >= limit)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_probes(now);
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let span = self.span_of(id);
            let _entered = span.enter();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if call.phase == Phase::Answered && call.deadline <= now {
                // Our 2xx was never acknowledged (RFC 3261 §13.3.1.4): end the call.
                tracing::warn!(call = id, "no ACK for our 2xx: ending the call");
                self.count_call(id, "no_ack");
                self.end_now(now, id, "no_ack");
                continue;
            }
            if matches!(call.phase, Phase::Answered | Phase::Confirmed) {
                self.run_session_timers(now, id);
                continue;
            }
            if call.failover_at.is_some_and(|t| t <= now) {
                call.failover_at = None;
                if call.phase == Phase::Proceeding && !call.b.provisional {
                    let cancel = call.b_same_transaction("CANCEL", None);
                    let conn = call.b.conn;
                    self.send(conn, cancel);
                    self.fail_over(now, id, "no provisional response in time");
                }
                continue;
            }
            if call.deadline > now {
                continue; // re-armed
            }
            match call.phase {
                Phase::Proceeding => {
                    tracing::info!(
                        call = id,
                        "no final answer in time: 408 to the caller, CANCEL to the callee"
                    );
                    let r = call.a_response(408, "Request Timeout").encode();
                    let conn = call.a.conn;
                    self.send(conn, r);
                    self.count_call(id, "timeout");
                    self.abandon(now, id);
                }
                Phase::Abandoned => self.remove(id),
                Phase::Answered | Phase::Confirmed => {}
            }
        }
    }

    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        self.out.push_back(Output::Send { conn, bytes });
    }

    fn reply(
        &mut self,
        conn: ConnId,
        req: &Message,
        code: u16,
        reason: &str,
        warning: Option<&str>,
    ) {
        let Some(r) = ReceivedRequest::of(req) else {
            return;
        };
        let mut m = r.respond(code, reason, &token(10));
        if code == 405 || code == 501 {
            m = m.header("Allow", ALLOW);
        }
        if let Some(w) = warning {
            m = m.header("Warning", format!("399 mediation \"{w}\""));
        }
        self.send(conn, m.encode());
    }

    fn arm(&mut self, id: u64, at: Instant) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.deadline = at;
            self.timers.insert((at, id));
        }
    }

    fn find(&self, s: &View, is_request: bool) -> Option<u64> {
        if let Some(id) = self.by_b.get(&s.call_id) {
            return Some(*id);
        }
        let remote = if is_request { s.from_tag() } else { s.to_tag() };
        self.by_a
            .get(&(s.call_id.clone(), remote.unwrap_or_default().to_string()))
            .copied()
    }

    fn on_request(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        self.metrics
            .sip_requests
            .with_label_values(&[method.as_str()])
            .inc();
        let s = msg.view();
        let found = self.find(s, true);
        let span = found
            .map(|id| self.span_of(id))
            .unwrap_or_else(tracing::Span::none);
        let _entered = span.enter();
        if let Some(id) = found {
            if !self.is_leg_peer(id, self.on_b(id, s), conn) {
                let peer = self.conns.get(&conn).map(|p| format!("{:?}", p.peer));
                tracing::warn!(call = id, %method, ?peer, "in-dialog request from a peer that is not the leg's; answered 481");
                if method != Method::Ack {
                    self.reply(conn, &msg, 481, "Call/Transaction Does Not Exist", None);
                }
                return;
            }
        }
        match (method, found) {
            (Method::Invite, None) if s.to_tag().is_none() => self.new_call(now, conn, &msg),
            (Method::Ack, _) => {
                // Only the caller's leg ever sends us an ACK (we never answer on B).
                if let Some(call) = found.and_then(|id| self.calls.get_mut(&id)) {
                    if call.phase == Phase::Answered {
                        call.phase = Phase::Confirmed;
                    }
                }
            }
            (Method::Bye, Some(id)) => {
                self.reply(conn, &msg, 200, "OK", None);
                let from_b = self.on_b(id, s);
                self.on_bye(now, id, conn, from_b);
            }
            (Method::Cancel, Some(id)) => {
                self.reply(conn, &msg, 200, "OK", None);
                self.on_cancel(now, id);
            }
            (_, None) => self.reply(conn, &msg, 481, "Call/Transaction Does Not Exist", None),
            (Method::Invite | Method::Update, Some(id)) => {
                let from_b = self.on_b(id, s);
                self.on_reoffer(now, conn, &msg, id, from_b);
            }
            (_, Some(_)) => self.reply(
                conn,
                &msg,
                501,
                "Not Implemented",
                Some("in-dialog requests other than re-INVITE, UPDATE and BYE are not handled yet"),
            ),
        }
    }

    /// A re-INVITE or UPDATE inside an answered call: answered on its own leg (session refresh,
    /// hold and resume); the other leg is not disturbed. Media of a held call is exempt from
    /// the media timeout.
    fn on_reoffer(&mut self, now: Instant, conn: ConnId, msg: &Message, id: u64, from_b: bool) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let ours_pending = if from_b {
            call.b.session.pending.is_some()
        } else {
            call.a.session.pending.is_some()
        };
        // Glare: our own re-INVITE/UPDATE on this leg is unanswered, or a re-offer is already
        // crossing the call (RFC 3261 §14.2, RFC 3311).
        if !matches!(call.phase, Phase::Answered | Phase::Confirmed)
            || ours_pending
            || call.relayed.is_some()
        {
            self.reply(conn, msg, 491, "Request Pending", None);
            return;
        }
        let gateway_leg = call.is_gateway_leg(from_b);
        let timer_answer = session_timer::as_uas(
            session_timer::SessionExpires::of(msg.view()),
            msg.view().supports("timer"),
            if gateway_leg {
                self.session_timer_for(&call.gateway)
            } else {
                None
            },
            now,
        );
        if timer_answer == UasAnswer::TooSmall {
            let Some(r) = ReceivedRequest::of(msg) else {
                return;
            };
            let reply = r
                .respond(422, "Session Interval Too Small", &token(10))
                .header("Min-SE", session_timer::MIN_SE.to_string())
                .encode();
            self.send(conn, reply);
            return;
        }
        let is_update = msg.method() == Some(&Method::Update);
        let offer = if msg.body().is_empty() {
            None
        } else {
            match sdp::parse(msg.body()) {
                Ok(o) => Some(o),
                Err(_) => {
                    self.reply(
                        conn,
                        msg,
                        488,
                        "Not Acceptable Here",
                        Some("unparseable SDP"),
                    );
                    return;
                }
            }
        };
        let outside = offer.as_ref().and_then(|o| o.audio()).is_some_and(|audio| {
            gateway_leg && !self.media_allowed(&self.calls[&id].gateway, &audio)
        });
        if outside {
            self.reply(
                conn,
                msg,
                488,
                "Not Acceptable Here",
                Some("the re-offer's media address is outside the gateway's media_networks"),
            );
            return;
        }
        // The keys of this leg now: theirs (what they protect with) and ours.
        let (theirs, ours_key) = if from_b {
            (call.b.theirs.clone(), call.b.ours.clone())
        } else {
            (
                call.a.chosen.clone().filter(|_| call.a.ours.is_some()),
                call.a.ours.clone(),
            )
        };
        // New keys in the offer of an SRTP leg: rekey (RFC 4568 §7.1.4), fresh keys of ours too.
        let rekey = match (&offer, &theirs) {
            (Some(o), Some(current)) => match o.audio() {
                Some(audio) if !audio.crypto.is_empty() && !reoffer::has_key(&audio, current) => {
                    let suites = self
                        .cfg
                        .suites_for(gateway_leg.then_some(call.gateway.as_str()));
                    match sdp::choose_crypto(&audio.crypto, suites) {
                        Some(chosen) => Some((chosen.clone(), sdp::answer_crypto(chosen))),
                        None => {
                            self.reply(
                                conn,
                                msg,
                                488,
                                "Not Acceptable Here",
                                Some("no acceptable SRTP suite in the re-offer"),
                            );
                            return;
                        }
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(offer) = offer
            .as_ref()
            .filter(|o| self.reoffer_needs_other_leg(id, from_b, o))
        {
            let offer = offer.clone();
            let timer = match timer_answer {
                UasAnswer::Timer { timer, require } => Some((timer, require)),
                _ => None,
            };
            return self.relay_reoffer(
                now,
                Reoffer {
                    id,
                    from_b,
                    conn,
                    msg,
                    offer,
                    rekey,
                    timer,
                },
            );
        }
        let (theirs, ours_key) = match &rekey {
            Some((chosen, answer)) => (Some(chosen.clone()), Some(answer.clone())),
            None => (theirs, ours_key),
        };
        let version = if from_b {
            call.b.sdp_version
        } else {
            call.a.sdp_version
        } + 1;
        let ours = if from_b {
            sdp::leg_sdp(
                &call.a.offer,
                &sdp::LegSdpParams {
                    session_id: call.b.sdp_session,
                    version,
                    address: call.b.local.address,
                    port: call.b.port,
                    proto: call.b.srtp_proto(ours_key.is_some()),
                    crypto: ours_key.iter().cloned().collect(),
                    rtcp_mux: false,
                    encryption: call.b.lync_style.filter(|_| ours_key.is_some()),
                },
            )
        } else {
            let a_audio = call.a.offer.audio().expect("checked at INVITE");
            let codecs = call.b_answer.as_ref().unwrap_or(&call.a.offer);
            sdp::answer_sdp(
                &call.a.offer,
                codecs,
                &sdp::LegSdpParams {
                    session_id: call.a.sdp_session,
                    version,
                    address: call.a.local.address,
                    port: call.a.port,
                    proto: a_audio.proto.clone(),
                    crypto: ours_key.iter().cloned().collect(),
                    rtcp_mux: a_audio.rtcp_mux,
                    encryption: None,
                },
            )
        };
        let (answer, hold) = match &offer {
            // No offer: a refresh. UPDATE gets a bare 200; a re-INVITE gets our SDP as the
            // offer (the answer comes in the ACK and changes nothing here).
            None => ((!is_update).then_some(ours), None),
            Some(offer) => match reoffer::answer(offer, theirs.as_ref(), &ours, version) {
                reoffer::Verdict::Answer { sdp, hold } => (Some(sdp), Some(hold)),
                reoffer::Verdict::Refuse(why) => {
                    tracing::info!(call = id, why, "re-offer refused");
                    self.reply(conn, msg, 488, "Not Acceptable Here", Some(why));
                    return;
                }
            },
        };
        if let Some((chosen, ours)) = rekey {
            if let Err(e) = self.rekey(id, from_b, chosen, ours) {
                tracing::warn!(call = id, error = %e, "new SRTP keys unusable");
                self.reply(
                    conn,
                    msg,
                    488,
                    "Not Acceptable Here",
                    Some("unusable SRTP keys"),
                );
                return;
            }
        }
        let Some(received) = ReceivedRequest::of(msg) else {
            return;
        };
        let call = self.calls.get_mut(&id).expect("present");
        // Any successful re-INVITE or UPDATE refreshes the session (RFC 4028 §10).
        let timer = match timer_answer {
            UasAnswer::Timer { timer, require } => Some((timer, require)),
            _ => None,
        };
        let session = call.session_mut(from_b);
        session.timer = timer.map(|(t, _)| t);
        session.retry_at = None;
        let mut ok = call.reoffer_response(from_b, &received, 200, "OK", timer);
        if let Some(sdp) = answer {
            call.set_our_sdp(from_b, sdp.clone(), version);
            ok = ok.sdp(sdp);
        }
        if let Some(hold) = hold {
            call.set_hold(hold);
        }
        self.send(conn, ok.encode());
        self.follow_remote(id, from_b, msg.body());
        self.arm_session_timers(now, id);
    }

    /// New keys in an SDP answer on one leg (a fork's 2xx after another fork's early media, or
    /// an answer to our refresh that rekeys): the leg switches to them.
    fn take_answer_keys(&mut self, id: u64, from_b: bool, body: &[u8]) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(audio) = sdp::parse(body).ok().and_then(|a| a.audio()) else {
            return;
        };
        let (offered, current) = if from_b {
            (call.b.offered.clone(), call.b.theirs.clone())
        } else {
            (call.a.ours.iter().cloned().collect(), call.a.chosen.clone())
        };
        let Some(current) = current.filter(|_| !offered.is_empty()) else {
            return;
        };
        let Ok((ours, theirs)) = sdp::match_answer(&offered, &audio.crypto) else {
            return;
        };
        if !reoffer::has_key(&audio, &current) {
            if let Err(e) = self.rekey(id, from_b, theirs, ours) {
                tracing::warn!(call = id, error = %e, "new SRTP keys in an answer unusable");
            }
        }
    }

    /// Takes the new keys of one leg: remembered for later re-offers, and handed to the relay.
    fn rekey(
        &mut self,
        id: u64,
        from_b: bool,
        theirs: CryptoAttribute,
        ours: CryptoAttribute,
    ) -> Result<(), String> {
        let call = self.calls.get_mut(&id).ok_or("no such call")?;
        let label = call.leg_label(from_b);
        let (cur_theirs, cur_ours) = if from_b {
            (&call.b.theirs, &call.b.ours)
        } else {
            (&call.a.chosen, &call.a.ours)
        };
        let same = |a: &Option<CryptoAttribute>, b: &CryptoAttribute| {
            a.as_ref().is_some_and(|a| reoffer::same_key(a, b))
        };
        if same(cur_theirs, &theirs) && same(cur_ours, &ours) {
            return Ok(()); // the streams go on under the same keys (and SRTCP indices)
        }
        let protection = media_plan::srtp_keys(&ours, &theirs)?;
        if from_b {
            call.b.theirs = Some(theirs);
            call.b.ours = Some(ours);
        } else {
            call.a.chosen = Some(theirs);
            call.a.ours = Some(ours);
        }
        tracing::info!(call = id, leg = label, "new SRTP keys from a re-offer");
        if call.media_started {
            self.out.push_back(Output::Media(MediaCommand::Rekey {
                call: id,
                leg: label,
                protection,
            }));
        }
        Ok(())
    }

    /// Unanswered calls that came in on `conn`, or over UDP, from any flow of the same
    /// gateway.
    fn pending_like(&self, conn: ConnId, peer: &PeerIdentity) -> usize {
        let udp_gateway = (peer.signalling == Signalling::Udp)
            .then(|| peer.gateway())
            .flatten();
        let same_source = |c: ConnId| match udp_gateway {
            None => c == conn,
            Some(name) => {
                c == conn
                    || self.conns.get(&c).is_some_and(|p| {
                        p.signalling == Signalling::Udp && p.gateway() == Some(name)
                    })
            }
        };
        self.calls
            .values()
            .filter(|c| c.phase == Phase::Proceeding && same_source(c.a.conn))
            .count()
    }

    fn new_call(&mut self, now: Instant, conn: ConnId, msg: &Message) {
        let Some(peer) = self.conns.get(&conn).cloned() else {
            return;
        };
        let Some(request_uri) = msg.request_uri() else {
            return;
        };
        let Some(invite) = ReceivedRequest::of(msg) else {
            return;
        };
        let s = msg.view();
        if self.draining {
            let Some(r) = ReceivedRequest::of(msg) else {
                return;
            };
            let reply = r
                .respond(503, "Service Unavailable", &token(10))
                .header("Retry-After", "30")
                .header("Warning", "399 mediation \"shutting down\"")
                .encode();
            self.send(conn, reply);
            return;
        }
        // One connection's unanswered calls are bounded too, so one peer's burst (or a peer
        // that never lets its INVITEs finish) cannot take every place. Over UDP a "connection"
        // is one source port, which anyone can spoof: there all of the gateway's flows count
        // together.
        let pending_here = self.pending_like(conn, &peer);
        let limit = if self.calls.len() >= self.cfg.max_calls {
            Some("max_calls")
        } else if pending_here >= self.cfg.max_pending_per_connection {
            Some("max_pending_per_connection")
        } else if peer.gateway().is_some_and(|g| self.gateway_full(g)) {
            Some("gateway_max_calls")
        } else {
            None
        };
        if let Some(limit) = limit {
            tracing::warn!(
                calls = self.calls.len(),
                pending_here,
                limit,
                "new call refused"
            );
            let reply = invite
                .respond(503, "Service Unavailable", &token(10))
                .header("Retry-After", "5")
                .header("Warning", format!("399 mediation \"{limit} reached\""))
                .encode();
            self.send(conn, reply);
            self.metrics
                .calls
                .with_label_values(&[
                    match peer.peer {
                        Peer::Gateway(_) => "inbound",
                        Peer::NextHop => "outbound",
                    },
                    peer.gateway().unwrap_or(""),
                    "none",
                    limit,
                ])
                .inc();
            return;
        }
        if self.is_loop(msg) {
            self.reply(
                conn,
                msg,
                482,
                "Loop Detected",
                Some("our own Via is in this request"),
            );
            return;
        }
        // Absent: 70, as RFC 3261 §8.1.1.6 recommends senders use (the parser refuses a
        // request without it, so this is only for the engine's own tests of old peers).
        let max_forwards = s.max_forwards.unwrap_or(70);
        if max_forwards == 0 {
            self.reply(conn, msg, 483, "Too Many Hops", None);
            return;
        }
        // Route: gateway → next hop; next hop → the gateway the Request-URI names.
        let (direction, gateway, alternates) = match &peer.peer {
            Peer::Gateway(name) => (Direction::FromGateway, name.clone(), Vec::new()),
            Peer::NextHop => match self.gateways_for(request_uri) {
                Some((g, _)) if self.gateway_full(&g) => {
                    self.reply(
                        conn,
                        msg,
                        503,
                        "Service Unavailable",
                        Some("the gateway's max_calls is reached"),
                    );
                    return;
                }
                Some((g, rest)) => (Direction::FromNextHop, g, rest),
                None => {
                    self.reply(
                        conn,
                        msg,
                        404,
                        "Not Found",
                        Some("no gateway for this Request-URI"),
                    );
                    return;
                }
            },
        };
        let timer_answer = session_timer::as_uas(
            session_timer::SessionExpires::of(msg.view()),
            msg.view().supports("timer"),
            (direction == Direction::FromGateway)
                .then(|| self.session_timer_for(&gateway))
                .flatten(),
            now,
        );
        if timer_answer == UasAnswer::TooSmall {
            let reply = invite
                .respond(422, "Session Interval Too Small", &token(10))
                .header("Min-SE", session_timer::MIN_SE.to_string())
                .encode();
            self.send(conn, reply);
            return;
        }
        // One span per call: every log line about it carries its id, direction, gateway and,
        // once decided, the gateway leg's media and why.
        let span = tracing::info_span!(
            "call",
            id = self.next_id,
            direction = direction.label(),
            gateway = gateway.as_str(),
            gateway_media = tracing::field::Empty,
            reason = tracing::field::Empty,
        );
        let _entered = span.enter();
        let refuse = |this: &mut Self, code: u16, reason: &str, why: &str, result: &str| {
            tracing::info!(
                direction = direction.label(),
                gateway,
                why,
                code,
                "call refused"
            );
            this.reply(conn, msg, code, reason, Some(why));
            this.metrics
                .calls
                .with_label_values(&[direction.label(), &gateway, "none", result])
                .inc();
        };
        let offer = match sdp::parse(msg.body()) {
            Ok(o) if o.audio().is_some() => o,
            Ok(_) => {
                return refuse(
                    self,
                    488,
                    "Not Acceptable Here",
                    "no audio stream offered",
                    "refused",
                )
            }
            Err(e) if msg.body().is_empty() => {
                let _ = e;
                return refuse(
                    self,
                    488,
                    "Not Acceptable Here",
                    "INVITE without SDP offer is not supported",
                    "refused",
                );
            }
            Err(sdp::SdpError::TooManyMedia(_)) => {
                return refuse(
                    self,
                    488,
                    "Not Acceptable Here",
                    "too many media lines in the offer",
                    "refused",
                )
            }
            Err(e) => {
                tracing::info!(error = %e, "unparseable SDP offer");
                return refuse(self, 400, "Bad Request", "unparseable SDP", "refused");
            }
        };
        let audio = offer.audio().expect("checked above");
        if direction == Direction::FromGateway && !self.media_allowed(&gateway, &audio) {
            return refuse(
                self,
                488,
                "Not Acceptable Here",
                "the offer's media address is outside the gateway's media_networks",
                "refused",
            );
        }

        // A leg: may keys cross this signalling, and does the offer carry acceptable ones?
        let keys_allowed = peer.is_verified_mtls();
        if !keys_allowed && !audio.crypto.is_empty() {
            let (reason, over) = match peer.signalling {
                Signalling::Udp => ("plain_udp", "UDP"),
                _ => ("plain_tcp", "TCP"),
            };
            self.metrics
                .sdes_keys_ignored
                .with_label_values(&[reason])
                .inc_by(audio.crypto.len() as u64);
            tracing::warn!(
                gateway,
                "SDES keys offered over plain {over} ignored and never used"
            );
        }
        let suites = self.cfg.suites_for(match direction {
            Direction::FromGateway => Some(gateway.as_str()),
            Direction::FromNextHop => None,
        });
        // Lync's `a=encryption:rejected` withdraws whatever `a=crypto` came with it.
        let chosen = if keys_allowed && audio.encryption != Some(sdp::Encryption::Rejected) {
            sdp::choose_crypto(&audio.crypto, suites).cloned()
        } else {
            None
        };
        let peer_srtp = if chosen.is_some() {
            PeerSrtp::Offered
        } else {
            PeerSrtp::NotOffered
        };
        let a_decision = match direction {
            Direction::FromGateway => {
                let g = self.gateway_config(&gateway);
                let mode = g.map_or(SrtpMode::Optional, |g| g.srtp);
                let sig = match peer.signalling {
                    Signalling::Tcp | Signalling::Udp => GatewaySignalling::Tcp,
                    Signalling::Mtls { .. } => GatewaySignalling::VerifiedMtls,
                };
                policy::gateway_leg(sig, mode, peer_srtp)
            }
            Direction::FromNextHop => policy::next_hop_leg(self.cfg.encryption, peer_srtp),
        };
        if let Decision::Refuse(_) = a_decision {
            if direction == Direction::FromGateway {
                self.count_decision(&gateway, a_decision);
            }
            return refuse(
                self,
                488,
                "Not Acceptable Here",
                a_decision.reason(),
                "refused",
            );
        }
        if audio.encryption == Some(sdp::Encryption::Required)
            && a_decision.media() == Some(policy::LegMedia::Rtp)
        {
            // Lync's dialect: SRTP offered on RTP/AVP, and required.
            let why = if keys_allowed {
                "a=encryption:required but no acceptable SRTP suite or policy forbids SRTP"
            } else {
                "a=encryption:required over plain signalling: keys would travel in clear"
            };
            return refuse(self, 488, "Not Acceptable Here", why, "refused");
        }
        if audio.proto == Proto::Savp && a_decision.media() == Some(policy::LegMedia::Rtp) {
            // RTP/SAVP can only be answered with SRTP (RFC 3264 keeps the profile).
            let why = if keys_allowed {
                "no acceptable SRTP suite or policy forbids SRTP"
            } else {
                "SRTP offered over plain TCP: keys would travel in clear"
            };
            return refuse(self, 488, "Not Acceptable Here", why, "refused");
        }

        // A tel: number loses its visual separators; a sip: user part is kept as written.
        let called = request_uri.number().unwrap_or_default();
        let calling = s.from.uri.number().unwrap_or_else(|| "anonymous".into());
        let bad_user = if !is_safe_user(&called) {
            Some((
                "Malformed Request-URI",
                "the Request-URI's user part is missing or holds characters a SIP URI user may not",
            ))
        } else if !is_safe_user(&calling) {
            Some((
                "Bad From",
                "the From URI's user part holds characters a SIP URI user may not",
            ))
        } else {
            None
        };
        if let Some((reason, why)) = bad_user {
            self.reply(conn, msg, 400, reason, Some(why));
            return;
        }
        // Each leg's address and media ports are of its peer's family.
        let a_address = self.address_toward(peer.remote.ip());
        let (a_family, b_family) = (
            IpFamily::of(a_address),
            IpFamily::of(self.callee_address(direction, &gateway)),
        );
        let (a_port, b_port) = (self.ports.allocate(a_family), self.ports.allocate(b_family));
        let (Some(a_port), Some(b_port)) = (a_port, b_port) else {
            // One of the two may have been handed out: give it back.
            for (family, port) in [(a_family, a_port), (b_family, b_port)] {
                if let Some(port) = port {
                    self.ports.release(family, port);
                }
            }
            return refuse(
                self,
                503,
                "Service Unavailable",
                "media ports exhausted",
                "no_media_ports",
            );
        };
        let id = self.next_id;
        self.next_id += 1;
        let a_local = self.local_for(&peer.peer, peer.is_verified_mtls(), a_address);
        let callee = CalleeRequest {
            phone: matches!(request_uri, Uri::Tel(_)),
            user: called,
            caller: calling,
            max_forwards: max_forwards - 1,
            passed: msg
                .headers()
                .iter()
                .filter(|h| self.cfg.passes(h.name()))
                .map(|h| h.raw().to_string())
                .collect(),
        };
        let (b, invite_b) = self.b_leg(direction, &gateway, &offer, b_port, &callee, true);
        let a = ALeg {
            conn,
            peer: peer.clone(),
            call_id: s.call_id.clone(),
            remote_tag: s.from_tag().unwrap_or_default().to_string(),
            local_tag: token(10),
            remote_target: s
                .contacts
                .first()
                .map_or_else(|| s.from.uri_text.clone(), |c| c.uri_text.clone()),
            invite,
            local_cseq: 0,
            timer_answer,
            session: LegSession {
                allows_update: msg.view().allows("UPDATE"),
                ..LegSession::default()
            },
            last_sdp: None,
            offer: {
                // `chosen` holds the key in use; the rest of the caller's keys go now.
                let mut offer = offer;
                offer.forget_keys();
                offer
            },
            chosen,
            ours: None,
            sdp_session: now_session_id(),
            sdp_version: 1,
            decision: a_decision,
            port: a_port,
            local: a_local,
        };
        let call = Call {
            id,
            direction,
            gateway: gateway.clone(),
            a,
            b,
            phase: Phase::Proceeding,
            deadline: now + self.cfg.answer_timeout,
            started: now,
            media_started: false,
            early_answer: None,
            b_answer: None,
            on_hold: false,
            span: span.clone(),
            callee,
            alternates,
            failover_at: None,
            relayed: None,
            session_wakeups: Vec::new(),
            media_remotes: [None; 2],
            answered: None,
        };
        tracing::info!(
            call = id,
            direction = direction.label(),
            gateway,
            caller = %peer,
            a_leg = %a_decision,
            "new call"
        );
        let trying = call.a_response(100, "Trying").encode();
        self.send(conn, trying);
        self.send(call.b.conn, invite_b);
        self.by_a
            .insert((call.a.call_id.clone(), call.a.remote_tag.clone()), id);
        self.by_b.insert(call.b.call_id.clone(), id);
        let deadline = call.deadline;
        self.calls.insert(id, Box::new(call));
        self.arm(id, deadline);
        self.arm_failover(now, id);
    }

    /// The callee's leg toward `gateway` (or the next hop, for calls from a gateway) and its
    /// INVITE: a new dialog (Call-ID, tag, branch), our port `b_port`, and an offer with fresh
    /// keys when the policy allows SRTP there and `srtp_allowed`.
    fn b_leg(
        &mut self,
        direction: Direction,
        gateway: &str,
        offer: &sdp::PeerSdp,
        b_port: u16,
        callee: &CalleeRequest,
        srtp_allowed: bool,
    ) -> (BLeg, Bytes) {
        // Our address on this leg, of the family of the callee's configured address.
        let ours = self.callee_address(direction, gateway);
        let (target, offers_srtp, lync_style) = match direction {
            Direction::FromGateway => (
                Target {
                    peer: Peer::NextHop,
                    address: self.cfg.next_hop_address.clone(),
                    tls_identity: Some(self.cfg.next_hop_identity.clone()),
                    family: IpFamily::of(ours),
                },
                policy::offer_srtp_to_next_hop(self.cfg.encryption),
                None,
            ),
            Direction::FromNextHop => {
                let g = self
                    .cfg
                    .gateways
                    .iter()
                    .find(|g| g.name == gateway)
                    .expect("routed to a configured gateway");
                let sig = match g.transport {
                    GatewayTransport::Tcp | GatewayTransport::Udp => GatewaySignalling::Tcp,
                    GatewayTransport::Tls => GatewaySignalling::VerifiedMtls,
                };
                (
                    Target {
                        peer: Peer::Gateway(g.name.clone()),
                        address: g.address.clone(),
                        tls_identity: (g.transport == GatewayTransport::Tls)
                            .then(|| g.identity.clone().unwrap_or_default()),
                        family: IpFamily::of(ours),
                    },
                    policy::offer_srtp_to_gateway(sig, g.srtp),
                    (g.srtp_offer_style == SrtpOfferStyle::AvpCrypto).then_some(
                        if g.srtp == SrtpMode::Required {
                            sdp::Encryption::Required
                        } else {
                            sdp::Encryption::Optional
                        },
                    ),
                )
            }
        };
        let offers_srtp = offers_srtp && srtp_allowed;
        let offered = if offers_srtp {
            let suites = match direction {
                Direction::FromNextHop => self.cfg.suites_for(Some(gateway)),
                Direction::FromGateway => self.cfg.suites_for(None),
            };
            sdp::offer_crypto(suites)
        } else {
            Vec::new()
        };
        let lync_style = lync_style.filter(|_| offers_srtp);
        let sdp_session = now_session_id();
        let body = sdp::leg_sdp(
            offer,
            &sdp::LegSdpParams {
                session_id: sdp_session,
                version: 1,
                address: ours,
                port: b_port,
                proto: match (offers_srtp, lync_style) {
                    (true, None) => Proto::Savp,
                    _ => Proto::Avp,
                },
                crypto: offered.clone(),
                rtcp_mux: false,
                encryption: lync_style,
            },
        );
        let local = self.local_for(&target.peer, target.tls_identity.is_some(), ours);
        let transport = self.uri_transport(&target.peer, target.tls_identity.is_some());
        let local_tag = token(10);
        let host = AddressList::sip_host(ours);
        let b = BLeg {
            conn: self.conn_to(&target),
            call_id: format!("{}@{host}", token(20)),
            from: format!("<sip:{}@{host}>;tag={local_tag}", callee.caller),
            local_tag,
            remote_tag: None,
            uri: format!(
                "sip:{}@{};transport={transport}{}",
                callee.user,
                target.address,
                if callee.phone && self.user_phone_toward(&target.peer) {
                    ";user=phone"
                } else {
                    ""
                }
            ),
            branch: branch(),
            to: format!("<sip:{}@{}>", callee.user, target.address),
            remote_target: None,
            route_set: Vec::new(),
            local_cseq: 1,
            offered,
            ours: None,
            theirs: None,
            lync_style,
            sdp_session,
            sdp_version: 1,
            decision: None,
            port: b_port,
            local,
            provisional: false,
            timer_asked: match direction {
                Direction::FromNextHop => self.session_timer_for(gateway),
                Direction::FromGateway => None,
            },
            session: LegSession::default(),
            last_sdp: body.clone(),
            early_tags: Vec::new(),
            early_tag: None,
        };
        let mut invite = Outgoing::request("INVITE", &b.uri)
            .header("Via", format!("{};branch={}", b.local.via, b.branch))
            .header("Max-Forwards", callee.max_forwards.to_string())
            .header("From", b.from.clone())
            .header("To", b.to.clone())
            .header("Call-ID", b.call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", b.local.contact.clone())
            .header("Allow", ALLOW);
        if let Some(interval) = b.timer_asked {
            // No refresher named: the callee chooses (RFC 4028 §7.1).
            invite = invite
                .header("Supported", "timer")
                .header("Session-Expires", interval.to_string())
                .header("Min-SE", session_timer::MIN_SE.to_string());
        }
        for field in &callee.passed {
            invite = invite.raw_header(field.clone());
        }
        (b, invite.sdp(body).encode())
    }

    /// Replaces the callee's leg with a new INVITE toward `gateway` (failover, or the same
    /// gateway without SRTP); the old leg's dialog is forgotten. A gateway of another address
    /// family gets media ports of its family; false (nothing changed) when there are none.
    fn replace_b_leg(&mut self, now: Instant, id: u64, gateway: &str, srtp_allowed: bool) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let (direction, old_family, mut port) =
            (call.direction, call.b.local.family(), call.b.port);
        let family = IpFamily::of(self.callee_address(direction, gateway));
        if family != old_family {
            let Some(new_port) = self.ports.allocate(family) else {
                tracing::warn!(call = id, gateway, %family, "no media port pair for the gateway's address family");
                return false;
            };
            self.ports.release(old_family, port);
            port = new_port;
        }
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let offer = call.a.offer.clone();
        let callee = call.callee.clone();
        let (b, invite) = self.b_leg(direction, gateway, &offer, port, &callee, srtp_allowed);
        let call = self.calls.get_mut(&id).expect("present");
        let old = std::mem::replace(&mut call.b, b);
        call.gateway = gateway.to_string();
        let (conn, call_id) = (call.b.conn, call.b.call_id.clone());
        self.by_b.remove(&old.call_id);
        self.by_b.insert(call_id, id);
        self.send(conn, invite);
        self.arm_failover(now, id);
        true
    }

    /// With another gateway to try, gives the current one `failover_timeout` to answer with
    /// a provisional response.
    fn arm_failover(&mut self, now: Instant, id: u64) {
        let at = now + self.cfg.failover_timeout;
        if let Some(call) = self.calls.get_mut(&id) {
            if call.alternates.is_empty() {
                call.failover_at = None;
                return;
            }
            call.failover_at = Some(at);
            self.timers.insert((at, id));
        }
    }

    /// Moves an unanswered call to its next gateway, if it has one; true when it did.
    fn fail_over(&mut self, now: Instant, id: u64, why: &str) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.phase != Phase::Proceeding || call.media_started || call.alternates.is_empty() {
            return false;
        }
        let next = call.alternates.remove(0);
        tracing::warn!(
            call = id,
            from = call.gateway,
            to = next,
            why,
            "failing over to the next gateway"
        );
        let from = call.gateway.clone();
        if !self.replace_b_leg(now, id, &next, true) {
            return false;
        }
        self.metrics.failovers.with_label_values(&[&from]).inc();
        true
    }

    /// True when `peer` is a gateway configured with `transport = "udp"`.
    fn is_udp(&self, peer: &Peer) -> bool {
        let Peer::Gateway(name) = peer else {
            return false;
        };
        let g = self.cfg.gateways.iter().find(|g| &g.name == name);
        g.is_some_and(|g| g.transport == GatewayTransport::Udp)
    }

    /// The `transport=` URI parameter toward a peer.
    fn uri_transport(&self, peer: &Peer, tls: bool) -> &'static str {
        match (tls, self.is_udp(peer)) {
            (true, _) => "tls",
            (false, true) => "udp",
            (false, false) => "tcp",
        }
    }

    /// Our outbound connection to `target`, opening one if there is none.
    fn conn_to(&mut self, target: &Target) -> ConnId {
        if let Some(conn) = self.outbound.get(&target.peer) {
            return *conn;
        }
        let conn = ConnId::next();
        self.outbound.insert(target.peer.clone(), conn);
        self.out.push_back(Output::Connect {
            conn,
            target: target.clone(),
        });
        conn
    }

    fn on_response(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(code) = msg.code() else {
            return;
        };
        let s = msg.view();
        if s.cseq.method == Method::Options {
            let gateway = self
                .probes
                .iter()
                .find(|(_, p)| {
                    p.pending
                        .as_ref()
                        .is_some_and(|(id, _, _)| *id == s.call_id)
                })
                .map(|(name, _)| name.clone());
            if let Some(name) = gateway {
                // Any answer but a server failure shows the gateway is there and working.
                self.probe_result(&name, code < 500, &format!("OPTIONS answered {code}"));
            }
            return;
        }
        if let Some(id) = self.find(s, false) {
            if !self.is_leg_peer(id, self.on_b(id, s), conn) {
                let span = self.span_of(id);
                let _entered = span.enter();
                let peer = self.conns.get(&conn).map(|p| format!("{:?}", p.peer));
                tracing::warn!(
                    call = id,
                    ?peer,
                    "response from a peer that is not the leg's; dropped"
                );
                return;
            }
        }
        if let Some(id) = self.relayed_of(s) {
            let span = self.span_of(id);
            let _entered = span.enter();
            return self.on_relayed_response(now, id, &msg);
        }
        if let Some((id, from_b)) = self.refresh_of(s) {
            let span = self.span_of(id);
            let _entered = span.enter();
            return self.on_refresh_response(now, id, from_b, &msg);
        }
        let Some(id) = self.by_b.get(&s.call_id).copied() else {
            return; // a response on the A leg (to our BYE) or for a call already gone
        };
        let span = self.span_of(id);
        let _entered = span.enter();
        if s.cseq.method != Method::Invite {
            return; // 200 to our BYE or CANCEL: nothing left to do
        }
        if s.branch() != self.calls.get(&id).map(|c| c.b.branch.as_str()) {
            return; // not our INVITE transaction
        }
        let reason = msg.reason().unwrap_or("").to_string();
        match code {
            100 => {}
            101..=199 => self.on_provisional(id, code, &reason, &msg, s),
            200..=299 => self.on_answer(now, id, &msg, s),
            _ => self.on_failure(now, id, code, &reason, s),
        }
    }

    fn on_provisional(&mut self, id: u64, code: u16, reason: &str, msg: &Message, s: &View) {
        let limit = self.cfg.max_early_dialogs;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.b.provisional = true;
        if call.phase != Phase::Proceeding {
            return;
        }
        // Each To tag is an early dialog (a fork, RFC 3261 §12.1.2); the caller sees them all as
        // our one dialog, up to `max_early_dialogs`.
        if let Some(tag) = s.to_tag().map(str::to_string) {
            if !call.b.early_tags.contains(&tag) {
                if call.b.early_tags.len() >= limit {
                    tracing::warn!(
                        call = id,
                        limit,
                        "early dialog beyond max_early_dialogs ignored"
                    );
                    return;
                }
                call.b.early_tags.push(tag);
            }
        }
        let b_conn = call.b.conn;
        // Early media (ringback, announcements from the PSTN): a 18x with SDP is the callee's
        // answer; negotiate it now, relay media before the 200, and repeat it in the 200.
        if !msg.body().is_empty() && self.call_early(id).is_none() {
            match self.negotiate(id, msg.body(), b_conn) {
                Ok(n) => {
                    tracing::info!(call = id, code, "early media from the callee");
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.early_answer = Some(n.a_sdp);
                        call.b.early_tag = s.to_tag().map(str::to_string);
                    }
                    self.start_media(id, n.plans);
                }
                Err((why, _)) => {
                    tracing::info!(
                        call = id,
                        why,
                        "early SDP refused; relaying the 18x without it"
                    );
                }
            }
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let mut r = call.a_response(code, reason);
        if let Some(early) = &call.early_answer {
            r = r
                .header("Contact", call.a.local.contact.clone())
                .sdp(early.clone());
        }
        let (conn, bytes) = (call.a.conn, r.encode());
        self.send(conn, bytes);
    }

    fn on_failure(&mut self, now: Instant, id: u64, code: u16, reason: &str, s: &View) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let ack = call.b_same_transaction("ACK", s.to_tag());
        if code == 488 && self.retry_without_srtp(now, id, ack.clone()) {
            return;
        }
        if matches!(code, 503 | 408) {
            let conn = self.calls.get(&id).map(|c| c.b.conn);
            if self
                .calls
                .get(&id)
                .is_some_and(|c| !c.alternates.is_empty())
            {
                if let Some(conn) = conn {
                    self.send(conn, ack.clone());
                }
                if self.fail_over(now, id, &format!("answered {code}")) {
                    return;
                }
            }
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (a_conn, b_conn, phase) = (call.a.conn, call.b.conn, call.phase);
        let r = call.a_response(code, reason).encode();
        self.send(b_conn, ack);
        if phase == Phase::Proceeding {
            self.send(a_conn, r);
            self.count_call(id, &code.to_string());
            tracing::info!(call = id, code, "call failed at the callee; final relayed");
        }
        self.release_ports(id);
        self.remove(id);
    }

    /// A gateway with `srtp = "optional"` refused our SRTP offer (488): acknowledge it and offer
    /// plain RTP instead, in a new INVITE (RFC 3261 §8.1.3.5 leaves a new request after a
    /// failure to the UAC). True when retried.
    fn retry_without_srtp(&mut self, now: Instant, id: u64, ack: Bytes) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let optional = self
            .cfg
            .gateways
            .iter()
            .any(|g| g.name == call.gateway && g.srtp == SrtpMode::Optional);
        if call.direction != Direction::FromNextHop
            || call.phase != Phase::Proceeding
            || call.b.offered.is_empty()
            || !optional
        {
            return false;
        }
        tracing::info!(
            call = id,
            gateway = call.gateway,
            "gateway refused the SRTP offer; offering plain RTP (srtp = \"optional\")"
        );
        // A new dialog attempt with its own Call-ID and tag: some peers keep the refused
        // INVITE's Call-ID around and would take a second INVITE on it for a retransmission.
        let (conn, gateway) = (call.b.conn, call.gateway.clone());
        self.send(conn, ack);
        // The same gateway, so the same family and ports: this does not fail.
        self.replace_b_leg(now, id, &gateway, false)
    }

    fn on_answer(&mut self, now: Instant, id: u64, msg: &Message, s: &View) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let b_conn = call.b.conn;
        let contact = s.contacts.first().map(|c| c.uri_text.clone());
        if matches!(call.phase, Phase::Answered | Phase::Confirmed) {
            if s.to_tag() == call.b.remote_tag.as_deref() {
                // The callee retransmits its 2xx until our ACK arrives (RFC 3261 §13.3.1.4).
                let ack = call.b_ack(1);
                self.send(b_conn, ack);
            } else if let Some(tag) = s.to_tag() {
                // A second fork answered too: keep the first, end this one (§13.2.2.4).
                tracing::info!(call = id, "a second fork answered; ending it with BYE");
                for m in call.b_end_fork(tag, contact.as_deref()) {
                    self.send(b_conn, m);
                }
            }
            return;
        }
        call.b.remote_tag = s.to_tag().map(str::to_string);
        call.b.remote_target = contact;
        call.b.route_set = s.record_route.iter().rev().cloned().collect();
        let ack = call.b_ack(1);
        self.send(b_conn, ack);
        let call = self.calls.get_mut(&id).expect("present");
        if call.phase != Phase::Proceeding {
            // Abandoned (CANCEL raced with the 200, or timed out): end the callee's dialog.
            let bye = call.b_request("BYE");
            self.send(b_conn, bye);
            self.remove(id);
            return;
        }
        call.b.session = LegSession {
            timer: call.b.timer_asked.map(|asked| {
                session_timer::as_uac(asked, session_timer::SessionExpires::of(msg.view()), now)
            }),
            allows_update: msg.view().allows("UPDATE"),
            ..LegSession::default()
        };
        let from_other_fork =
            call.b.early_tag.is_some() && call.b.early_tag.as_deref() != s.to_tag();
        let (a_sdp, plans, b_decision) = match self.call_early(id) {
            // Early media already negotiated: the 200 repeats that answer (RFC 3261 §13.2.1);
            // a 2xx from another fork than the early media's brings that fork's keys.
            Some(early) => {
                if from_other_fork {
                    self.take_answer_keys(id, true, msg.body());
                }
                (early, None, self.calls[&id].b.decision)
            }
            None => match self.negotiate(id, msg.body(), b_conn) {
                Ok(n) => (n.a_sdp, Some(n.plans), Some(n.b_decision)),
                Err((why, decision)) => {
                    let call = &self.calls[&id];
                    if let Some(d) = decision.filter(|_| call.direction == Direction::FromNextHop) {
                        let gateway = call.gateway.clone();
                        self.count_decision(&gateway, d);
                    }
                    return self.fail_after_answer(id, 488, "Not Acceptable Here", &why);
                }
            },
        };
        let Some(b_decision) = b_decision else {
            return;
        };
        let call = self.calls.get_mut(&id).expect("present");
        let (timer, require) = match &call.a.timer_answer {
            UasAnswer::Timer { timer, require } => (Some(*timer), *require),
            _ => (None, false),
        };
        call.a.session.timer = timer.map(|t| session_timer::LegTimer {
            refreshed_at: now,
            ..t
        });
        call.a.last_sdp = Some(a_sdp.clone());
        let ok = call
            .a_response(200, "OK")
            .header("Contact", call.a.local.contact.clone())
            .header("Allow", ALLOW)
            .session_expires(timer.map(|t| t.header(false)), require)
            .sdp(a_sdp)
            .encode();
        let a_conn = call.a.conn;
        call.phase = Phase::Answered;
        call.answered = Some(now);
        let gateway_media = call.gateway_media().map_or("none", |m| m.label());
        let (gw_decision, nh_decision) = match call.direction {
            Direction::FromGateway => (call.a.decision, b_decision),
            Direction::FromNextHop => (b_decision, call.a.decision),
        };
        tracing::info!(
            call = id,
            direction = call.direction.label(),
            gateway = call.gateway,
            gateway_leg = %gw_decision,
            gateway_reason = gw_decision.reason(),
            next_hop_leg = %nh_decision,
            "call answered"
        );
        call.span.record(
            "gateway_media",
            gw_decision.media().map_or("none", |m| m.label()),
        );
        call.span.record("reason", gw_decision.reason());
        let gateway = call.gateway.clone();
        self.metrics
            .call_setup
            .with_label_values(&[call.direction.label()])
            .observe(now.saturating_duration_since(call.started).as_secs_f64());
        self.count_decision(&gateway, gw_decision);
        self.metrics
            .active_calls
            .with_label_values(&[gateway_media])
            .inc();
        self.count_call(id, "answered");
        self.send(a_conn, ok);
        self.arm(id, now + ACK_TIMEOUT);
        self.arm_session_timers(now, id);
        if let Some(plans) = plans {
            self.start_media(id, plans);
        }
    }

    /// The caller's answer SDP if early media was already set up.
    fn call_early(&self, id: u64) -> Option<String> {
        self.calls.get(&id).and_then(|c| c.early_answer.clone())
    }

    /// Starts the relay, or ends the call if its plan could not be made.
    fn start_media(&mut self, id: u64, plans: Result<[LegPlan; 2], String>) {
        match plans {
            Ok(legs) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.media_started = true;
                    for plan in legs.iter() {
                        // Plans are gateway leg first; the gateway's leg is B when we called it.
                        let on_b = (plan.label == "gateway") == call.is_gateway_leg(true);
                        call.media_remotes[usize::from(on_b)] = plan.remote_rtp;
                    }
                }
                self.out.push_back(Output::Media(MediaCommand::Start {
                    call: id,
                    legs: Box::new(legs),
                }));
            }
            Err(e) => {
                tracing::error!(call = id, error = %e, "media could not be set up; ending call");
                self.hang_up(id, ConnId(0));
            }
        }
    }

    /// Negotiates the callee's answer (in a 2xx, or a 18x for early media): the callee leg's
    /// decision, and the answer we give the caller. `Err` carries why it is unusable and the
    /// refusing decision, if the policy refused.
    fn negotiate(
        &mut self,
        id: u64,
        body: &[u8],
        b_conn: ConnId,
    ) -> Result<Negotiated, (String, Option<Decision>)> {
        let b_peer_is_tls = self
            .conns
            .get(&b_conn)
            .is_some_and(|p| p.is_verified_mtls());
        let answer = match sdp::parse(body) {
            Ok(a) if a.audio().is_some_and(|au| au.port != 0) => a,
            _ => return Err(("the callee's answer has no usable audio".into(), None)),
        };
        let audio = answer.audio().expect("checked");
        let call = self.calls.get(&id).expect("present");
        if call.direction == Direction::FromNextHop && !self.media_allowed(&call.gateway, &audio) {
            return Err((
                "the answer's media address is outside the gateway's media_networks".into(),
                None,
            ));
        }
        let negotiated = if call.b.offered.is_empty() {
            if !audio.crypto.is_empty() {
                self.metrics
                    .sdes_keys_ignored
                    .with_label_values(&["not_offered"])
                    .inc();
            }
            None
        } else {
            sdp::match_answer(&call.b.offered, &audio.crypto).ok()
        };
        let peer_srtp = if negotiated.is_some() && b_peer_is_tls {
            PeerSrtp::Offered
        } else {
            PeerSrtp::NotOffered
        };
        let b_decision = match call.direction {
            Direction::FromGateway => policy::next_hop_leg(self.cfg.encryption, peer_srtp),
            Direction::FromNextHop => {
                let g = self.gateway_config(&call.gateway);
                let mode = g.map_or(SrtpMode::Optional, |g| g.srtp);
                let sig = if b_peer_is_tls {
                    GatewaySignalling::VerifiedMtls
                } else {
                    GatewaySignalling::Tcp
                };
                policy::gateway_leg(sig, mode, peer_srtp)
            }
        };
        if let Decision::Refuse(_) = b_decision {
            return Err((b_decision.reason().to_string(), Some(b_decision)));
        }
        if audio.proto == Proto::Savp && negotiated.is_none() {
            return Err((
                "the callee answered SRTP without a matching key".into(),
                None,
            ));
        }
        // The caller's answer: the callee's codecs, our address and port, our key if SRTP.
        let call = self.calls.get_mut(&id).expect("present");
        call.b.decision = Some(b_decision);
        let a_audio = call.a.offer.audio().expect("checked at INVITE");
        let a_answer_crypto = match (&call.a.chosen, call.a.decision.media()) {
            (Some(chosen), Some(policy::LegMedia::Srtp)) => vec![sdp::answer_crypto(chosen)],
            _ => Vec::new(),
        };
        // The caller's offer gives the m-line layout (RFC 3264 §6), the callee's answer the codecs.
        call.a.ours = a_answer_crypto.first().cloned();
        if let Some((ours, theirs)) = &negotiated {
            call.b.ours = Some(ours.clone());
            call.b.theirs = Some(theirs.clone());
        }
        let a_sdp = sdp::answer_sdp(
            &call.a.offer,
            &answer,
            &sdp::LegSdpParams {
                session_id: call.a.sdp_session,
                version: call.a.sdp_version,
                address: call.a.local.address,
                port: call.a.port,
                proto: a_audio.proto.clone(),
                crypto: a_answer_crypto.clone(),
                // RTCP multiplexing (RFC 5761) when the caller offered it.
                rtcp_mux: a_audio.rtcp_mux,
                encryption: None,
            },
        );
        // The configuration's field, not `gateway_config`: `call` is borrowed from `self.calls`.
        let gateway_sources = self
            .cfg
            .gateways
            .iter()
            .find(|g| g.name == call.gateway)
            .map_or_else(Default::default, |g| g.media_sources);
        let plans = media_plan::plans(
            call,
            &a_answer_crypto,
            negotiated.as_ref(),
            &audio,
            gateway_sources,
        );
        call.b_answer = Some(answer);
        Ok(Negotiated {
            a_sdp,
            plans,
            b_decision,
        })
    }

    /// The callee answered but the answer is unusable: end B, refuse A.
    fn fail_after_answer(&mut self, id: u64, code: u16, reason: &str, why: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        tracing::info!(call = id, why, "callee's answer refused");
        let bye = call.b_request("BYE");
        let b_conn = call.b.conn;
        let r = call
            .a_response(code, reason)
            .header("Warning", format!("399 mediation \"{why}\""))
            .encode();
        let a_conn = call.a.conn;
        self.send(b_conn, bye);
        self.send(a_conn, r);
        self.count_call(id, "refused");
        self.release_ports(id);
        self.remove(id);
    }

    /// The call's log span (a cheap handle), or none.
    fn span_of(&self, id: u64) -> tracing::Span {
        self.calls
            .get(&id)
            .map_or_else(tracing::Span::none, |c| c.span.clone())
    }

    /// Entries in the timer table (tests: it must not grow with refreshes).
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// SIP dialogs established (two per answered call) and INVITE transactions in progress
    /// (server and client side of each unanswered call).
    pub fn dialogs_and_transactions(&self) -> (usize, usize) {
        self.calls.values().fold((0, 0), |(d, t), c| match c.phase {
            Phase::Answered | Phase::Confirmed => (d + 2, t),
            Phase::Proceeding => (d, t + 2),
            Phase::Abandoned => (d, t + 1),
        })
    }

    /// Calls held, answered or not (for draining).
    pub fn active(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.phase != Phase::Abandoned)
            .count()
    }

    fn count_decision(&self, gateway: &str, decision: Decision) {
        let media = decision.media().map_or("none", |m| m.label());
        self.metrics
            .gateway_media_decisions
            .with_label_values(&[gateway, media, decision.reason()])
            .inc();
    }

    fn count_call(&self, id: u64, result: &str) {
        if let Some(call) = self.calls.get(&id) {
            let media = call.gateway_media().map_or("none", |m| m.label());
            self.metrics
                .calls
                .with_label_values(&[call.direction.label(), &call.gateway, media, result])
                .inc();
        }
    }

    fn release_ports(&mut self, id: u64) {
        if let Some(call) = self.calls.get_mut(&id) {
            if !call.media_started && call.a.port != 0 {
                self.ports.release(call.a.local.family(), call.a.port);
                self.ports.release(call.b.local.family(), call.b.port);
                call.a.port = 0;
                call.b.port = 0;
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.by_a
            .remove(&(call.a.call_id.clone(), call.a.remote_tag.clone()));
        self.by_b.remove(&call.b.call_id);
        if matches!(call.phase, Phase::Answered | Phase::Confirmed) {
            let media = call.gateway_media().map_or("none", |m| m.label());
            self.metrics.active_calls.with_label_values(&[media]).dec();
        }
        if call.media_started {
            self.out
                .push_back(Output::Media(MediaCommand::Stop { call: id }));
        } else if call.a.port != 0 {
            self.ports.release(call.a.local.family(), call.a.port);
            self.ports.release(call.b.local.family(), call.b.port);
        }
    }
}

/// An SDP session id (RFC 4566 §5.2 suggests an NTP timestamp; any unique number will do).
fn now_session_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    base.wrapping_mul(1000) + NEXT.fetch_add(1, Ordering::Relaxed) % 1000
}
