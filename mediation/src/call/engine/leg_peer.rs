//! Which leg of a call a message belongs to, and whether its sender may act on that leg: a
//! dialog's Call-ID and tags are no secret, so only the leg's own peer counts.

use super::super::legs::Side;
use super::{Engine, PortAllocator};
use crate::peer::{ConnId, Peer, Signalling};
use crate::sip::View;

impl<P: PortAllocator> Engine<P> {
    /// Whether a message for call `id`'s leg `side` came from that leg's own peer: its
    /// connection, or another connection of the same configured peer at the same signalling
    /// level (a gateway that opens a new connection, another UDP port). A dialog's Call-ID and
    /// tags are no secret to a peer that saw them; they do not let another peer act on it, and
    /// our answers (with SDES keys) go only where the leg's own peer is.
    pub(super) fn is_leg_peer(&self, id: u64, side: Side, conn: ConnId) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let leg_conn = call.conn(side);
        if conn == leg_conn {
            return true;
        }
        let expected = if call.is_gateway_leg(side) {
            Peer::Gateway(call.gateway.clone())
        } else {
            Peer::NextHop
        };
        // The level, not the TLS version: a peer may reconnect with TLS 1.2 after 1.3.
        let level = |s: Signalling| std::mem::discriminant(&s);
        let leg_level = self.conns.get(&leg_conn).map(|p| level(p.signalling));
        self.conns.get(&conn).is_some_and(|p| {
            p.peer == expected && leg_level.is_none_or(|l| l == level(p.signalling))
        })
    }

    /// The leg a message of call `id` belongs to: the callee's (B) when it carries our B-leg
    /// Call-ID.
    pub(super) fn side_of(&self, id: u64, s: &View) -> Side {
        match self.calls.get(&id) {
            Some(c) if c.b.call_id == s.call_id => Side::Callee,
            _ => Side::Caller,
        }
    }
}
