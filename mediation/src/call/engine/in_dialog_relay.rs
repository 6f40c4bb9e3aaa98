//! Requests inside a call that the other party must see are carried across it: INFO (DTMF as
//! `application/dtmf-relay`, which many gateways send, or any other body), NOTIFY, MESSAGE and
//! OPTIONS from one party become our own request in the other leg's dialog (its Call-ID and
//! tags, our next CSeq there, our Via with a fresh branch, its Route set and remote target),
//! with the body and its Content-Type, NOTIFY's Event and Subscription-State, INFO's
//! Info-Package, Content-Disposition, and the headers `[sip] pass_headers` lets through. The
//! far party's final response becomes ours to the first request (its code, reason phrase, body
//! and Content-Type); provisional responses are not relayed.
//!
//! Several may be in flight at once on a call (up to [`MAX_IN_FLIGHT`]; beyond, `500` with
//! Retry-After), matched by our CSeq on the far leg. One not answered within 32 s (64*T1)
//! gets `408 Request Timeout` (one timer per call, `Timer::InDialog`, at the earliest
//! deadline). A far `408` or `481` is relayed like any answer and does not end the call: unlike
//! a re-offer's, it says nothing about the session (RFC 3261 §12.2.1.2 lets each party judge
//! its own dialog). When the call ends, whatever is still waiting gets `487` (§15.1.2).
//!
//! Before the answer (an early dialog), a request is carried the same way when the other
//! party has an early dialog to carry it in: from the callee, into ours with the caller (we
//! relayed its 18x with our tag); from the caller, into the callee's early dialog (the fork
//! whose early media plays, else the latest one; RFC 6086 lets INFO flow in an early dialog,
//! and a B2BUA that answered it itself would lose the DTMF of an IVR played as early media).
//! With no such dialog yet (no 18x with a To tag), or once the caller has given up, the
//! request gets `481`: there is no dialog to carry it in. Not `405`: the method is allowed.

use std::time::{Duration, Instant};

use super::super::legs::{Call, Phase, RelayedRequest, Side};
use super::timers::Timer;
use super::{Engine, PortAllocator};
use crate::peer::ConnId;
use crate::sip::outgoing::ReceivedRequest;
use crate::sip::{Message, Method, View, ALLOW};

/// How long the far party has to answer a request we carried to it (64*T1).
const IN_DIALOG_TIMEOUT: Duration = Duration::from_secs(32);

/// Requests of one call waiting for the far party at once; more get `500` and Retry-After.
const MAX_IN_FLIGHT: usize = 16;

/// Headers that describe a carried request's body or event and go with it.
const CARRIED: &[&str] = &["Content-Disposition", "Info-Package"];

/// As [`CARRIED`], for NOTIFY (RFC 6665 §8.2.1, §8.2.3).
const CARRIED_NOTIFY: &[&str] = &["Event", "Subscription-State"];

impl<P: PortAllocator> Engine<P> {
    /// An INFO, NOTIFY, MESSAGE or OPTIONS from leg `side` of call `id`: sent on as ours on
    /// the other leg, its answer awaited.
    pub(super) fn relay_in_dialog(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message,
        id: u64,
        side: Side,
    ) {
        let (Some(method), Some(request)) = (msg.method().cloned(), ReceivedRequest::of(msg))
        else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let carried_in = match call.phase {
            Phase::Answered | Phase::Confirmed => true,
            Phase::Proceeding => side == Side::Callee || call.b.early_dialog.is_some(),
            Phase::Abandoned => false,
        };
        if !carried_in {
            tracing::info!(call = id, %method, from = side.label(), "no dialog to carry it in: 481");
            return self.reply(
                conn,
                msg,
                481,
                "Call/Transaction Does Not Exist",
                Some("the other party has no dialog to carry this request in"),
            );
        }
        let tag = local_tag(call, side).to_string();
        if call.in_dialog.len() >= MAX_IN_FLIGHT {
            tracing::warn!(call = id, %method, "too many requests waiting for the other party: 500");
            let reply = request
                .respond(500, "Server Internal Error", &tag)
                .header("Retry-After", "1")
                .header(
                    "Warning",
                    "399 mediation \"too many requests of this call wait for the other party\"",
                )
                .encode();
            return self.send(conn, reply);
        }
        let event = if method == Method::Notify {
            CARRIED_NOTIFY
        } else {
            &[]
        };
        let carried: Vec<String> = msg
            .headers()
            .iter()
            .filter(|h| {
                CARRIED.iter().chain(event).any(|name| h.is(name)) || self.cfg.passes(h.name())
            })
            .map(|h| h.raw().to_string())
            .collect();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let far = side.other();
        let (mut out, cseq) = match far {
            Side::Caller => (call.a_new_request(method.as_str()), call.a.local_cseq),
            Side::Callee => (call.b_new_request(method.as_str()), call.b.local_cseq),
        };
        for field in carried {
            out = out.raw_header(field);
        }
        let out = out.body(msg.view().content_type.as_deref(), msg.body().clone());
        tracing::info!(
            call = id,
            %method,
            from = side.label(),
            cseq,
            "carried to the other party"
        );
        call.in_dialog.push(RelayedRequest {
            side,
            request: (request, conn),
            cseq: (cseq, method),
            deadline: now + IN_DIALOG_TIMEOUT,
        });
        let far_conn = call.conn(far);
        self.send(far_conn, out.encode());
        self.arm_in_dialog(id);
    }

    /// The call one of whose carried requests this response answers.
    pub(super) fn in_dialog_of(&self, s: &View) -> Option<u64> {
        let id = self.find(s, false)?;
        let call = self.calls.get(&id)?;
        call.in_dialog
            .iter()
            .any(|r| answers(call.call_id(r.side.other()), r, s))
            .then_some(id)
    }

    /// The far party answered a request we carried to it: a final response is relayed to the
    /// first party as ours; a provisional one is not.
    pub(super) fn on_in_dialog_response(&mut self, id: u64, msg: &Message) {
        let (Some(code), s) = (msg.code(), msg.view()) else {
            return;
        };
        if code < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(at) = call
            .in_dialog
            .iter()
            .position(|r| answers(call.call_id(r.side.other()), r, s))
        else {
            return;
        };
        let relayed = call.in_dialog.remove(at);
        tracing::info!(
            call = id,
            method = %relayed.cseq.1,
            code,
            "the other party's answer relayed"
        );
        self.answer_carried(id, &relayed, code, msg.reason().unwrap_or(""), Some(msg));
        self.arm_in_dialog(id);
    }

    /// The far party has not answered some of the requests we carried to it in time: `408` for
    /// each of them. The call goes on.
    pub(super) fn in_dialog_timed_out(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut call.in_dialog)
            .into_iter()
            .partition(|r| r.deadline <= now);
        call.in_dialog = waiting;
        for relayed in &due {
            tracing::warn!(
                call = id,
                method = %relayed.cseq.1,
                "the other party never answered the request we carried: 408"
            );
            self.answer_carried(id, relayed, 408, "Request Timeout", None);
        }
        self.arm_in_dialog(id);
    }

    /// The call is ending: every carried request still waiting gets `487` (RFC 3261 §15.1.2).
    pub(super) fn end_in_dialog(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        for relayed in std::mem::take(&mut call.in_dialog) {
            self.answer_carried(id, &relayed, 487, "Request Terminated", None);
        }
        self.timers.cancel(&Timer::InDialog(id));
    }

    /// Sets the call's `InDialog` timer to its earliest deadline, or cancels it.
    fn arm_in_dialog(&mut self, id: u64) {
        let next = self
            .calls
            .get(&id)
            .and_then(|c| c.in_dialog.iter().map(|r| r.deadline).min());
        self.timers.set_or_cancel(Timer::InDialog(id), next);
    }

    /// Our response to the first party's request, in its leg's dialog: `code` and `reason`,
    /// and the far party's body (with its Content-Type) when `far` is its response. A `405`
    /// keeps the far party's Allow (RFC 3261 §21.4.6); a 2xx to OPTIONS lists ours.
    fn answer_carried(
        &mut self,
        id: u64,
        relayed: &RelayedRequest,
        code: u16,
        reason: &str,
        far: Option<&Message>,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let (request, conn) = &relayed.request;
        let mut out = request.respond(code, reason, local_tag(call, relayed.side));
        if let Some(far) = far {
            let allow = far.headers_named("Allow").next();
            match (code, allow) {
                (405, Some(allow)) => out = out.raw_header(allow.raw().to_string()),
                (405, None) => out = out.header("Allow", ALLOW),
                (200..=299, _) if relayed.cseq.1 == Method::Options => {
                    out = out.header("Allow", ALLOW)
                }
                _ => {}
            }
            out = out.body(far.view().content_type.as_deref(), far.body().clone());
        }
        let (conn, bytes) = (*conn, out.encode());
        self.send(conn, bytes);
    }
}

/// Our tag on leg `side` (the To tag of our responses there).
fn local_tag(call: &Call, side: Side) -> &str {
    match side {
        Side::Caller => &call.a.local_tag,
        Side::Callee => &call.b.local_tag,
    }
}

/// Whether response `s` on the far leg (Call-ID `far_call_id`) answers `relayed`.
fn answers(far_call_id: &str, relayed: &RelayedRequest, s: &View) -> bool {
    far_call_id == s.call_id && relayed.cseq.0 == s.cseq.seq && relayed.cseq.1 == s.cseq.method
}
