//! Packet indices and replay protection (RFC 3711 §3.3.1, §3.3.2 and Appendix A).
//!
//! An SRTP packet carries only the low 16 bits of its 48-bit index `i = 2^16 * ROC + SEQ`; the
//! receiver guesses the rollover counter from the highest index it has authenticated. A
//! [`ReplayBitmap`] remembers which of the last `window` indices were accepted; it serves SRTP
//! and SRTCP receivers and, with a fixed size, senders (never two packets at one index).

/// The largest SRTP packet index, 2^48 - 1.
pub(crate) const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// The index of a packet with sequence number `seq`, given the highest index `highest`
/// accepted so far in its stream (RFC 3711 Appendix A), or `None` if that would be before
/// index 0 (a packet from before the stream started, which can only be a replay).
///
/// ```text
/// if (s_l < 32768)
///     if (SEQ - s_l > 32768) v = ROC - 1 else v = ROC
/// else
///     if (s_l - 32768 > SEQ) v = ROC + 1 else v = ROC
/// return SEQ + v * 65536
/// ```
pub(crate) fn estimate_index(highest: u64, seq: u16) -> Option<u64> {
    let roc = highest >> 16;
    let s_l = (highest & 0xFFFF) as u32;
    let seq32 = u32::from(seq);
    let v = if s_l < 32768 {
        if seq32 > s_l && seq32 - s_l > 32768 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - 32768 > seq32 {
        roc + 1
    } else {
        roc
    };
    Some((v << 16) | u64::from(seq))
}

/// Which of the `window` indices up to the highest accepted one were accepted.
///
/// A ring of bits: index `i` lives at bit `i mod window`. Made once per stream (at most
/// [`MAX_SSRCS`](super::ssrcs::MAX_SSRCS) of them), never resized.
#[derive(Debug, Clone)]
pub(crate) struct ReplayBitmap {
    highest: Option<u64>,
    bits: Box<[u64]>,
}

/// Why an index cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Accepted before.
    Duplicate,
    /// Older than the window: cannot tell, so refused (RFC 3711 §3.3.2).
    TooOld,
}

impl ReplayBitmap {
    /// A window of `window` packets, a multiple of 64 (see [`ReplayWindow`](super::ReplayWindow)).
    pub(crate) fn new(window: usize) -> Self {
        Self {
            highest: None,
            bits: vec![0u64; window.div_ceil(64).max(1)].into_boxed_slice(),
        }
    }

    fn window(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    /// The highest index accepted, if any.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn bit(&self, index: u64) -> (usize, u64) {
        let at = index % self.window();
        ((at / 64) as usize, 1u64 << (at % 64))
    }

    /// Whether `index` may be accepted. Changes nothing.
    pub(crate) fn check(&self, index: u64) -> Result<(), Seen> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if index > highest {
            return Ok(());
        }
        if highest - index >= self.window() {
            return Err(Seen::TooOld);
        }
        let (word, mask) = self.bit(index);
        if self.bits[word] & mask != 0 {
            Err(Seen::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `index` as accepted. Call only after [`ReplayBitmap::check`] passed.
    pub(crate) fn accept(&mut self, index: u64) {
        match self.highest {
            Some(highest) if index <= highest => {}
            Some(highest) if index - highest < self.window() => {
                // Forget the indices the window slides past: they share bits with the new ones.
                for skipped in highest + 1..index {
                    let (word, mask) = self.bit(skipped);
                    self.bits[word] &= !mask;
                }
                self.highest = Some(index);
                let (word, mask) = self.bit(index);
                self.bits[word] &= !mask;
            }
            _ => {
                self.bits.fill(0);
                self.highest = Some(index);
            }
        }
        let (word, mask) = self.bit(index);
        self.bits[word] |= mask;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_a_estimation() {
        // Same ROC, ahead and behind.
        assert_eq!(estimate_index(100, 101), Some(101));
        assert_eq!(estimate_index(100, 50), Some(50));
        // Wrap forward: highest 65535, next 0 has ROC 1.
        assert_eq!(estimate_index(65535, 0), Some(65536));
        assert_eq!(estimate_index(65530, 3), Some(65536 + 3));
        // A late packet from before the wrap after it.
        assert_eq!(estimate_index(65536 + 2, 65534), Some(65534));
        // Before index 0: refused.
        assert_eq!(estimate_index(5, 65000), None);
        // Far in ROC.
        let h = (7u64 << 16) | 40000;
        assert_eq!(estimate_index(h, 7000), Some((8 << 16) | 7000));
        assert_eq!(estimate_index(h, 8000), Some((7 << 16) | 8000));
        // Exactly half the space away stays in the same ROC (the RFC's strict comparisons).
        assert_eq!(estimate_index(0, 32768), Some(32768));
        assert_eq!(estimate_index(32768, 0), Some(0));
    }

    #[test]
    fn bitmap_accepts_once_and_refuses_old() {
        let mut w = ReplayBitmap::new(128);
        for i in [10u64, 12, 11] {
            assert_eq!(w.check(i), Ok(()));
            w.accept(i);
            assert_eq!(w.check(i), Err(Seen::Duplicate));
        }
        w.accept(10 + 127);
        assert_eq!(w.check(10), Err(Seen::Duplicate), "127 behind, still known");
        assert_eq!(w.check(13), Ok(()));
        w.accept(12 + 128);
        assert_eq!(w.check(12), Err(Seen::TooOld));
        assert_eq!(w.check(13), Ok(()), "slid past but not yet too old");
        w.accept(1_000_000);
        assert_eq!(w.check(1_000_000 - 127), Ok(()));
        assert_eq!(w.check(1_000_000 - 128), Err(Seen::TooOld));
    }

    #[test]
    fn bitmap_matches_a_naive_model() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for window in [64usize, 128, 1024] {
            let mut w = ReplayBitmap::new(window);
            let mut seen = std::collections::BTreeSet::new();
            let mut highest = 0u64;
            for _ in 0..20_000 {
                let jump = next() % 300;
                let index = if next() % 3 == 0 {
                    highest + jump
                } else {
                    highest.saturating_sub(jump)
                };
                let want = if seen.is_empty() || index > highest {
                    Ok(())
                } else if highest - index >= window as u64 {
                    Err(Seen::TooOld)
                } else if seen.contains(&index) {
                    Err(Seen::Duplicate)
                } else {
                    Ok(())
                };
                assert_eq!(w.check(index), want, "{window}: {index} vs {highest}");
                if want.is_ok() {
                    w.accept(index);
                    seen.insert(index);
                    highest = highest.max(index);
                }
            }
        }
    }
}
