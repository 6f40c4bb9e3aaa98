//! Failover of an unanswered call from the next hop: the next gateway of its route after a
//! connection failure, `503`, `408` or silence (no provisional response in time), and the
//! same gateway again without SRTP when an `optional` trunk refused our SRTP offer with `488`.
//! Each attempt is a new callee leg (new dialog) replacing the old one.

use std::time::Instant;

use bytes::Bytes;

use super::super::legs::{Direction, Phase};
use super::super::report::Report;
use super::timers::Timer;
use super::{Engine, PortAllocator};
use crate::config::{IpFamily, SrtpMode};

impl<P: PortAllocator> Engine<P> {
    /// Replaces the callee's leg with a new INVITE toward `gateway` (failover, or the same
    /// gateway without SRTP); the old leg's dialog is forgotten. A gateway of another address
    /// family gets media ports of its family; false (nothing changed) when there are none.
    pub(super) fn replace_b_leg(
        &mut self,
        now: Instant,
        id: u64,
        gateway: &str,
        srtp_allowed: bool,
    ) -> bool {
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
    pub(super) fn arm_failover(&mut self, now: Instant, id: u64) {
        let more = self
            .calls
            .get(&id)
            .is_some_and(|c| !c.alternates.is_empty());
        self.timers.set_or_cancel(
            Timer::Failover(id),
            more.then(|| now + self.cfg.failover_timeout),
        );
    }

    /// Moves an unanswered call to its next gateway, if it has one; true when it did.
    pub(super) fn fail_over(&mut self, now: Instant, id: u64, why: &str) -> bool {
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
        self.reports.push_back(Report::Failover { gateway: from });
        true
    }

    /// A gateway with `srtp = "optional"` refused our SRTP offer (488): acknowledge it and offer
    /// plain RTP instead, in a new INVITE (RFC 3261 §8.1.3.5 leaves a new request after a
    /// failure to the UAC). True when retried.
    pub(super) fn retry_without_srtp(&mut self, now: Instant, id: u64, ack: Bytes) -> bool {
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
}
