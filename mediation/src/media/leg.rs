//! What the relay needs to know about one call leg: its sockets, where its peer said to send
//! media, and whether that media is SRTP (with which keys) or plain RTP.

use std::net::SocketAddr;

use super::ports::LegSockets;
use crate::config::MediaSources;
pub use crate::srtp::Protection;
use crate::srtp::ReplayWindow;

/// One leg of a call, as the relay takes it.
#[derive(Debug)]
pub struct LegMedia {
    /// `gateway` or `next_hop`: the `leg` label of the media metrics.
    pub(crate) label: &'static str,
    /// Our sockets for this leg.
    pub sockets: LegSockets,
    /// RTP address from the peer's SDP (`c=` and `m=`); `None`: none (hold), nothing to send to
    /// until an SRTP packet authenticates.
    pub(crate) remote_rtp: Option<SocketAddr>,
    /// RTCP address from the peer's SDP (`a=rtcp:` or RTP port + 1, RFC 3605). Unused with
    /// rtcp-mux.
    pub(crate) remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the RTP port (RFC 5761), as negotiated in SDP.
    pub(crate) rtcp_mux: bool,
    /// Plain RTP or SRTP with keys.
    pub(crate) protection: Protection,
    /// How late an SRTP packet may arrive and still be accepted once.
    pub(crate) replay_window: ReplayWindow,
    /// Which sources plain media is taken from before one has latched.
    pub(crate) sources: MediaSources,
}

impl LegMedia {
    /// A leg with no remote address yet, no rtcp-mux, the default replay window, and plain
    /// media taken only from the address in the peer's SDP.
    pub fn new(label: &'static str, sockets: LegSockets, protection: Protection) -> Self {
        Self {
            label,
            sockets,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: false,
            protection,
            replay_window: ReplayWindow::DEFAULT,
            sources: MediaSources::Sdp,
        }
    }

    /// The same leg taking plain media from other `sources`.
    pub fn with_sources(mut self, sources: MediaSources) -> Self {
        self.sources = sources;
        self
    }

    /// The same leg with the peer's addresses from SDP.
    pub fn with_remote(mut self, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) -> Self {
        self.remote_rtp = rtp;
        self.remote_rtcp = rtcp;
        self
    }

    /// The same leg with another SRTP/SRTCP replay window.
    pub(crate) fn with_replay_window(mut self, window: ReplayWindow) -> Self {
        self.replay_window = window;
        self
    }

    /// The same leg with rtcp-mux on or off.
    pub fn with_rtcp_mux(mut self, rtcp_mux: bool) -> Self {
        self.rtcp_mux = rtcp_mux;
        self
    }
}
