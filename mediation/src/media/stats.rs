//! Per-call relay statistics the call can read while the relay runs: packets in, out and
//! dropped per leg and when media last arrived (for a media timeout). Written only by the
//! call's media thread, so the atomics are never contended between calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One of the two legs of a relay, in the order given to `spawn_relay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first leg.
    A,
    /// The second leg.
    B,
}

impl Side {
    /// The other leg.
    pub(crate) fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// A copy of one leg's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSnapshot {
    /// Packets from the peer that passed every check (authenticated, for SRTP).
    pub packets_in: u64,
    /// Packets sent to the peer.
    pub packets_out: u64,
    /// Packets dropped on this leg, for any reason.
    pub dropped: u64,
    /// When the last packet counted in `packets_in` arrived.
    pub last_packet: Option<Instant>,
}

#[derive(Debug, Default)]
struct LegStats {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds after `RelayStats::started`, plus one; 0 = never.
    last_in_ms: AtomicU64,
}

/// Both legs' counters.
#[derive(Debug)]
pub struct RelayStats {
    started: Instant,
    legs: [LegStats; 2],
}

impl RelayStats {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            legs: Default::default(),
        }
    }

    /// A snapshot of `side`'s counters.
    pub fn leg(&self, side: Side) -> LegSnapshot {
        let leg = &self.legs[side.index()];
        let last = leg.last_in_ms.load(Ordering::Relaxed);
        LegSnapshot {
            packets_in: leg.packets_in.load(Ordering::Relaxed),
            packets_out: leg.packets_out.load(Ordering::Relaxed),
            dropped: leg.dropped.load(Ordering::Relaxed),
            last_packet: last
                .checked_sub(1)
                .map(|ms| self.started + Duration::from_millis(ms)),
        }
    }

    pub(crate) fn record_in(&self, side: Side, at: Instant) {
        let leg = &self.legs[side.index()];
        leg.packets_in.fetch_add(1, Ordering::Relaxed);
        let ms = at.saturating_duration_since(self.started).as_millis() as u64;
        leg.last_in_ms.store(ms + 1, Ordering::Relaxed);
    }

    pub(crate) fn record_out(&self, side: Side) {
        self.legs[side.index()]
            .packets_out
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_drop(&self, side: Side) {
        self.legs[side.index()]
            .dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_last_packet() {
        let stats = RelayStats::new();
        assert_eq!(stats.leg(Side::A).last_packet, None);
        let at = Instant::now() + Duration::from_millis(30);
        stats.record_in(Side::A, at);
        stats.record_out(Side::B);
        stats.record_drop(Side::B);
        let a = stats.leg(Side::A);
        assert_eq!((a.packets_in, a.packets_out, a.dropped), (1, 0, 0));
        let last = a.last_packet.unwrap();
        assert!(last <= at && at - last < Duration::from_millis(2));
        let b = stats.leg(Side::B);
        assert_eq!((b.packets_in, b.packets_out, b.dropped), (0, 1, 1));
        assert_eq!(Side::A.other(), Side::B);
    }
}
