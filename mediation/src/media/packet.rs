//! Telling RTP from RTCP, and refusing what is neither, before anything else reads a datagram.

use crate::srtp::wire::{RTCP_CLEAR_PREFIX_LEN, RTP_FIXED_HEADER_LEN, RTP_VERSION};

/// Which of a leg's sockets a datagram arrived on (or leaves from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The even port: RTP, and RTCP too with rtcp-mux.
    Rtp,
    /// The odd port: RTCP without rtcp-mux.
    Rtcp,
}

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP or SRTP.
    Rtp,
    /// RTCP or SRTCP.
    Rtcp,
}

impl PacketKind {
    /// `rtp` or `rtcp`, for logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PacketKind::Rtp => "rtp",
            PacketKind::Rtcp => "rtcp",
        }
    }
}

/// RFC 5761 §4: with RTP and RTCP on one port, RTP payload types 64-95 are not used, so a
/// second octet whose low seven bits fall in 64..=95 (RTCP packet types 192-223, such as SR 200
/// and RR 201) marks RTCP.
///
/// ```text
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|X|  CC   |M|     PT      |   RTP
/// |V=2|P|    RC   |   PT (200..)  |   RTCP
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
pub fn looks_like_rtcp(second_octet: u8) -> bool {
    (64..=95).contains(&(second_octet & 0x7F))
}

/// Classifies a datagram that arrived on `port` of a leg with or without rtcp-mux, checking the
/// version and the minimum length (12 bytes for RTP, 8 for RTCP: an RR with no report blocks).
pub fn classify(datagram: &[u8], port: Port, rtcp_mux: bool) -> Result<PacketKind, &'static str> {
    let (Some(&first), Some(&second)) = (datagram.first(), datagram.get(1)) else {
        return Err("shorter than any RTP or RTCP header");
    };
    if first >> 6 != RTP_VERSION {
        return Err("not RTP/RTCP version 2");
    }
    let kind = match port {
        Port::Rtcp => PacketKind::Rtcp,
        Port::Rtp if looks_like_rtcp(second) => {
            if !rtcp_mux {
                return Err("RTCP on the RTP port without rtcp-mux");
            }
            PacketKind::Rtcp
        }
        Port::Rtp => PacketKind::Rtp,
    };
    let min = match kind {
        PacketKind::Rtp => RTP_FIXED_HEADER_LEN,
        PacketKind::Rtcp => RTCP_CLEAR_PREFIX_LEN,
    };
    if datagram.len() < min {
        return Err("shorter than its header");
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.resize(172, 0);
        p
    }

    #[test]
    fn rfc5761_demultiplexing() {
        for pt in [0u8, 8, 18, 63, 96, 101, 127] {
            assert!(!looks_like_rtcp(pt), "{pt}");
            assert!(!looks_like_rtcp(pt | 0x80), "{pt} with marker");
        }
        for rtcp_type in [192u8, 200, 201, 202, 203, 204, 205, 206, 207, 223] {
            assert!(looks_like_rtcp(rtcp_type), "{rtcp_type}");
        }
    }

    #[test]
    fn classify_by_port_and_mux() {
        let sr = {
            let mut p = vec![0x80, 200, 0, 6];
            p.resize(28, 0);
            p
        };
        assert_eq!(classify(&rtp(0), Port::Rtp, false), Ok(PacketKind::Rtp));
        assert_eq!(
            classify(&rtp(0x80 | 8), Port::Rtp, true),
            Ok(PacketKind::Rtp)
        );
        assert_eq!(classify(&sr, Port::Rtp, true), Ok(PacketKind::Rtcp));
        assert!(classify(&sr, Port::Rtp, false).is_err());
        assert_eq!(classify(&sr, Port::Rtcp, false), Ok(PacketKind::Rtcp));
        assert_eq!(classify(&sr[..8], Port::Rtcp, false), Ok(PacketKind::Rtcp));
    }

    #[test]
    fn not_rtp_at_all() {
        assert!(classify(&[], Port::Rtp, false).is_err());
        assert!(classify(&[0x80], Port::Rtp, false).is_err());
        assert!(classify(&rtp(0)[..11], Port::Rtp, false).is_err());
        assert!(classify(&[0x80, 200, 0, 1, 0, 0, 0], Port::Rtcp, false).is_err());
        // STUN (first two bits 00), DTLS (20..63), version 1.
        for first in [0x00u8, 0x16, 0x40] {
            let mut p = rtp(0);
            p[0] = first;
            assert!(classify(&p, Port::Rtp, true).is_err(), "{first:#x}");
        }
    }
}
