//! Re-offers that change what the other party hears (hold and resume, a codec change) are
//! carried across the call: the re-INVITE or UPDATE on one leg becomes our own re-offer on the
//! other leg, with fresh SRTP keys there (their rollover counter starts at 0), and the far
//! party's answer becomes our answer on the first leg. Re-offers that change nothing for the
//! other party (session refreshes, new keys) stay on their leg (see `on_reoffer`).
//!
//! One re-offer crosses at a time: a re-offer from either party while one is in flight gets
//! `491 Request Pending` (RFC 3261 §14.2), and so does one that crosses ours.

use std::time::{Duration, Instant};

use super::super::legs::{RelayedOffer, Side};
use super::super::session_timer::LegTimer;
use super::timers::Timer;
use super::{Engine, PortAllocator};
use crate::peer::ConnId;
use crate::sdp::{self, CryptoAttribute, PeerSdp, Proto};
use crate::sip::outgoing::ReceivedRequest;
use crate::sip::ALLOW;
use crate::sip::{Message, Method, View};

/// How long the far party has to answer our relayed re-offer.
const RELAY_TIMEOUT: Duration = Duration::from_secs(32);

/// What a re-offer from one leg carries into [`Engine::relay_reoffer`].
pub(super) struct Reoffer<'a> {
    /// The call.
    pub id: u64,
    /// The leg it came on.
    pub side: Side,
    /// Its connection.
    pub conn: ConnId,
    /// The request.
    pub msg: &'a Message,
    /// Its SDP.
    pub offer: PeerSdp,
    /// New keys it brings: (theirs, ours).
    pub rekey: Option<(CryptoAttribute, CryptoAttribute)>,
    /// The session timer for our answer.
    pub timer: Option<(LegTimer, bool)>,
}

impl<P: PortAllocator> Engine<P> {
    /// True when the re-offer changes what the other party hears: its codecs or its hold
    /// state differ from the SDP this party sent last.
    pub(super) fn reoffer_needs_other_leg(&self, id: u64, side: Side, offer: &PeerSdp) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let last = match side {
            Side::Callee => call.b_answer.as_ref(),
            Side::Caller => Some(&call.a.offer),
        };
        match (last.and_then(PeerSdp::audio), offer.audio()) {
            (Some(last), Some(now)) => {
                last.formats != now.formats || last.is_hold() != now.is_hold()
            }
            _ => false,
        }
    }

    /// Sends our re-offer for `r` to the other leg: the offer's codecs and direction, our
    /// transport there, a fresh key of the suite in use when that leg is SRTP.
    pub(super) fn relay_reoffer(&mut self, now: Instant, r: Reoffer<'_>) {
        let Some(request) = ReceivedRequest::of(r.msg) else {
            return;
        };
        let is_update = r.msg.method() == Some(&Method::Update);
        let Some(call) = self.calls.get_mut(&r.id) else {
            return;
        };
        // The far leg: our address there, its key in use (ours), session, port, profile and SDP
        // version.
        let address = call.local(r.side.other()).address;
        let (current_key, session_id, version, port, proto, rtcp_mux, allows_update, lync_style) =
            if r.side == Side::Callee {
                let a = &call.a;
                let audio = a.offer.audio();
                (
                    a.ours.clone(),
                    a.sdp_session,
                    a.sdp_version + 1,
                    a.port,
                    audio.as_ref().map_or(Proto::Avp, |au| au.proto.clone()),
                    audio.is_some_and(|au| au.rtcp_mux),
                    a.session.allows_update,
                    None,
                )
            } else {
                let b = &call.b;
                (
                    b.ours.clone(),
                    b.sdp_session,
                    b.sdp_version + 1,
                    b.port,
                    b.srtp_proto(b.ours.is_some()),
                    false,
                    b.session.allows_update,
                    b.lync_style.filter(|_| b.ours.is_some()),
                )
            };
        let our_key = current_key.as_ref().map(sdp::answer_crypto);
        let body = sdp::leg_sdp(
            &r.offer,
            &sdp::LegSdpParams {
                session_id,
                version,
                address,
                port,
                proto,
                crypto: our_key.iter().cloned().collect(),
                rtcp_mux,
                encryption: lync_style,
            },
        );
        let method = if is_update && allows_update {
            "UPDATE"
        } else {
            "INVITE"
        };
        let (out, conn, cseq, contact) = if r.side == Side::Callee {
            let out = call.a_new_request(method);
            (
                out,
                call.a.conn,
                call.a.local_cseq,
                call.a.local.contact.clone(),
            )
        } else {
            let out = call.b_new_request(method);
            (
                out,
                call.b.conn,
                call.b.local_cseq,
                call.b.local.contact.clone(),
            )
        };
        let branch = out.via_branch().unwrap_or_default().to_string();
        let bytes = out
            .header("Contact", contact)
            .header("Allow", ALLOW)
            .sdp(body.clone())
            .encode();
        tracing::info!(
            call = r.id,
            method,
            hold = r.offer.audio().is_some_and(|a| a.is_hold()),
            "re-offer relayed to the other party"
        );
        call.relayed = Some(RelayedOffer {
            side: r.side,
            request,
            conn: r.conn,
            offer: r.offer,
            rekey: r.rekey,
            timer: r.timer,
            our_key,
            cseq,
            method,
            branch,
            sdp: (body, version),
        });
        self.send(conn, bytes);
        self.timers.set(Timer::Relay(r.id), now + RELAY_TIMEOUT);
    }

    /// The call whose relayed re-offer this response answers.
    pub(super) fn relayed_of(&self, s: &View) -> Option<u64> {
        let id = self.find(s, false)?;
        let call = self.calls.get(&id)?;
        let relayed = call.relayed.as_ref()?;
        (call.call_id(relayed.side.other()) == s.call_id
            && relayed.cseq == s.cseq.seq
            && relayed.method == s.cseq.method.as_str())
        .then_some(id)
    }

    /// The far party answered our relayed re-offer: a 2xx is acknowledged and turned into our
    /// answer to the first party (new keys taken on both legs); a failure is acknowledged and
    /// relayed with its code (408 and 481 end the call, RFC 3261 §14.1).
    pub(super) fn on_relayed_response(&mut self, now: Instant, id: u64, msg: &Message) {
        let Some(code) = msg.code() else {
            return;
        };
        if code < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(relayed) = call.relayed.take() else {
            return;
        };
        self.timers.cancel(&Timer::Relay(id));
        let far_conn = call.conn(relayed.side.other());
        let s = msg.view();
        let reason = msg.reason().unwrap_or("").to_string();
        if relayed.method == "INVITE" {
            let ack = if code < 300 {
                match relayed.side {
                    Side::Callee => call.a_dialog_request("ACK", relayed.cseq).encode(),
                    Side::Caller => call.b_ack(relayed.cseq),
                }
            } else {
                call.same_transaction_ack(
                    relayed.side.other(),
                    relayed.cseq,
                    &relayed.branch,
                    s.to_tag(),
                )
            };
            self.send(far_conn, ack);
        }
        let answer = (200..300)
            .contains(&code)
            .then(|| sdp::parse(msg.body()).ok())
            .flatten()
            .filter(|a| a.audio().is_some());
        match (code, answer) {
            (200..=299, Some(answer)) => self.answer_relayed(now, id, relayed, answer),
            (200..=299, None) => {
                tracing::warn!(call = id, "the far party's answer has no usable audio");
                self.answer_first_party(id, &relayed, 488, "Not Acceptable Here", None);
                self.arm_session_timers(now, id);
            }
            (408 | 481, _) => {
                self.answer_first_party(id, &relayed, code, &reason, None);
                self.count_call(id, "far_end_gone");
                self.end_now(now, id, "far_end_gone");
            }
            _ => {
                self.answer_first_party(id, &relayed, code, &reason, None);
                self.arm_session_timers(now, id);
            }
        }
    }

    /// The far party never answered our relayed re-offer: 408 to the first party, and the
    /// call ends (RFC 3261 §14.1).
    pub(super) fn relay_timed_out(&mut self, now: Instant, id: u64) {
        let Some(relayed) = self.calls.get_mut(&id).and_then(|c| c.relayed.take()) else {
            return;
        };
        tracing::warn!(call = id, "the far party never answered our re-offer");
        self.answer_first_party(id, &relayed, 408, "Request Timeout", None);
        self.count_call(id, "far_end_gone");
        self.end_now(now, id, "far_end_gone");
    }

    /// Our 2xx to the first party from the far party's `answer`.
    fn answer_relayed(&mut self, now: Instant, id: u64, relayed: RelayedOffer, answer: PeerSdp) {
        let far = relayed.side.other();
        // The far leg's keys: our fresh key and theirs from the answer.
        if let Some(our_key) = &relayed.our_key {
            let crypto = answer.audio().map(|a| a.crypto).unwrap_or_default();
            match sdp::match_answer(std::slice::from_ref(our_key), &crypto) {
                Ok((ours, theirs)) => {
                    if let Err(e) = self.rekey(id, far, theirs, ours) {
                        tracing::warn!(call = id, error = %e, "far party's new keys unusable");
                    }
                }
                Err(e) => tracing::warn!(call = id, error = %e, "far party's answer keys"),
            }
        }
        let our_answer_key = match relayed.rekey.clone() {
            Some((theirs, ours)) => match self.rekey(id, relayed.side, theirs, ours.clone()) {
                Ok(()) => Some(ours),
                Err(e) => {
                    tracing::warn!(call = id, error = %e, "new SRTP keys unusable");
                    return self.answer_first_party(id, &relayed, 488, "Not Acceptable Here", None);
                }
            },
            None => self
                .calls
                .get(&id)
                .and_then(|c| c.keys(relayed.side).1.cloned()),
        };
        // Either party may have moved its media: the first in its offer, the other in its answer.
        self.follow_remote_sdp(id, relayed.side, &relayed.offer);
        self.follow_remote_sdp(id, far, &answer);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let offer_audio = relayed.offer.audio();
        let (port, session_id, version) = call.our_media(relayed.side);
        let (version, address) = (version + 1, call.local(relayed.side).address);
        let ours = sdp::answer_sdp(
            &relayed.offer,
            &answer,
            &sdp::LegSdpParams {
                session_id,
                version,
                address,
                port,
                proto: offer_audio.as_ref().map_or(Proto::Avp, |a| a.proto.clone()),
                crypto: our_answer_key.into_iter().collect(),
                rtcp_mux: relayed.side == Side::Caller
                    && offer_audio.as_ref().is_some_and(|a| a.rtcp_mux),
                encryption: None,
            },
        );
        call.set_hold(offer_audio.is_some_and(|a| a.is_hold()));
        let (far_sdp, far_version) = relayed.sdp.clone();
        call.set_our_sdp(relayed.side, ours.clone(), version);
        call.set_our_sdp(far, far_sdp, far_version);
        if relayed.side == Side::Callee {
            call.b_answer = Some(relayed.offer.clone());
            call.a.offer = answer;
        } else {
            call.a.offer = relayed.offer.clone();
            call.b_answer = Some(answer);
        }
        // Both legs' sessions were just refreshed.
        for session in [&mut call.a.session, &mut call.b.session] {
            if let Some(t) = &mut session.timer {
                t.refreshed_at = now;
            }
        }
        call.session_mut(relayed.side).timer = relayed.timer.map(|(t, _)| t);
        self.answer_first_party(id, &relayed, 200, "OK", Some(ours));
        self.arm_session_timers(now, id);
    }

    /// Answers the first party's re-offer.
    pub(super) fn answer_first_party(
        &mut self,
        id: u64,
        r: &RelayedOffer,
        code: u16,
        reason: &str,
        sdp: Option<String>,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let mut out = call.reoffer_response(r.side, &r.request, code, reason, r.timer);
        if let Some(sdp) = sdp {
            out = out.sdp(sdp);
        }
        self.send(r.conn, out.encode());
    }
}
