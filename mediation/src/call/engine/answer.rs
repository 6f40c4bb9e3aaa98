//! The callee's answers to our INVITE: provisional responses (forks as early dialogs, early
//! media), failures (relayed, or failover and the retry without SRTP), and the 2xx: the
//! encryption rules on the callee's answer, our answer to the caller, and the media started.

use std::time::{Duration, Instant};

use super::super::legs::{Direction, Phase, Side};
use super::super::media_plan::{self, LegPlan};
use super::super::policy::{self, Decision, SdpRole};
use super::super::report::Report;
use super::super::session_timer::{self, LegSession, UasAnswer};
use super::timers::Timer;
use super::{Engine, MediaCommand, Output, PortAllocator};
use crate::peer::ConnId;
use crate::sdp;
use crate::sip::{Message, View, ALLOW};

/// How long the caller has to acknowledge our 2xx (64*T1, RFC 3261 §13.3.1.4).
const ACK_TIMEOUT: Duration = Duration::from_secs(32);

/// The outcome of negotiating the callee's answer.
struct Negotiated {
    /// The SDP answer for the caller.
    a_sdp: String,
    /// The relay plan.
    plans: Result<[LegPlan; 2], String>,
    /// The callee leg's decision.
    b_decision: Decision,
}

impl<P: PortAllocator> Engine<P> {
    pub(super) fn on_provisional(
        &mut self,
        id: u64,
        code: u16,
        reason: &str,
        msg: &Message,
        s: &View,
    ) {
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
                call.b.early_tags.push(tag.clone());
            }
            // Requests we carry to the callee before its answer go to this fork, unless another
            // fork's early media is playing.
            if call.b.early_tag.as_ref().is_none_or(|t| *t == tag) {
                let contact = s.contacts.first().map(|c| c.uri_text.clone());
                call.b.early_dialog = Some((tag, contact));
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

    pub(super) fn on_failure(&mut self, now: Instant, id: u64, code: u16, reason: &str, s: &View) {
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

    pub(super) fn on_answer(&mut self, now: Instant, id: u64, msg: &Message, s: &View) {
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
                    self.take_answer_keys(id, Side::Callee, msg.body());
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
        self.reports.push_back(Report::Answered {
            direction: call.direction,
            media: call.gateway_media(),
            setup: now.saturating_duration_since(call.started),
        });
        self.count_decision(&gateway, gw_decision);
        self.count_call(id, "answered");
        self.send(a_conn, ok);
        self.timers.cancel_call(id);
        self.timers.set(Timer::Ack(id), now + ACK_TIMEOUT);
        self.arm_session_timers(now, id);
        if let Some(plans) = plans {
            self.start_media(id, plans);
        }
    }

    /// The caller's answer SDP if early media was already set up.
    pub(super) fn call_early(&self, id: u64) -> Option<String> {
        self.calls.get(&id).and_then(|c| c.early_answer.clone())
    }

    /// Starts the relay, or ends the call if its plan could not be made.
    pub(super) fn start_media(&mut self, id: u64, plans: Result<[LegPlan; 2], String>) {
        match plans {
            Ok(legs) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.media_started = true;
                    for plan in legs.iter() {
                        // Plans are gateway leg first; the gateway's leg is B when we called it.
                        let side = if (plan.label == "gateway") == call.is_gateway_leg(Side::Callee)
                        {
                            Side::Callee
                        } else {
                            Side::Caller
                        };
                        call.media_remotes[side.index()] = plan.remote_rtp;
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
                self.reports.push_back(Report::SdesKeysIgnored {
                    reason: "not_offered",
                    count: 1,
                });
            }
            None
        } else {
            sdp::match_answer(&call.b.offered, &audio.crypto).ok()
        };
        // The callee's leg: the encryption rules on its answer.
        let facts = policy::Facts::gather(
            self.toward(call.is_gateway_leg(Side::Callee), &call.gateway),
            b_peer_is_tls,
            SdpRole::Answer,
            &audio,
            negotiated.is_some(),
        );
        let b_decision = policy::decide(&facts);
        if let Decision::Refuse(refusal) = b_decision {
            return Err((refusal.why().to_string(), Some(b_decision)));
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
    pub(super) fn fail_after_answer(&mut self, id: u64, code: u16, reason: &str, why: &str) {
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
}
