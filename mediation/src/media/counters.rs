//! One leg's media metrics (docs/design.md §5), label values resolved once per call. Packets are
//! tallied on the call's media thread and added to the shared Prometheus counters about once a
//! second, so calls on different cores do not contend on one atomic for every packet.

use prometheus::IntCounter;

use super::drops::DropReason;
use crate::metrics::Metrics;
use crate::srtp::SrtpError;

/// A counter handle and what has not been added to it yet.
#[derive(Debug)]
struct Tally {
    counter: IntCounter,
    pending: u64,
}

impl Tally {
    fn new(counter: IntCounter) -> Self {
        Self {
            counter,
            pending: 0,
        }
    }

    fn flush(&mut self) {
        if self.pending > 0 {
            self.counter.inc_by(std::mem::take(&mut self.pending));
        }
    }
}

/// The metrics of one leg of one call.
#[derive(Debug)]
pub(super) struct LegCounters {
    packets_in: Tally,
    packets_out: Tally,
    bytes_in: Tally,
    bytes_out: Tally,
    auth_failures: Tally,
    replays: Tally,
    dropped: [Tally; DropReason::ALL.len()],
}

impl LegCounters {
    /// Resolves the label values for leg `leg` whose media is `protection` (`srtp`/`rtp`).
    pub(super) fn new(metrics: &Metrics, leg: &str, protection: &str) -> Self {
        let packets = |direction| {
            Tally::new(
                metrics
                    .media_packets
                    .with_label_values(&[leg, protection, direction]),
            )
        };
        let bytes = |direction| {
            Tally::new(
                metrics
                    .media_bytes
                    .with_label_values(&[leg, protection, direction]),
            )
        };
        Self {
            packets_in: packets("in"),
            packets_out: packets("out"),
            bytes_in: bytes("in"),
            bytes_out: bytes("out"),
            auth_failures: Tally::new(metrics.srtp_auth_failures.with_label_values(&[leg])),
            replays: Tally::new(metrics.srtp_replay_drops.with_label_values(&[leg])),
            dropped: DropReason::ALL.map(|reason| {
                Tally::new(
                    metrics
                        .media_dropped
                        .with_label_values(&[leg, reason.label()]),
                )
            }),
        }
    }

    /// A packet from the peer passed every check.
    pub(super) fn packet_in(&mut self, bytes: usize) {
        self.packets_in.pending += 1;
        self.bytes_in.pending += bytes as u64;
    }

    /// A packet went to the peer.
    pub(super) fn packet_out(&mut self, bytes: usize) {
        self.packets_out.pending += 1;
        self.bytes_out.pending += bytes as u64;
    }

    /// A packet was dropped.
    pub(super) fn dropped(&mut self, reason: DropReason) {
        self.dropped[reason.index()].pending += 1;
    }

    /// A packet from the peer failed to unprotect: `srtp_auth_failures_total` and
    /// `srtp_replay_drops_total` count these whatever the drop reason recorded.
    pub(super) fn unprotect_failed(&mut self, error: SrtpError) {
        match error {
            SrtpError::AuthFailed => self.auth_failures.pending += 1,
            SrtpError::Replay | SrtpError::TooOld => self.replays.pending += 1,
            _ => {}
        }
    }

    /// Adds everything tallied to the Prometheus counters.
    pub(super) fn flush(&mut self) {
        self.packets_in.flush();
        self.packets_out.flush();
        self.bytes_in.flush();
        self.bytes_out.flush();
        self.auth_failures.flush();
        self.replays.flush();
        self.dropped.iter_mut().for_each(Tally::flush);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_on_flush_only() {
        let metrics = Metrics::new();
        let mut c = LegCounters::new(&metrics, "gateway", "srtp");
        c.packet_in(172);
        c.dropped(DropReason::UnknownSource);
        c.unprotect_failed(SrtpError::AuthFailed);
        let series = |m: &Metrics| {
            (
                m.media_packets
                    .with_label_values(&["gateway", "srtp", "in"])
                    .get(),
                m.media_dropped
                    .with_label_values(&["gateway", "unknown_source"])
                    .get(),
                m.srtp_auth_failures.with_label_values(&["gateway"]).get(),
                m.media_bytes
                    .with_label_values(&["gateway", "srtp", "in"])
                    .get(),
            )
        };
        assert_eq!(series(&metrics), (0, 0, 0, 0));
        c.flush();
        assert_eq!(series(&metrics), (1, 1, 1, 172));
        c.flush();
        assert_eq!(series(&metrics), (1, 1, 1, 172));
    }
}
