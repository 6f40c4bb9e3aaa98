//! A new call: an INVITE outside any dialog is checked (draining, limits, loops, hops,
//! routing, session interval, the SDP offer and the encryption rules on it), given media ports
//! of each leg's family, and turned into our INVITE toward the callee on a new dialog.

use std::time::Instant;

use bytes::Bytes;

use super::super::legs::{ALeg, BLeg, Call, CalleeRequest, Direction, Phase};
use super::super::policy::{self, Decision, PeerSrtp, SdpRole};
use super::super::report::Report;
use super::super::session_timer::{self, LegSession, UasAnswer};
use super::timers::Timer;
use super::{Engine, PortAllocator, Target};
use crate::config::numbers;
use crate::config::{
    AddressList, GatewayTransport, IpFamily, NumberKind, RuleDirection, SrtpMode, SrtpOfferStyle,
};
use crate::peer::{ConnId, Peer, PeerIdentity, Signalling};
use crate::sdp::{self, Proto};
use crate::sip::outgoing::{Outgoing, ReceivedRequest};
use crate::sip::uri::is_safe_user;
use crate::sip::{Message, Uri, ALLOW};

/// Where a call was forwarded from: passed on only where a gateway's `forward_history` says so.
const HISTORY: [&str; 2] = ["History-Info", "Diversion"];

impl<P: PortAllocator> Engine<P> {
    /// Unanswered calls that came in on `conn`, or over UDP, from any flow of the same
    /// gateway.
    pub(super) fn pending_like(&self, conn: ConnId, peer: &PeerIdentity) -> usize {
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

    pub(super) fn new_call(&mut self, now: Instant, conn: ConnId, msg: &Message) {
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
            let tag = self.token(10);
            let reply = r
                .respond(503, "Service Unavailable", &tag)
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
            let tag = self.token(10);
            let reply = invite
                .respond(503, "Service Unavailable", &tag)
                .header("Retry-After", "5")
                .header("Warning", format!("399 mediation \"{limit} reached\""))
                .encode();
            self.send(conn, reply);
            self.reports.push_back(Report::Call {
                direction: match peer.peer {
                    Peer::Gateway(_) => Direction::FromGateway,
                    Peer::NextHop => Direction::FromNextHop,
                },
                gateway: peer.gateway().unwrap_or("").to_string(),
                media: None,
                result: limit.to_string(),
            });
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
        // An extension the caller requires and we do not implement (RFC 3261 §8.2.2.3).
        if self.refused_extensions(conn, msg) {
            self.reports.push_back(Report::Call {
                direction,
                gateway,
                media: None,
                result: "refused".to_string(),
            });
            return;
        }
        let timer_answer = session_timer::as_uas(
            session_timer::SessionExpires::of(msg.view()),
            msg.view().supports("timer"),
            (direction == Direction::FromGateway)
                .then(|| self.session_timer_for(&gateway))
                .flatten(),
            now,
        );
        if timer_answer == UasAnswer::TooSmall {
            let tag = self.token(10);
            let reply = invite
                .respond(422, "Session Interval Too Small", &tag)
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
            this.reports.push_back(Report::Call {
                direction,
                gateway: gateway.clone(),
                media: None,
                result: result.to_string(),
            });
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

        // The caller's leg: the encryption rules on its offer.
        let gateway_leg = direction == Direction::FromGateway;
        let suites = self.cfg.suites_for(gateway_leg.then_some(gateway.as_str()));
        let offered_key = sdp::choose_crypto(&audio.crypto, suites).cloned();
        let facts = policy::Facts::gather(
            self.toward(gateway_leg, &gateway),
            peer.is_verified_mtls(),
            SdpRole::Offer,
            &audio,
            offered_key.is_some(),
        );
        if facts.keys_over_plain > 0 {
            let (reason, over) = match peer.signalling {
                Signalling::Udp => ("plain_udp", "UDP"),
                _ => ("plain_tcp", "TCP"),
            };
            self.reports.push_back(Report::SdesKeysIgnored {
                reason,
                count: facts.keys_over_plain as u64,
            });
            tracing::warn!(
                gateway,
                "SDES keys offered over plain {over} ignored and never used"
            );
        }
        let a_decision = policy::decide(&facts);
        if let Decision::Refuse(refusal) = a_decision {
            if gateway_leg {
                self.count_decision(&gateway, a_decision);
            }
            return refuse(
                self,
                refusal.code(),
                "Not Acceptable Here",
                refusal.why(),
                "refused",
            );
        }
        let chosen = offered_key.filter(|_| facts.peer_srtp == PeerSrtp::Offered);

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
            history: msg
                .headers()
                .iter()
                .filter(|h| {
                    HISTORY.iter().any(|n| n.eq_ignore_ascii_case(h.name()))
                        && !self.cfg.passes(h.name())
                })
                .map(|h| h.raw().to_string())
                .collect(),
        };
        let (b, invite_b) = self.b_leg(direction, &gateway, &offer, b_port, &callee, true);
        let (local_tag, sdp_session, rng) =
            (self.token(10), self.sdp_session_id(), self.call_rng());
        let a = ALeg {
            conn,
            call_id: s.call_id.clone(),
            remote_tag: s.from_tag().unwrap_or_default().to_string(),
            local_tag,
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
            sdp_session,
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
            started: now,
            media_started: false,
            early_answer: None,
            b_answer: None,
            on_hold: false,
            span: span.clone(),
            callee,
            alternates,
            relayed: None,
            in_dialog: Vec::new(),
            rng,
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
        self.calls.insert(id, Box::new(call));
        self.timers
            .set(Timer::Answer(id), now + self.cfg.answer_timeout);
        self.arm_failover(now, id);
    }

    /// The callee's leg toward `gateway` (or the next hop, for calls from a gateway) and its
    /// INVITE: a new dialog (Call-ID, tag, branch), our port `b_port`, and an offer with fresh
    /// keys when the policy allows SRTP there and `srtp_allowed`.
    pub(super) fn b_leg(
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
        let gateway_leg = direction == Direction::FromNextHop;
        let target = match direction {
            Direction::FromGateway => Target {
                peer: Peer::NextHop,
                address: self.cfg.next_hop_address.clone(),
                tls_identity: Some(self.cfg.next_hop_identity.clone()),
                family: IpFamily::of(ours),
            },
            Direction::FromNextHop => {
                let g = self
                    .gateway_config(gateway)
                    .expect("routed to a configured gateway");
                Target {
                    peer: Peer::Gateway(g.name.clone()),
                    address: g.address.clone(),
                    tls_identity: (g.transport == GatewayTransport::Tls)
                        .then(|| g.identity.clone().unwrap_or_default()),
                    family: IpFamily::of(ours),
                }
            }
        };
        // Keys go only where the policy allows: the connection will be verified MTLS, or fail.
        let offers_srtp = srtp_allowed
            && policy::offers_srtp(
                self.toward(gateway_leg, gateway),
                target.tls_identity.is_some(),
            );
        let offered = if offers_srtp {
            sdp::offer_crypto(self.cfg.suites_for(gateway_leg.then_some(gateway)))
        } else {
            Vec::new()
        };
        // Toward a gateway with `srtp_offer_style = "avp-crypto"`: Lync's way.
        let lync_style = self
            .gateway_config(gateway)
            .filter(|g| gateway_leg && g.srtp_offer_style == SrtpOfferStyle::AvpCrypto)
            .map(|g| {
                if g.srtp == SrtpMode::Required {
                    sdp::Encryption::Required
                } else {
                    sdp::Encryption::Optional
                }
            });
        let lync_style = lync_style.filter(|_| offers_srtp);
        let sdp_session = self.sdp_session_id();
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
        // The trunk's number rules, on the way to the gateway or from it.
        let trunk = self.gateway_config(gateway);
        let rule_direction = match direction {
            Direction::FromGateway => RuleDirection::FromGateway,
            Direction::FromNextHop => RuleDirection::ToGateway,
        };
        let number = |kind, n: &str| match trunk {
            Some(g) => numbers::translate(g, kind, rule_direction, n),
            None => n.to_string(),
        };
        let (user, caller) = (
            number(NumberKind::Called, &callee.user),
            number(NumberKind::Calling, &callee.caller),
        );
        if (&user, &caller) != (&callee.user, &callee.caller) {
            tracing::info!(
                gateway,
                called = %user,
                calling = %caller,
                "numbers translated by the trunk's rules"
            );
        }
        let history = trunk.is_some_and(|g| g.forward_history);
        let local_tag = self.token(10);
        let host = AddressList::sip_host(ours);
        let (call_id, branch) = (format!("{}@{host}", self.token(20)), self.branch());
        let b = BLeg {
            conn: self.conn_to(&target),
            call_id,
            from: format!("<sip:{caller}@{host}>;tag={local_tag}"),
            local_tag,
            remote_tag: None,
            uri: format!(
                "sip:{user}@{};transport={transport}{}",
                target.address,
                if callee.phone && self.user_phone_toward(&target.peer) {
                    ";user=phone"
                } else {
                    ""
                }
            ),
            branch,
            to: format!("<sip:{user}@{}>", target.address),
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
            early_dialog: None,
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
        let history = callee.history.iter().filter(|_| history);
        for field in callee.passed.iter().chain(history) {
            invite = invite.raw_header(field.clone());
        }
        (b, invite.sdp(body).encode())
    }
}
