//! Session timers in a call (RFC 4028): when to look at a leg's timer next, sending our own
//! refresh (UPDATE, or re-INVITE where the peer does not allow UPDATE), recognising the answer
//! to it, and ending a call whose refresh failed or never came.

use std::time::{Duration, Instant};

use rand::Rng;

use super::super::legs::Side;
use super::super::session_timer::{self, Due, Pending};
use super::timers::Timer;
use super::{Engine, PortAllocator};
use crate::sip::{Message, View, ALLOW};

/// How long our session refresh may go unanswered before it counts as 408.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(32);

/// When a refresh refused for another reason is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

impl<P: PortAllocator> Engine<P> {
    /// Schedules the next look at a call's session timers: the earliest of its legs'.
    pub(super) fn arm_session_timers(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let at = [&call.a.session, &call.b.session]
            .into_iter()
            .filter_map(|leg| match leg.due(now) {
                Due::Wait(at) => at,
                Due::Refresh | Due::Expired => Some(now),
            })
            .min();
        self.timers.set_or_cancel(Timer::Session(id), at);
    }

    /// Refreshes legs whose turn it is; ends the call when a leg's session expired.
    pub(super) fn run_session_timers(&mut self, now: Instant, id: u64) {
        // A re-offer crossing the call holds back refreshes until it is answered (its answer
        // re-arms them).
        if self.calls.get(&id).is_none_or(|c| c.relayed.is_some()) {
            return;
        }
        for side in [Side::Caller, Side::Callee] {
            let Some(call) = self.calls.get(&id) else {
                return;
            };
            let leg = call.session(side);
            match leg.due(now) {
                Due::Expired => {
                    tracing::warn!(
                        call = id,
                        leg = side.label(),
                        "session timer expired without a refresh: ending the call"
                    );
                    self.count_call(id, "session_expired");
                    self.end_now(now, id, "session_expired");
                    return;
                }
                Due::Refresh => self.send_refresh(now, id, side),
                Due::Wait(_) => {}
            }
        }
        self.arm_session_timers(now, id);
    }

    /// Our session refresh on one leg: UPDATE without SDP when the peer allows it, else a
    /// re-INVITE repeating the SDP we last sent (same version: no change, RFC 3264 §8).
    pub(super) fn send_refresh(&mut self, now: Instant, id: u64, side: Side) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let session = call.session(side);
        let Some(timer) = session.timer else {
            return;
        };
        let method = if session.allows_update {
            "UPDATE"
        } else {
            "INVITE"
        };
        let (request, conn, contact, sdp, cseq) = if side == Side::Callee {
            let r = call.b_new_request(method);
            let b = &call.b;
            (
                r,
                b.conn,
                b.local.contact.clone(),
                Some(b.last_sdp.clone()),
                b.local_cseq,
            )
        } else {
            let r = call.a_new_request(method);
            let a = &call.a;
            (
                r,
                a.conn,
                a.local.contact.clone(),
                a.last_sdp.clone(),
                a.local_cseq,
            )
        };
        let mut request = request
            .header("Contact", contact)
            .header("Allow", ALLOW)
            .header("Supported", "timer")
            .header("Session-Expires", timer.header(true));
        if let (Some(sdp), "INVITE") = (sdp, method) {
            request = request.sdp(sdp);
        }
        let session = call.session_mut(side);
        session.pending = Some(Pending {
            cseq,
            method,
            deadline: now + REFRESH_TIMEOUT,
        });
        session.retry_at = None;
        tracing::debug!(call = id, method, "session refresh sent");
        self.send(conn, request.encode());
    }

    /// The call and leg whose refresh this response answers.
    pub(super) fn refresh_of(&self, s: &View) -> Option<(u64, Side)> {
        let id = self.find(s, false)?;
        let side = self.side_of(id, s);
        let session = self.calls.get(&id)?.session(side);
        session
            .pending
            .filter(|p| p.cseq == s.cseq.seq && p.method == s.cseq.method.as_str())
            .map(|_| (id, side))
    }

    /// The answer to our refresh: 2xx restarts the interval (ACKed if it was a re-INVITE;
    /// new keys in its SDP are taken); 491 tries again after a pause (RFC 3261 §14.1); UPDATE
    /// refused as unknown falls back to re-INVITE; 408 or 481 ends the call (RFC 4028 §10).
    pub(super) fn on_refresh_response(&mut self, now: Instant, id: u64, side: Side, msg: &Message) {
        let Some(code) = msg.code() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let session = call.session_mut(side);
        let Some(pending) = session.pending else {
            return;
        };
        if code < 200 {
            return;
        }
        session.pending = None;
        match code {
            200..=299 => {
                if let Some(t) = &mut session.timer {
                    t.refreshed_by_us(session_timer::SessionExpires::of(msg.view()), now);
                }
                if pending.method == "INVITE" {
                    let ack = match side {
                        Side::Callee => call.b_ack(pending.cseq),
                        Side::Caller => call.a_dialog_request("ACK", pending.cseq).encode(),
                    };
                    let conn = call.conn(side);
                    self.send(conn, ack);
                    self.take_answer_keys(id, side, msg.body());
                    self.follow_remote(id, side, msg.body());
                }
            }
            491 => {
                // We chose the Call-ID on the callee's leg: wait 2.1–4 s there, 0–2 s on the
                // caller's (RFC 3261 §14.1).
                let base = if side == Side::Callee { 2100 } else { 0 };
                let jitter = call.rng.gen_range(0..1900);
                call.session_mut(side).retry_at = Some(now + Duration::from_millis(base + jitter));
            }
            405 | 501 if pending.method == "UPDATE" => {
                session.allows_update = false;
                session.retry_at = Some(now);
            }
            408 | 481 => {
                tracing::warn!(call = id, code, "session refresh failed: ending the call");
                self.count_call(id, "session_expired");
                return self.end_now(now, id, "session_expired");
            }
            _ => session.retry_at = Some(now + REFRESH_RETRY),
        }
        self.arm_session_timers(now, id);
    }
}
