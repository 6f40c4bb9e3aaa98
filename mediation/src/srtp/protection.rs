//! How media on one leg is protected: plain RTP, or SRTP with our key (what we send) and the
//! peer's (what it sends). The call layer decides it and the relay applies it; both take it
//! from here, so neither imports the other.

use super::MasterKey;

/// How media on one leg is protected.
#[derive(Debug)]
pub enum Protection {
    /// Plain RTP/RTCP: nothing is authenticated (docs/design.md §2 says when that is allowed).
    Rtp,
    /// SRTP/SRTCP with SDES keys.
    Srtp {
        /// Ours, sent in our `a=crypto`: protects what we send on this leg.
        tx: MasterKey,
        /// Theirs, from the peer's `a=crypto`: unprotects what the peer sends.
        rx: MasterKey,
    },
}

impl Protection {
    /// `srtp` or `rtp`, the `protection` label of `media_packets_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Protection::Rtp => "rtp",
            Protection::Srtp { .. } => "srtp",
        }
    }
}
