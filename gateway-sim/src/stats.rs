//! Receive-side media statistics, pure maths: loss, duplicates and reordering by marker sequence,
//! RFC 3550 §6.4.1 interarrival jitter, one-way latency percentiles, and loss by hold segment
//! (so that packets a relay drops while a call is held are told apart from real loss).

/// Sequences above this are not tracked (about 93 hours of 20 ms packets); bounds memory when a
/// peer sends garbage that happens to carry our magic.
pub(crate) const MAX_TRACKED_SEQUENCE: u32 = 1 << 24;

/// RFC 3550 §6.4.1 interarrival jitter, with both clocks in microseconds.
///
/// "If Si is the RTP timestamp from packet i, and Ri is the time of arrival in RTP timestamp
/// units for packet i, then for two packets i and j, D may be expressed as
/// D(i,j) = (Rj - Ri) - (Sj - Si)" and "J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16".
///
/// The send time is the marker's (µs since the epoch), not the RTP timestamp, because a relay may
/// rewrite RTP timestamps; the estimator is the same. Packets are taken in arrival order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Jitter {
    previous: Option<(i64, i64)>,
    /// Current estimate in µs (kept as f64, the RFC's integer shift is only an optimization).
    estimate_us: f64,
}

impl Jitter {
    /// Takes one packet: when it was sent and when it arrived, both in µs on the same clock.
    pub(crate) fn update(&mut self, sent_us: i64, arrived_us: i64) {
        if let Some((prev_sent, prev_arrived)) = self.previous {
            let d = (arrived_us - prev_arrived) - (sent_us - prev_sent);
            self.estimate_us += ((d.abs() as f64) - self.estimate_us) / 16.0;
        }
        self.previous = Some((sent_us, arrived_us));
    }

    /// The current jitter estimate in milliseconds.
    pub(crate) fn millis(&self) -> f64 {
        self.estimate_us / 1000.0
    }
}

/// The `p`th percentile (0..=100) of `sorted` by the nearest-rank method; `None` when empty.
pub(crate) fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Counts over the packets of one stream, keyed by marker sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReceiveStats {
    /// Bit `n` set: sequence `n` was received.
    seen: Vec<u64>,
    /// Distinct sequences received.
    unique: u64,
    /// Packets that repeated an already received sequence.
    duplicates: u64,
    /// Packets that arrived after one with a higher sequence.
    reordered: u64,
    /// Highest sequence received.
    highest: Option<u32>,
    jitter: Jitter,
    /// One-way latency of every distinct packet, µs.
    latencies_us: Vec<i64>,
    /// Runs of packets between hold/resume transitions; the first starts at sequence 0.
    segments: Vec<Segment>,
}

/// Packets received between two hold/resume transitions.
#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    /// Lowest sequence of the segment (0 for the first one), `None` before its first packet.
    low: Option<u32>,
    /// Highest sequence received in it.
    high: u32,
    /// Distinct packets received in it.
    unique: u64,
    /// The call was held during it.
    held: bool,
}

impl Segment {
    /// Gaps inside the segment (a gap between segments belongs to the transition).
    fn lost(&self) -> u64 {
        match self.low {
            Some(low) if self.unique > 0 => {
                (u64::from(self.high) - u64::from(low) + 1).saturating_sub(self.unique)
            }
            _ => 0,
        }
    }
}

/// What [`ReceiveStats::record`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// First time this sequence arrived, in order.
    InOrder,
    /// First time, after a higher sequence.
    Reordered,
    /// Already received.
    Duplicate,
    /// Sequence beyond [`MAX_TRACKED_SEQUENCE`]: ignored.
    OutOfRange,
}

impl ReceiveStats {
    /// Records one received packet with a verified marker.
    pub(crate) fn record(&mut self, sequence: u32, sent_us: u64, arrived_us: u64) -> Arrival {
        if sequence >= MAX_TRACKED_SEQUENCE {
            return Arrival::OutOfRange;
        }
        let word = (sequence / 64) as usize;
        let bit = 1u64 << (sequence % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        self.segment_of(sequence).add(sequence);
        let sent = i64::try_from(sent_us).unwrap_or(i64::MAX);
        let arrived = i64::try_from(arrived_us).unwrap_or(i64::MAX);
        self.jitter.update(sent, arrived);
        self.latencies_us.push(arrived.saturating_sub(sent));
        match self.highest {
            Some(h) if sequence < h => {
                self.reordered += 1;
                Arrival::Reordered
            }
            _ => {
                self.highest = Some(sequence);
                Arrival::InOrder
            }
        }
    }

    /// The call goes on hold (`held`) or resumes: later packets open a new segment.
    pub(crate) fn start_segment(&mut self, held: bool) {
        self.ensure_first_segment();
        self.segments.push(Segment {
            held,
            ..Segment::default()
        });
    }

    fn ensure_first_segment(&mut self) {
        if self.segments.is_empty() {
            self.segments.push(Segment {
                low: Some(0),
                ..Segment::default()
            });
        }
    }

    /// The segment a new packet belongs to: the last one, unless the packet is older than
    /// that segment's first packet (late arrivals go back to the segment they were sent in).
    fn segment_of(&mut self, sequence: u32) -> &mut Segment {
        self.ensure_first_segment();
        let last = self.segments.len() - 1;
        let index = (0..=last)
            .rev()
            .find(|&i| self.segments[i].low.is_none_or(|low| low <= sequence))
            .unwrap_or(0);
        &mut self.segments[index]
    }

    /// Packets lost inside the segments where the call was not held: loss in steady state.
    pub(crate) fn lost_outside_hold(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| !s.held)
            .map(Segment::lost)
            .sum()
    }

    /// Distinct packets received.
    pub(crate) fn received(&self) -> u64 {
        self.unique
    }

    /// Packets that repeated a sequence already received.
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets that arrived after a later one.
    pub(crate) fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Sequences from 0 up to the highest received that never arrived. (Packets lost after the
    /// last one received cannot be told from packets never sent.)
    pub(crate) fn lost(&self) -> u64 {
        match self.highest {
            Some(h) => (u64::from(h) + 1).saturating_sub(self.unique),
            None => 0,
        }
    }

    /// RFC 3550 interarrival jitter in ms; `None` before two packets.
    pub(crate) fn jitter_ms(&self) -> Option<f64> {
        (self.unique >= 2).then(|| self.jitter.millis())
    }

    /// Latency percentiles (p50, p99) in ms; `None` when nothing was received.
    pub(crate) fn latency_ms(&self) -> Option<(f64, f64)> {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let p50 = percentile(&sorted, 50.0)?;
        let p99 = percentile(&sorted, 99.0)?;
        Some((p50 as f64 / 1000.0, p99 as f64 / 1000.0))
    }
}

impl Segment {
    fn add(&mut self, sequence: u32) {
        let low = *self.low.get_or_insert(sequence);
        self.low = Some(low.min(sequence));
        self.high = if self.unique == 0 {
            sequence
        } else {
            self.high.max(sequence)
        };
        self.unique += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_while_held_is_not_steady_state_loss() {
        let mut s = ReceiveStats::default();
        let take = |s: &mut ReceiveStats, seqs: std::ops::Range<u32>| {
            for seq in seqs {
                s.record(seq, 0, 0);
            }
        };
        take(&mut s, 0..10);
        s.start_segment(true);
        take(&mut s, 15..20); // 10..15 dropped around the hold
        s.start_segment(false);
        take(&mut s, 30..40); // 20..30 dropped while held
        s.record(25, 0, 0); // a late packet of the held segment
        assert_eq!(s.lost(), 14);
        assert_eq!(s.lost_outside_hold(), 0);
        s.record(42, 0, 0); // 40, 41 lost after the resume
        assert_eq!(s.lost_outside_hold(), 2);
        // Loss at the very start counts too.
        let mut fresh = ReceiveStats::default();
        fresh.record(3, 0, 0);
        assert_eq!(fresh.lost_outside_hold(), 3);
    }

    #[test]
    fn jitter_is_zero_for_a_perfect_stream() {
        let mut j = Jitter::default();
        for i in 0..100 {
            j.update(i * 20_000, 5_000 + i * 20_000);
        }
        assert_eq!(j.millis(), 0.0);
    }

    #[test]
    fn jitter_on_a_known_sequence() {
        // Sent every 20 ms; arrivals alternate +0 / +1 ms of transit: |D| = 1000 µs every time
        // after the first packet, so J(n) = 1000 * (1 - (15/16)^(n-1)).
        let mut j = Jitter::default();
        let n = 10;
        for i in 0..n {
            let extra = if i % 2 == 0 { 0 } else { 1_000 };
            j.update(i * 20_000, 3_000 + i * 20_000 + extra);
        }
        let expected = 1000.0 * (1.0 - (15.0f64 / 16.0).powi((n - 1) as i32));
        assert!(
            (j.millis() * 1000.0 - expected).abs() < 1e-9,
            "{}",
            j.millis()
        );

        // One 16 ms late packet in a perfect stream: D = 16 ms then -16 ms.
        let mut j = Jitter::default();
        j.update(0, 0);
        j.update(20_000, 36_000); // D = 16000 -> J = 1000
        j.update(40_000, 40_000); // D = -16000 -> J = 1000 + (16000 - 1000)/16 = 1937.5
        assert!((j.millis() - 1.9375).abs() < 1e-12);
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let mut s = ReceiveStats::default();
        let arrivals = [0u32, 1, 3, 2, 3, 5, 6, 6, 9];
        let kinds: Vec<Arrival> = arrivals
            .iter()
            .enumerate()
            .map(|(i, &seq)| s.record(seq, u64::from(seq) * 20_000, i as u64 * 20_000 + 500))
            .collect();
        assert_eq!(
            kinds,
            vec![
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Reordered,
                Arrival::Duplicate,
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Duplicate,
                Arrival::InOrder,
            ]
        );
        assert_eq!(s.received(), 7); // 0 1 2 3 5 6 9
        assert_eq!(s.duplicates(), 2);
        assert_eq!(s.reordered(), 1);
        assert_eq!(s.lost(), 3); // 4 7 8
        assert_eq!(s.record(MAX_TRACKED_SEQUENCE, 0, 0), Arrival::OutOfRange);
    }

    #[test]
    fn nothing_received() {
        let s = ReceiveStats::default();
        assert_eq!(s.lost(), 0);
        assert_eq!(s.jitter_ms(), None);
        assert_eq!(s.latency_ms(), None);
    }

    #[test]
    fn latency_percentiles() {
        let mut s = ReceiveStats::default();
        // Latencies 1..=100 ms.
        for i in 0..100u32 {
            let sent = u64::from(i) * 20_000;
            s.record(i, sent, sent + (u64::from(i) + 1) * 1000);
        }
        assert_eq!(s.latency_ms(), Some((50.0, 99.0)));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
