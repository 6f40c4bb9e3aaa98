//! Replay windows: the configured receive window (RFC 3711 §3.3.2) and the sender's own record of
//! the sequence numbers it has protected, so one key never encrypts two packets at one index.

/// How many packets behind the newest one a received packet may arrive and still be accepted
/// once. Always on: there is no way to make an SRTP context without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow(usize);

/// A replay window outside what we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "SRTP replay window of {0} packets: must be {min}..={max} (RFC 3711 §3.3.2 asks for at least 64)",
    min = ReplayWindow::MIN.0,
    max = ReplayWindow::MAX.0
)]
pub(crate) struct WindowError(pub(crate) usize);

impl ReplayWindow {
    /// The smallest window RFC 3711 §3.3.2 allows: "a minimum size of 64 is RECOMMENDED" and
    /// libsrtp refuses less.
    pub(crate) const MIN: ReplayWindow = ReplayWindow(64);
    /// The largest window (libsrtp's limit, half the 16-bit sequence space).
    pub(crate) const MAX: ReplayWindow = ReplayWindow(0x8000);
    /// Our default, libsrtp's default.
    pub const DEFAULT: ReplayWindow = ReplayWindow(128);

    /// A window of at least `packets`, rounded up to a multiple of 64.
    ///
    /// The replay bitmap is kept in 64-bit words, so the window is too.
    pub(crate) fn new(packets: usize) -> Result<Self, WindowError> {
        if !(Self::MIN.0..=Self::MAX.0).contains(&packets) {
            return Err(WindowError(packets));
        }
        Ok(Self(packets.div_ceil(64) * 64))
    }

    /// The window size in packets.
    pub(crate) fn packets(self) -> usize {
        self.0
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The sequence numbers one sender SSRC has had protected recently.
///
/// RFC 3711 §9.1: "the keystream ... MUST NOT be reused". The packet index is derived from the
/// sequence number, so a relay that protects whatever arrives on the other leg must refuse a
/// second packet with a sequence number it already protected (libsrtp does the same unless
/// `allow_repeat_tx` is set).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SentWindow {
    /// Newest sequence number protected, once one has been.
    newest: Option<u16>,
    /// Bit `n` set: `newest - n` has been protected.
    seen: u128,
}

impl SentWindow {
    /// Sequence numbers further behind the newest than this are refused.
    pub(super) const SPAN: u16 = 128;

    /// True if `sequence` has not been protected and is not too old to tell.
    pub(super) fn is_fresh(&self, sequence: u16) -> bool {
        let Some(newest) = self.newest else {
            return true;
        };
        // Distance on the 16-bit circle, as RFC 3711 Appendix A guesses the index.
        let ahead = sequence.wrapping_sub(newest) as i16;
        if ahead > 0 {
            return true;
        }
        let behind = ahead.unsigned_abs();
        behind < Self::SPAN && self.seen & (1u128 << behind) == 0
    }

    /// Records that `sequence` was protected. Call only after [`SentWindow::is_fresh`].
    pub(super) fn mark(&mut self, sequence: u16) {
        let Some(newest) = self.newest else {
            self.newest = Some(sequence);
            self.seen = 1;
            return;
        };
        let ahead = sequence.wrapping_sub(newest) as i16;
        if ahead > 0 {
            let shift = ahead.unsigned_abs();
            self.seen = if shift >= Self::SPAN {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.newest = Some(sequence);
        } else if ahead.unsigned_abs() < Self::SPAN {
            self.seen |= 1u128 << ahead.unsigned_abs();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_and_rounding() {
        assert_eq!(ReplayWindow::default().packets(), 128);
        assert_eq!(ReplayWindow::new(64).unwrap().packets(), 64);
        assert_eq!(ReplayWindow::new(100).unwrap().packets(), 128);
        assert_eq!(ReplayWindow::new(1024).unwrap().packets(), 1024);
        assert_eq!(ReplayWindow::new(63), Err(WindowError(63)));
        assert_eq!(ReplayWindow::new(0), Err(WindowError(0)));
        assert!(ReplayWindow::new(0x8001).is_err());
    }

    #[test]
    fn sent_window_refuses_repeats_and_old_packets() {
        let mut w = SentWindow::default();
        for seq in [10u16, 11, 13] {
            assert!(w.is_fresh(seq));
            w.mark(seq);
        }
        assert!(!w.is_fresh(11), "repeat");
        assert!(!w.is_fresh(13), "repeat of the newest");
        assert!(w.is_fresh(12), "late but new");
        w.mark(12);
        assert!(!w.is_fresh(12));
        w.mark(13 + 127);
        assert!(w.is_fresh(14), "127 behind, never sent");
        assert!(!w.is_fresh(13), "127 behind, sent");
        assert!(!w.is_fresh(12), "128 behind: too old to tell");
    }

    #[test]
    fn sent_window_follows_sequence_wrap() {
        let mut w = SentWindow::default();
        for seq in [65534u16, 65535, 0, 1] {
            assert!(w.is_fresh(seq), "{seq}");
            w.mark(seq);
        }
        assert!(!w.is_fresh(65535));
        assert!(!w.is_fresh(0));
        assert!(w.is_fresh(2));
        // Half the sequence space away is behind, and far too old.
        assert!(!w.is_fresh(1u16.wrapping_add(0x8000)));
    }
}
