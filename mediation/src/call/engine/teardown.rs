//! How calls end: CANCEL from the caller, BYE from either side, a call abandoned before it was
//! answered, a connection that closes under its calls, and a call ended by us (timeouts,
//! failures) with BYE on both legs.

use std::time::Instant;

use std::time::Duration;

use super::super::legs::{Phase, Side};
use super::timers::Timer;
use super::{Engine, PortAllocator};
use crate::peer::ConnId;

/// How long an abandoned call waits for the callee's final answer (64*T1).
const ABANDON_LINGER: Duration = Duration::from_secs(32);

impl<P: PortAllocator> Engine<P> {
    pub(super) fn on_cancel(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.phase != Phase::Proceeding {
            return; // too late: the 200 was sent; the caller will BYE
        }
        let r = call.a_response(487, "Request Terminated").encode();
        self.send(call.a.conn, r);
        self.count_call(id, "cancelled");
        self.abandon(now, id);
    }

    /// A BYE (already answered 200). On an answered call it ends both legs. Before the answer it
    /// ends an early dialog (RFC 3261 §15): from the caller that is a CANCEL in all but name,
    /// handled as one — 487 to its INVITE, CANCEL to the callee, whose final answer (a 2xx
    /// that crossed the CANCEL is ACKed and ended with BYE) is awaited. A callee must not send
    /// BYE before it answers (§15); one that does is taken as giving up: the caller gets 487
    /// and the callee's INVITE is cancelled the same way. Once abandoned, a BYE changes nothing.
    pub(super) fn on_bye(&mut self, now: Instant, id: u64, from: ConnId, side: Side) {
        let Some(phase) = self.calls.get(&id).map(|c| c.phase) else {
            return;
        };
        match phase {
            Phase::Answered | Phase::Confirmed => self.hang_up(id, from),
            Phase::Proceeding if side == Side::Caller => self.on_cancel(now, id),
            Phase::Proceeding => {
                tracing::info!(
                    call = id,
                    "BYE from the callee before its answer: call ended"
                );
                let call = &self.calls[&id];
                let r = call.a_response(487, "Request Terminated").encode();
                self.send(call.a.conn, r);
                self.count_call(id, "callee_bye");
                self.abandon(now, id);
            }
            Phase::Abandoned => {}
        }
    }

    /// The caller is gone before an answer: CANCEL the callee and wait for its final answer.
    pub(super) fn abandon(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.phase = Phase::Abandoned;
        let cancel = call.b_same_transaction("CANCEL", None);
        let b_conn = call.b.conn;
        self.send(b_conn, cancel);
        self.release_ports(id);
        self.timers.cancel_call(id);
        self.timers.set(Timer::Linger(id), now + ABANDON_LINGER);
    }

    /// Ends an established call: BYE to the leg that did not send `from` (both when `from`
    /// matches neither, e.g. media failure or connection loss of a third party).
    pub(super) fn hang_up(&mut self, id: u64, from: ConnId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (a_conn, b_conn) = (call.a.conn, call.b.conn);
        if call.phase == Phase::Proceeding || call.phase == Phase::Abandoned {
            // Not answered (BYE before the answer goes to `on_bye`; here: early media that
            // could not be set up): refuse the caller.
            let r = call.a_response(487, "Request Terminated").encode();
            self.send(a_conn, r);
            self.release_ports(id);
            self.remove(id);
            return;
        }
        if from != a_conn {
            let bye = call.a_request("BYE");
            self.send(a_conn, bye);
        }
        let call = self.calls.get_mut(&id).expect("present");
        if from != b_conn {
            let bye = call.b_request("BYE");
            self.send(b_conn, bye);
        }
        tracing::info!(call = id, "call ended");
        self.remove(id);
    }

    pub(super) fn on_closed(&mut self, now: Instant, conn: ConnId) {
        self.conns.remove(&conn);
        self.outbound.retain(|_, c| *c != conn);
        let probing: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, p)| p.pending.as_ref().is_some_and(|(_, c)| *c == conn))
            .map(|(name, _)| name.clone())
            .collect();
        for name in probing {
            self.probe_result(&name, false, "connection failed or closed");
        }
        let affected: Vec<(u64, bool)> = self
            .calls
            .values()
            .filter(|c| c.a.conn == conn || c.b.conn == conn)
            .map(|c| (c.id, c.a.conn == conn))
            .collect();
        for (id, caller_gone) in affected {
            let span = self.span_of(id);
            let _entered = span.enter();
            let Some(phase) = self.calls.get(&id).map(|c| c.phase) else {
                continue;
            };
            match (phase, caller_gone) {
                (Phase::Proceeding, true) => {
                    self.count_call(id, "caller_gone");
                    self.abandon(now, id);
                }
                (Phase::Proceeding, false) if self.fail_over(now, id, "connection failed") => {}
                (Phase::Proceeding, false) => {
                    tracing::info!(call = id, "connection to the callee failed or closed: 503");
                    let call = &self.calls[&id];
                    let r = call.a_response(503, "Service Unavailable").encode();
                    let conn = call.a.conn;
                    self.send(conn, r);
                    self.count_call(id, "callee_unreachable");
                    self.release_ports(id);
                    self.remove(id);
                }
                (Phase::Abandoned, _) => self.remove(id),
                (Phase::Answered | Phase::Confirmed, _) => {
                    tracing::info!(
                        call = id,
                        "a leg's connection was lost: ending the other with BYE"
                    );
                    self.count_call(id, "connection_lost");
                    self.hang_up(id, conn);
                }
            }
        }
    }

    /// Ends a call whatever its phase (shutdown, media timeout).
    pub(super) fn end_now(&mut self, now: Instant, id: u64, why: &str) {
        let span = self.span_of(id);
        let _entered = span.enter();
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        match call.phase {
            Phase::Proceeding => {
                let r = call
                    .a_response(503, "Service Unavailable")
                    .header("Warning", format!("399 mediation \"{why}\""))
                    .encode();
                self.send(call.a.conn, r);
                self.count_call(id, why);
                self.abandon(now, id);
            }
            Phase::Abandoned => self.remove(id),
            Phase::Answered | Phase::Confirmed => self.hang_up(id, ConnId(0)),
        }
    }
}
