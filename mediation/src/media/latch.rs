//! Symmetric RTP latching (RFC 4961): a leg's media goes to wherever its peer's packets really
//! come from, which behind NAT is not the address in its SDP.

use std::net::SocketAddr;

/// How a packet's source relates to the address we latched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMatch {
    /// Nothing latched yet: the first packet that passes the checks will latch.
    Unlatched,
    /// The latched address.
    Latched,
    /// Some other address: dropped on plain RTP; re-latches on SRTP if it authenticates.
    Other,
}

/// Where one stream (RTP, or RTCP without rtcp-mux) of a leg is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    signalled: Option<SocketAddr>,
    latched: Option<SocketAddr>,
}

impl Remote {
    /// A remote known only from SDP (or not at all).
    pub fn new(signalled: Option<SocketAddr>) -> Self {
        Self {
            signalled,
            latched: None,
        }
    }

    /// How `source` relates to the latched address.
    pub fn compare(&self, source: SocketAddr) -> SourceMatch {
        match self.latched {
            None => SourceMatch::Unlatched,
            Some(latched) if latched == source => SourceMatch::Latched,
            Some(_) => SourceMatch::Other,
        }
    }

    /// Latches `source` (a packet from it passed every check). Returns the address it replaces
    /// when that changes anything, for the log.
    pub fn latch(&mut self, source: SocketAddr) -> Option<Option<SocketAddr>> {
        let before = self.latched.replace(source);
        (before != Some(source)).then_some(before)
    }

    /// Where to send: the latched address, else the one from SDP, else nowhere yet.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.signalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_until_latched_then_the_real_source() {
        let sdp: SocketAddr = "192.0.2.5:4000".parse().unwrap();
        let nat: SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let mut r = Remote::new(Some(sdp));
        assert_eq!(r.destination(), Some(sdp));
        assert_eq!(r.compare(nat), SourceMatch::Unlatched);
        assert_eq!(r.latch(nat), Some(None));
        assert_eq!(r.destination(), Some(nat));
        assert_eq!(r.compare(nat), SourceMatch::Latched);
        assert_eq!(r.compare(sdp), SourceMatch::Other);
        assert_eq!(r.latch(nat), None, "no change");
        assert_eq!(r.latch(sdp), Some(Some(nat)));
    }

    #[test]
    fn nowhere_to_send_without_sdp_or_packets() {
        assert_eq!(Remote::new(None).destination(), None);
    }
}
