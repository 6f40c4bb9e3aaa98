//! Receive-side media statistics, pure maths: loss, duplicates and reordering by marker sequence,
//! RFC 3550 §6.4.1 interarrival jitter, and one-way latency percentiles.

/// Sequences above this are not tracked (about 93 hours of 20 ms packets); bounds memory when a
/// peer sends garbage that happens to carry our magic.
pub const MAX_TRACKED_SEQUENCE: u32 = 1 << 24;

/// RFC 3550 §6.4.1 interarrival jitter, with both clocks in microseconds.
///
/// "If Si is the RTP timestamp from packet i, and Ri is the time of arrival in RTP timestamp
/// units for packet i, then for two packets i and j, D may be expressed as
/// D(i,j) = (Rj - Ri) - (Sj - Si)" and "J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16".
///
/// The send time is the marker's (µs since the epoch), not the RTP timestamp, because a relay may
/// rewrite RTP timestamps; the estimator is the same. Packets are taken in arrival order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    previous: Option<(i64, i64)>,
    /// Current estimate in µs (kept as f64, the RFC's integer shift is only an optimization).
    estimate_us: f64,
}

impl Jitter {
    /// Takes one packet: when it was sent and when it arrived, both in µs on the same clock.
    pub fn update(&mut self, sent_us: i64, arrived_us: i64) {
        if let Some((prev_sent, prev_arrived)) = self.previous {
            let d = (arrived_us - prev_arrived) - (sent_us - prev_sent);
            self.estimate_us += ((d.abs() as f64) - self.estimate_us) / 16.0;
        }
        self.previous = Some((sent_us, arrived_us));
    }

    /// The current jitter estimate in milliseconds.
    pub fn millis(&self) -> f64 {
        self.estimate_us / 1000.0
    }
}

/// The `p`th percentile (0..=100) of `sorted` by the nearest-rank method; `None` when empty.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Counts over the packets of one stream, keyed by marker sequence.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
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
}

/// What [`ReceiveStats::record`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
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
    pub fn record(&mut self, sequence: u32, sent_us: u64, arrived_us: u64) -> Arrival {
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

    /// Distinct packets received.
    pub fn received(&self) -> u64 {
        self.unique
    }

    /// Packets that repeated a sequence already received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets that arrived after a later one.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Sequences from 0 up to the highest received that never arrived. (Packets lost after the
    /// last one received cannot be told from packets never sent.)
    pub fn lost(&self) -> u64 {
        match self.highest {
            Some(h) => (u64::from(h) + 1).saturating_sub(self.unique),
            None => 0,
        }
    }

    /// RFC 3550 interarrival jitter in ms; `None` before two packets.
    pub fn jitter_ms(&self) -> Option<f64> {
        (self.unique >= 2).then(|| self.jitter.millis())
    }

    /// Latency percentiles (p50, p99) in ms; `None` when nothing was received.
    pub fn latency_ms(&self) -> Option<(f64, f64)> {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let p50 = percentile(&sorted, 50.0)?;
        let p99 = percentile(&sorted, 99.0)?;
        Some((p50 as f64 / 1000.0, p99 as f64 / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
