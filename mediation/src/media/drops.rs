//! Why the relay drops a packet: the reasons, their `reason` label values on
//! `media_packets_dropped_total`, and the reason for each SRTP error. Shared by a leg's counters
//! and the metrics registry, which exports every reason at zero.

use crate::srtp::SrtpError;

/// Why the relay dropped a packet: the `reason` label of `media_packets_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Not RTP/RTCP, truncated, or not SRTP/SRTCP on an SRTP leg.
    Malformed,
    /// From an address other than the latched one, and not authenticated.
    UnknownSource,
    /// SRTP/SRTCP tag did not verify.
    AuthFailed,
    /// SRTP/SRTCP index already seen.
    Replay,
    /// SRTP/SRTCP index older than the replay window.
    TooOld,
    /// Toward an SRTP leg: a sequence number we already protected (would reuse keystream).
    Duplicate,
    /// More SSRCs than one SRTP context keeps state for.
    TooManySsrcs,
    /// The leg's SRTP key has protected all it may; new keys are needed.
    KeyExhausted,
    /// Nowhere to send: no address in SDP and no packet from the peer yet.
    NoDestination,
    /// The socket refused the datagram (buffer full, unreachable network).
    SendFailed,
}

impl DropReason {
    /// Every reason, to export the counters at zero.
    pub(crate) const ALL: [DropReason; 10] = [
        DropReason::Malformed,
        DropReason::UnknownSource,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::TooOld,
        DropReason::Duplicate,
        DropReason::TooManySsrcs,
        DropReason::KeyExhausted,
        DropReason::NoDestination,
        DropReason::SendFailed,
    ];

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownSource => "unknown_source",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::TooOld => "too_old",
            DropReason::Duplicate => "duplicate",
            DropReason::TooManySsrcs => "too_many_ssrcs",
            DropReason::KeyExhausted => "key_exhausted",
            DropReason::NoDestination => "no_destination",
            DropReason::SendFailed => "send_failed",
        }
    }

    /// The reason for a packet that failed to unprotect (`incoming`) or protect.
    pub(crate) fn from_srtp(error: SrtpError, incoming: bool) -> Self {
        match error {
            SrtpError::AuthFailed => DropReason::AuthFailed,
            SrtpError::Replay if incoming => DropReason::Replay,
            SrtpError::Replay => DropReason::Duplicate,
            SrtpError::TooOld => DropReason::TooOld,
            SrtpError::Malformed(_) => DropReason::Malformed,
            SrtpError::TooManySsrcs => DropReason::TooManySsrcs,
            SrtpError::KeyExhausted => DropReason::KeyExhausted,
        }
    }

    /// Its place in [`DropReason::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_list() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }
}
