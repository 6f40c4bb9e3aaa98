//! Where a leg's media comes from and goes to. Symmetric RTP (RFC 4961): media goes to where the
//! peer's packets really come from, which behind NAT is not the address in its SDP. But plain
//! RTP proves nothing about its sender, so a plain leg takes media only from the IP address its
//! peer's SDP names (the port is learned from the first packet from there), unless the trunk is
//! configured for peers behind NAT; an SRTP leg latches only on a packet that authenticated.
//!
//! ```text
//!                      from the SDP's IP   from another IP
//!  plain, `sdp`        latches once        dropped (unknown_source)
//!  plain, `any` (NAT)  latches, for good   latches only while nothing has latched
//!  SRTP, either        latches if it authenticates (re-latches: the peer moved)
//! ```

use std::net::SocketAddr;

use crate::config::MediaSources;

/// How a packet's source relates to a leg's remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceMatch {
    /// The latched address.
    Latched,
    /// Not latched, but admitted: the packet latches if it passes the other checks.
    Admitted,
    /// Neither: dropped on plain RTP; on SRTP it latches only if it authenticates.
    Other,
}

/// Where one stream (RTP, or RTCP without rtcp-mux) of a leg comes from and is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Remote {
    signalled: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    sources: MediaSources,
}

impl Remote {
    /// A remote known only from SDP (or not at all), taking media from `sources`.
    pub(super) fn new(signalled: Option<SocketAddr>, sources: MediaSources) -> Self {
        Self {
            signalled,
            latched: None,
            sources,
        }
    }

    /// The IP address the peer's SDP names.
    fn is_sdp_ip(&self, source: SocketAddr) -> bool {
        self.signalled.is_some_and(|s| s.ip() == source.ip())
    }

    /// How `source` relates to this remote.
    pub(super) fn compare(&self, source: SocketAddr) -> SourceMatch {
        match (self.latched, self.sources) {
            (Some(latched), _) if latched == source => SourceMatch::Latched,
            (None, MediaSources::Sdp) if self.is_sdp_ip(source) => SourceMatch::Admitted,
            (None, MediaSources::Any) => SourceMatch::Admitted,
            // Behind NAT the first packet may have come from a stranger: the peer's own
            // address takes the latch back, once.
            (Some(latched), MediaSources::Any)
                if !self.is_sdp_ip(latched) && self.is_sdp_ip(source) =>
            {
                SourceMatch::Admitted
            }
            _ => SourceMatch::Other,
        }
    }

    /// Latches `source` (a packet from it passed every check). Returns the address it replaces
    /// when that changes anything, for the log.
    pub(super) fn latch(&mut self, source: SocketAddr) -> Option<Option<SocketAddr>> {
        let before = self.latched.replace(source);
        (before != Some(source)).then_some(before)
    }

    /// Where to send: the latched address, else the one from SDP, else nowhere yet.
    pub(super) fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.signalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn by_default_only_the_sdp_address_latches_and_only_once() {
        let sdp = addr("192.0.2.5:4000");
        let mut r = Remote::new(Some(sdp), MediaSources::Sdp);
        assert_eq!(r.destination(), Some(sdp));
        let stranger = addr("203.0.113.9:4000");
        assert_eq!(r.compare(stranger), SourceMatch::Other, "another IP");
        // Asymmetric port: the port is learned from the first packet from the SDP's IP.
        let real = addr("192.0.2.5:4010");
        assert_eq!(r.compare(real), SourceMatch::Admitted);
        assert_eq!(r.latch(real), Some(None));
        assert_eq!(r.destination(), Some(real));
        assert_eq!(r.compare(real), SourceMatch::Latched);
        assert_eq!(r.compare(sdp), SourceMatch::Other, "the latch never moves");
        assert_eq!(r.compare(stranger), SourceMatch::Other);
    }

    #[test]
    fn no_sdp_address_admits_no_plain_source() {
        let r = Remote::new(None, MediaSources::Sdp);
        assert_eq!(r.compare(addr("192.0.2.5:4000")), SourceMatch::Other);
        assert_eq!(r.destination(), None);
    }

    #[test]
    fn behind_nat_the_first_packet_latches_and_the_peer_takes_it_back_once() {
        let sdp = addr("10.0.0.5:4000"); // a private address the peer cannot be reached at
        let nat = addr("198.51.100.7:61000");
        let stranger = addr("203.0.113.9:5000");
        let mut r = Remote::new(Some(sdp), MediaSources::Any);
        assert_eq!(r.compare(nat), SourceMatch::Admitted);
        assert_eq!(r.latch(nat), Some(None));
        assert_eq!(r.compare(nat), SourceMatch::Latched);
        assert_eq!(
            r.compare(stranger),
            SourceMatch::Other,
            "never to a stranger"
        );
        // Were the first packet a stranger's, media from the SDP's own address takes it back,
        assert_eq!(r.compare(sdp), SourceMatch::Admitted);
        assert_eq!(r.latch(sdp), Some(Some(nat)));
        // and after that the latch never moves.
        assert_eq!(r.compare(nat), SourceMatch::Other);
        assert_eq!(r.compare(addr("10.0.0.5:4002")), SourceMatch::Other);
    }

    #[test]
    fn the_setting_reads_as_documented() {
        #[derive(serde::Deserialize)]
        struct T {
            media_sources: MediaSources,
        }
        let t: T = toml::from_str("media_sources = \"any\"").unwrap();
        assert_eq!(t.media_sources, MediaSources::Any);
        assert!(toml::from_str::<T>("media_sources = \"nat\"").is_err());
        assert_eq!(MediaSources::default().name(), "sdp");
    }
}
