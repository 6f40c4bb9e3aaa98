//! The B2BUA engine, sans-IO: connection events, SIP messages and time go in; messages to send,
//! connections to open, media to start or stop and [`Report`]s to count come out. No socket,
//! no clock and no entropy of its own: instants are passed in and randomness comes from the
//! generator it is given, so every call flow is tested deterministically by feeding it messages.
//!
//! This file holds the engine's state and the dispatch: which flow an event belongs to. The
//! flows are one file each under `engine/`: a new call (`invite`), the callee's answers
//! (`answer`), failover (`failover`), a re-offer answered on its leg (`reoffer_answer`) or
//! carried across the call (`reoffer_relay`), INFO, NOTIFY, MESSAGE and OPTIONS carried across
//! the call (`in_dialog_relay`), session refreshes, OPTIONS probes and how calls end
//! (`teardown`); `timers` is the one table of named wake-ups.
//!
//! Transports are streams (TCP, TLS), so there are no retransmission timers (RFC 3261 §17.1.1.2:
//! timer A is not used on reliable transports); the answer timeout bounds every INVITE. UDP
//! gateways look the same from here: `sip::transaction` below retransmits for them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{EngineConfig, Route};
use super::io::{Input, MediaCommand, Output, PortAllocator, Target};
use super::legs::{Call, Phase};
use super::policy::Decision;
use super::report::Report;
use crate::peer::{ConnId, Peer, PeerIdentity};
use crate::sip::outgoing::{branch, token, unsupported, ReceivedRequest};
use crate::sip::{Message, Method, View, ALLOW};
use timers::{Timer, Timers};

mod answer;
mod failover;
mod in_dialog_relay;
mod invite;
mod leg_peer;
mod local;
mod media_follow;
mod probes;
mod reoffer_answer;
mod reoffer_relay;
mod routing;
mod session_refresh;
mod teardown;
mod timers;

/// The OPTIONS keepalive of one gateway (when the next goes out, and when the one in flight
/// counts as unanswered, are its timers `ProbeSend` and `ProbeAnswer`).
#[derive(Debug, Default)]
struct Probe {
    /// The probe in flight: its Call-ID and connection.
    pending: Option<(String, ConnId)>,
    /// Last verdict.
    up: Option<bool>,
}

/// The B2BUA.
pub struct Engine<P: PortAllocator> {
    cfg: EngineConfig,
    ports: P,
    conns: HashMap<ConnId, Arc<PeerIdentity>>,
    outbound: HashMap<Peer, ConnId>,
    /// Boxed: a `Call` is a few KiB, and a map keeps up to twice the slots it uses.
    calls: HashMap<u64, Box<Call>>,
    by_a: HashMap<(String, String), u64>,
    by_b: HashMap<String, u64>,
    timers: Timers,
    out: VecDeque<Output>,
    reports: VecDeque<Report>,
    /// Tags, Call-IDs, branches and SDP session ids (SDES keys come from the operating system,
    /// never from here: see `sdp::crypto`).
    rng: StdRng,
    next_id: u64,
    draining: bool,
    probes: HashMap<String, Probe>,
}

impl<P: PortAllocator> Engine<P> {
    /// A new engine drawing its tokens from `rng` (seed it from the operating system in
    /// service; a fixed seed makes a test repeat exactly).
    pub fn new(cfg: EngineConfig, ports: P, rng: StdRng) -> Self {
        Self {
            cfg,
            ports,
            conns: HashMap::new(),
            outbound: HashMap::new(),
            calls: HashMap::new(),
            by_a: HashMap::new(),
            by_b: HashMap::new(),
            timers: Timers::default(),
            out: VecDeque::new(),
            reports: VecDeque::new(),
            rng,
            next_id: 1,
            draining: false,
            probes: HashMap::new(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next thing to count, if any (the driver turns each into metrics).
    pub fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// Schedules the first OPTIONS probe of every gateway that has them on.
    pub fn start(&mut self, now: Instant) {
        for g in &self.cfg.gateways {
            if g.options_interval_secs > 0 {
                self.probes.entry(g.name.clone()).or_default();
                self.timers.set(
                    Timer::ProbeSend(g.name.clone()),
                    now + Duration::from_secs(1),
                );
            }
        }
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
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
                .any(|p| p.pending.as_ref().is_some_and(|(_, c)| *c == conn))
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
        while let Some(timer) = self.timers.pop_due(now) {
            let id = match &timer {
                Timer::ProbeAnswer(gateway) => {
                    self.probe_result(gateway, false, "no answer to OPTIONS");
                    continue;
                }
                Timer::ProbeSend(gateway) => {
                    self.send_probe(now, gateway);
                    continue;
                }
                Timer::Answer(id)
                | Timer::Failover(id)
                | Timer::Ack(id)
                | Timer::Linger(id)
                | Timer::Relay(id)
                | Timer::InDialog(id)
                | Timer::Session(id) => *id,
            };
            let span = self.span_of(id);
            let _entered = span.enter();
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            match (timer, call.phase) {
                (Timer::Answer(_), Phase::Proceeding) => {
                    tracing::info!(
                        call = id,
                        "no final answer in time: 408 to the caller, CANCEL to the callee"
                    );
                    let r = call.a_response(408, "Request Timeout").encode();
                    self.send(call.a.conn, r);
                    self.count_call(id, "timeout");
                    self.abandon(now, id);
                }
                (Timer::Failover(_), Phase::Proceeding) if !call.b.provisional => {
                    let cancel = call.b_same_transaction("CANCEL", None);
                    self.send(call.b.conn, cancel);
                    self.fail_over(now, id, "no provisional response in time");
                }
                (Timer::Ack(_), Phase::Answered) => {
                    // Our 2xx was never acknowledged (RFC 3261 §13.3.1.4): end the call.
                    tracing::warn!(call = id, "no ACK for our 2xx: ending the call");
                    self.count_call(id, "no_ack");
                    self.end_now(now, id, "no_ack");
                }
                (Timer::Linger(_), Phase::Abandoned) => self.remove(id),
                (Timer::Relay(_), _) => self.relay_timed_out(now, id),
                (Timer::InDialog(_), _) => self.in_dialog_timed_out(now, id),
                (Timer::Session(_), Phase::Answered | Phase::Confirmed) => {
                    self.run_session_timers(now, id)
                }
                _ => {} // the call moved on: the timer no longer applies
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
        let tag = self.token(10);
        let mut m = r.respond(code, reason, &tag);
        if code == 405 || code == 501 {
            m = m.header("Allow", ALLOW);
        }
        if let Some(w) = warning {
            m = m.header("Warning", format!("399 mediation \"{w}\""));
        }
        self.send(conn, m.encode());
    }

    /// Answers `420 Bad Extension` when `msg` requires extensions we do not implement, with
    /// `Unsupported` naming exactly those (RFC 3261 §8.2.2.3; never for ACK or CANCEL, which
    /// must not be refused for it); true when it did.
    fn refused_extensions(&mut self, conn: ConnId, msg: &Message) -> bool {
        if matches!(msg.method(), None | Some(Method::Ack | Method::Cancel)) {
            return false;
        }
        let unsupported = unsupported(&msg.view().require);
        if unsupported.is_empty() {
            return false;
        }
        let Some(r) = ReceivedRequest::of(msg) else {
            return false;
        };
        tracing::info!(
            method = msg.method().map(Method::as_str),
            ?unsupported,
            "the request requires extensions we do not implement: 420"
        );
        let tag = self.token(10);
        let reply = r
            .respond(420, "Bad Extension", &tag)
            .header("Unsupported", unsupported.join(", "))
            .encode();
        self.send(conn, reply);
        true
    }

    /// A fresh random token of `len` characters (tags, Call-IDs).
    fn token(&mut self, len: usize) -> String {
        token(&mut self.rng, len)
    }

    /// A fresh Via branch.
    fn branch(&mut self) -> String {
        branch(&mut self.rng)
    }

    /// A new SDP session id (RFC 4566 §5.2 suggests an NTP timestamp; any unique number will
    /// do, and a random one gives away nothing about when we started).
    fn sdp_session_id(&mut self) -> u64 {
        self.rng.gen_range(1..1 << 62)
    }

    /// A generator for a new call's own tokens (its requests' branches), seeded from ours.
    fn call_rng(&mut self) -> StdRng {
        StdRng::from_rng(&mut self.rng).expect("a seeded generator does not fail")
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
        self.reports.push_back(Report::Request {
            method: method.clone(),
        });
        let s = msg.view();
        let found = self.find(s, true);
        let span = found
            .map(|id| self.span_of(id))
            .unwrap_or_else(tracing::Span::none);
        let _entered = span.enter();
        if let Some(id) = found {
            if !self.is_leg_peer(id, self.side_of(id, s), conn) {
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
                        self.timers.cancel(&Timer::Ack(call.id));
                    }
                }
            }
            (Method::Bye, Some(id)) => {
                self.reply(conn, &msg, 200, "OK", None);
                let side = self.side_of(id, s);
                self.on_bye(now, id, conn, side);
            }
            (Method::Cancel, Some(id)) => {
                self.reply(conn, &msg, 200, "OK", None);
                self.on_cancel(now, id);
            }
            (_, None) => self.reply(conn, &msg, 481, "Call/Transaction Does Not Exist", None),
            (Method::Invite | Method::Update, Some(id)) => {
                if !self.refused_extensions(conn, &msg) {
                    let side = self.side_of(id, s);
                    self.on_reoffer(now, conn, &msg, id, side);
                }
            }
            (Method::Info | Method::Notify | Method::Message | Method::Options, Some(id)) => {
                if !self.refused_extensions(conn, &msg) {
                    let side = self.side_of(id, s);
                    self.relay_in_dialog(now, conn, &msg, id, side);
                }
            }
            (method, Some(_)) => self.reply(
                conn,
                &msg,
                501,
                "Not Implemented",
                Some(&format!("{method} inside a call is not handled")),
            ),
        }
    }

    fn on_response(&mut self, now: Instant, conn: ConnId, msg: Message) {
        let Some(code) = msg.code() else {
            return;
        };
        let s = msg.view();
        if let Some(id) = self.find(s, false) {
            if !self.is_leg_peer(id, self.side_of(id, s), conn) {
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
        if let Some(id) = self.in_dialog_of(s) {
            let span = self.span_of(id);
            let _entered = span.enter();
            return self.on_in_dialog_response(id, &msg);
        }
        if s.cseq.method == Method::Options {
            let gateway = self
                .probes
                .iter()
                .find(|(_, p)| p.pending.as_ref().is_some_and(|(id, _)| *id == s.call_id))
                .map(|(name, _)| name.clone());
            if let Some(name) = gateway {
                // Any answer but a server failure shows the gateway is there and working.
                self.probe_result(&name, code < 500, &format!("OPTIONS answered {code}"));
            }
            return;
        }
        if let Some(id) = self.relayed_of(s) {
            let span = self.span_of(id);
            let _entered = span.enter();
            return self.on_relayed_response(now, id, &msg);
        }
        if let Some((id, side)) = self.refresh_of(s) {
            let span = self.span_of(id);
            let _entered = span.enter();
            return self.on_refresh_response(now, id, side, &msg);
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

    /// The call's log span (a cheap handle), or none.
    fn span_of(&self, id: u64) -> tracing::Span {
        self.calls
            .get(&id)
            .map_or_else(tracing::Span::none, |c| c.span.clone())
    }

    /// Entries in the timer table (tests: it must not grow with refreshes).
    #[cfg(test)]
    pub(super) fn timer_entries(&self) -> usize {
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

    /// Reports a gateway leg's encryption decision.
    fn count_decision(&mut self, gateway: &str, decision: Decision) {
        self.reports.push_back(Report::Decision {
            gateway: gateway.to_string(),
            decision,
        });
    }

    /// Reports a call's outcome `result`.
    fn count_call(&mut self, id: u64, result: &str) {
        if let Some(call) = self.calls.get(&id) {
            self.reports.push_back(Report::Call {
                direction: call.direction,
                gateway: call.gateway.clone(),
                media: call.gateway_media(),
                result: result.to_string(),
            });
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
        // Requests still waiting for the far party are over with the call (RFC 3261 §15.1.2).
        self.end_in_dialog(id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.by_a
            .remove(&(call.a.call_id.clone(), call.a.remote_tag.clone()));
        self.by_b.remove(&call.b.call_id);
        self.timers.cancel_call(id);
        if matches!(call.phase, Phase::Answered | Phase::Confirmed) {
            self.reports.push_back(Report::Ended {
                media: call.gateway_media(),
            });
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
