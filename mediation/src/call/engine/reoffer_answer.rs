//! A re-INVITE or UPDATE answered on its own leg: session refreshes, new SRTP keys (RFC 4568
//! §7.1.4), hold and resume that the other party need not see; glare gets 491. A re-offer
//! that changes what the other party hears goes to `reoffer_relay`. New keys in an answer are
//! taken here too.

use std::time::Instant;

use super::super::legs::{Phase, Side};
use super::super::media_plan;
use super::super::reoffer;
use super::super::session_timer::{self, UasAnswer};
use super::reoffer_relay::Reoffer;
use super::{Engine, MediaCommand, Output, PortAllocator};
use crate::peer::ConnId;
use crate::sdp::{self, CryptoAttribute};
use crate::sip::outgoing::ReceivedRequest;
use crate::sip::{Message, Method};

impl<P: PortAllocator> Engine<P> {
    /// A re-INVITE or UPDATE inside an answered call: answered on its own leg (session refresh,
    /// hold and resume); the other leg is not disturbed. Media of a held call is exempt from
    /// the media timeout.
    pub(super) fn on_reoffer(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message,
        id: u64,
        side: Side,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let ours_pending = call.session(side).pending.is_some();
        // Glare: our own re-INVITE/UPDATE on this leg is unanswered, or a re-offer is already
        // crossing the call (RFC 3261 §14.2, RFC 3311).
        if !matches!(call.phase, Phase::Answered | Phase::Confirmed)
            || ours_pending
            || call.relayed.is_some()
        {
            self.reply(conn, msg, 491, "Request Pending", None);
            return;
        }
        let gateway_leg = call.is_gateway_leg(side);
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
            let tag = self.token(10);
            let reply = r
                .respond(422, "Session Interval Too Small", &tag)
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
        let (theirs, ours_key) = call.keys(side);
        let (theirs, ours_key) = (theirs.cloned(), ours_key.cloned());
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
            .filter(|o| self.reoffer_needs_other_leg(id, side, o))
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
                    side,
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
        let version = call.our_media(side).2 + 1;
        let ours = if side == Side::Callee {
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
            if let Err(e) = self.rekey(id, side, chosen, ours) {
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
        let session = call.session_mut(side);
        session.timer = timer.map(|(t, _)| t);
        session.retry_at = None;
        let mut ok = call.reoffer_response(side, &received, 200, "OK", timer);
        if let Some(sdp) = answer {
            call.set_our_sdp(side, sdp.clone(), version);
            ok = ok.sdp(sdp);
        }
        if let Some(hold) = hold {
            call.set_hold(hold);
        }
        self.send(conn, ok.encode());
        self.follow_remote(id, side, msg.body());
        self.arm_session_timers(now, id);
    }

    /// New keys in an SDP answer on one leg (a fork's 2xx after another fork's early media, or
    /// an answer to our refresh that rekeys): the leg switches to them.
    pub(super) fn take_answer_keys(&mut self, id: u64, side: Side, body: &[u8]) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(audio) = sdp::parse(body).ok().and_then(|a| a.audio()) else {
            return;
        };
        let (offered, current) = match side {
            Side::Callee => (call.b.offered.clone(), call.b.theirs.clone()),
            Side::Caller => (call.a.ours.iter().cloned().collect(), call.a.chosen.clone()),
        };
        let Some(current) = current.filter(|_| !offered.is_empty()) else {
            return;
        };
        let Ok((ours, theirs)) = sdp::match_answer(&offered, &audio.crypto) else {
            return;
        };
        if !reoffer::has_key(&audio, &current) {
            if let Err(e) = self.rekey(id, side, theirs, ours) {
                tracing::warn!(call = id, error = %e, "new SRTP keys in an answer unusable");
            }
        }
    }

    /// Takes the new keys of one leg: remembered for later re-offers, and handed to the relay.
    pub(super) fn rekey(
        &mut self,
        id: u64,
        side: Side,
        theirs: CryptoAttribute,
        ours: CryptoAttribute,
    ) -> Result<(), String> {
        let call = self.calls.get_mut(&id).ok_or("no such call")?;
        let label = call.leg_label(side);
        let (cur_theirs, cur_ours) = match side {
            Side::Callee => (&call.b.theirs, &call.b.ours),
            Side::Caller => (&call.a.chosen, &call.a.ours),
        };
        let same = |a: &Option<CryptoAttribute>, b: &CryptoAttribute| {
            a.as_ref().is_some_and(|a| reoffer::same_key(a, b))
        };
        if same(cur_theirs, &theirs) && same(cur_ours, &ours) {
            return Ok(()); // the streams go on under the same keys (and SRTCP indices)
        }
        let protection = media_plan::srtp_keys(&ours, &theirs)?;
        match side {
            Side::Callee => (call.b.theirs, call.b.ours) = (Some(theirs), Some(ours)),
            Side::Caller => (call.a.chosen, call.a.ours) = (Some(theirs), Some(ours)),
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
}
