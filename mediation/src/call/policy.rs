//! The encryption rules of docs/design.md §2 as pure functions: given how a peer proved itself, what
//! the configuration allows and what its SDP says, is the leg SRTP or RTP, and why. Every call's
//! outcome and reason is logged and counted from these values. The product is this table.

use std::fmt;

use crate::config::{EncryptionLevel, SrtpMode};

/// How the gateway's signalling reached us (or we reached it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewaySignalling {
    /// Plain TCP: no keys may cross it.
    Tcp,
    /// MTLS with a certificate that chained to a trusted CA, was valid and not revoked, and
    /// named the configured identity. (A TLS peer without such a certificate never gets here:
    /// its connection is refused at the handshake.)
    VerifiedMtls,
}

/// What the peer's SDP says about SRTP on the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSrtp {
    /// The peer offers or accepts SRTP with a suite we allow.
    Offered,
    /// The peer offers or answers plain RTP only (or no suite we allow).
    NotOffered,
}

/// Media protection on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegMedia {
    /// SRTP.
    Srtp,
    /// Plain RTP.
    Rtp,
}

impl LegMedia {
    /// The metric label value (`gateway_media`, `protection`).
    pub fn label(self) -> &'static str {
        match self {
            LegMedia::Srtp => "srtp",
            LegMedia::Rtp => "rtp",
        }
    }
}

/// Why a leg is SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpReason {
    /// Gateway proved itself over MTLS, trunk allows SRTP, and its SDP offers or accepts it.
    VerifiedMtls,
    /// Gateway proved itself over MTLS and the trunk requires SRTP.
    RequiredByTrunk,
    /// The next hop: always encrypted when its SDP agrees (`required` or `supported`).
    NextHopPolicy,
}

/// Why a leg is plain RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtpReason {
    /// The gateway's signalling is plain TCP: SDES keys would cross it in clear.
    TcpTransport,
    /// The trunk's `srtp = "not-supported"`.
    TrunkNotSupported,
    /// The peer's SDP neither offers nor accepts SRTP and the policy allows plain RTP.
    PeerDeclinedSrtp,
    /// `[next_hop] encryption = "not-supported"`.
    NextHopNotSupported,
}

/// Why a call is refused (`488 Not Acceptable Here`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The trunk requires SRTP and the gateway will not do it.
    TrunkRequiresSrtp,
    /// The next hop requires SRTP and the peer will not do it.
    NextHopRequiresSrtp,
    /// SRTP required over plain TCP: refused at configuration load, and here too if it ever
    /// got this far.
    SrtpRequiredOverTcp,
}

/// The decision for one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Encrypt, because.
    Srtp(SrtpReason),
    /// Do not encrypt, because.
    Rtp(RtpReason),
    /// No call: answer `488`.
    Refuse(RefusalReason),
}

impl Decision {
    /// The media, unless refused.
    pub fn media(self) -> Option<LegMedia> {
        match self {
            Decision::Srtp(_) => Some(LegMedia::Srtp),
            Decision::Rtp(_) => Some(LegMedia::Rtp),
            Decision::Refuse(_) => None,
        }
    }

    /// A stable snake_case word for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Decision::Srtp(SrtpReason::VerifiedMtls) => "verified_mtls",
            Decision::Srtp(SrtpReason::RequiredByTrunk) => "required_by_trunk",
            Decision::Srtp(SrtpReason::NextHopPolicy) => "next_hop_policy",
            Decision::Rtp(RtpReason::TcpTransport) => "tcp_transport",
            Decision::Rtp(RtpReason::TrunkNotSupported) => "trunk_not_supported",
            Decision::Rtp(RtpReason::PeerDeclinedSrtp) => "peer_declined_srtp",
            Decision::Rtp(RtpReason::NextHopNotSupported) => "next_hop_not_supported",
            Decision::Refuse(RefusalReason::TrunkRequiresSrtp) => "trunk_requires_srtp",
            Decision::Refuse(RefusalReason::NextHopRequiresSrtp) => "next_hop_requires_srtp",
            Decision::Refuse(RefusalReason::SrtpRequiredOverTcp) => "srtp_required_over_tcp",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.media() {
            Some(m) => write!(f, "{} ({})", m.label(), self.reason()),
            None => write!(f, "refused ({})", self.reason()),
        }
    }
}

/// Whether we put SRTP keys in an offer toward a gateway: only over verified MTLS and when the
/// trunk allows SRTP. Over TCP no key is ever sent.
pub fn offer_srtp_to_gateway(signalling: GatewaySignalling, mode: SrtpMode) -> bool {
    signalling == GatewaySignalling::VerifiedMtls && mode != SrtpMode::NotSupported
}

/// The gateway leg (docs/design.md §2 table), once the gateway's SDP (offer or answer) is known.
pub fn gateway_leg(signalling: GatewaySignalling, mode: SrtpMode, peer: PeerSrtp) -> Decision {
    use GatewaySignalling::*;
    match (signalling, mode, peer) {
        (Tcp, SrtpMode::Required, _) => Decision::Refuse(RefusalReason::SrtpRequiredOverTcp),
        (Tcp, SrtpMode::Optional | SrtpMode::NotSupported, _) => {
            Decision::Rtp(RtpReason::TcpTransport)
        }
        (VerifiedMtls, SrtpMode::NotSupported, _) => Decision::Rtp(RtpReason::TrunkNotSupported),
        (VerifiedMtls, SrtpMode::Optional, PeerSrtp::Offered) => {
            Decision::Srtp(SrtpReason::VerifiedMtls)
        }
        (VerifiedMtls, SrtpMode::Optional, PeerSrtp::NotOffered) => {
            Decision::Rtp(RtpReason::PeerDeclinedSrtp)
        }
        (VerifiedMtls, SrtpMode::Required, PeerSrtp::Offered) => {
            Decision::Srtp(SrtpReason::RequiredByTrunk)
        }
        (VerifiedMtls, SrtpMode::Required, PeerSrtp::NotOffered) => {
            Decision::Refuse(RefusalReason::TrunkRequiresSrtp)
        }
    }
}

/// Whether we offer SRTP toward the next hop (`required` and `supported` prefer it).
pub fn offer_srtp_to_next_hop(level: EncryptionLevel) -> bool {
    level != EncryptionLevel::NotSupported
}

/// The next-hop leg (always MTLS), once its SDP is known.
pub fn next_hop_leg(level: EncryptionLevel, peer: PeerSrtp) -> Decision {
    match (level, peer) {
        (EncryptionLevel::NotSupported, _) => Decision::Rtp(RtpReason::NextHopNotSupported),
        (_, PeerSrtp::Offered) => Decision::Srtp(SrtpReason::NextHopPolicy),
        (EncryptionLevel::Required, PeerSrtp::NotOffered) => {
            Decision::Refuse(RefusalReason::NextHopRequiresSrtp)
        }
        (EncryptionLevel::Supported, PeerSrtp::NotOffered) => {
            Decision::Rtp(RtpReason::PeerDeclinedSrtp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GatewaySignalling::*;
    use PeerSrtp::*;

    /// Every combination of the docs/design.md §2 gateway table, spelled out row by row.
    #[test]
    fn gateway_table_is_exhaustive() {
        let table = [
            // TCP: plain RTP, whatever the SDP says; required is a contradiction.
            (
                Tcp,
                SrtpMode::Optional,
                Offered,
                Decision::Rtp(RtpReason::TcpTransport),
            ),
            (
                Tcp,
                SrtpMode::Optional,
                NotOffered,
                Decision::Rtp(RtpReason::TcpTransport),
            ),
            (
                Tcp,
                SrtpMode::NotSupported,
                Offered,
                Decision::Rtp(RtpReason::TcpTransport),
            ),
            (
                Tcp,
                SrtpMode::NotSupported,
                NotOffered,
                Decision::Rtp(RtpReason::TcpTransport),
            ),
            (
                Tcp,
                SrtpMode::Required,
                Offered,
                Decision::Refuse(RefusalReason::SrtpRequiredOverTcp),
            ),
            (
                Tcp,
                SrtpMode::Required,
                NotOffered,
                Decision::Refuse(RefusalReason::SrtpRequiredOverTcp),
            ),
            // Verified MTLS, optional: SRTP when the SDP offers or accepts it.
            (
                VerifiedMtls,
                SrtpMode::Optional,
                Offered,
                Decision::Srtp(SrtpReason::VerifiedMtls),
            ),
            (
                VerifiedMtls,
                SrtpMode::Optional,
                NotOffered,
                Decision::Rtp(RtpReason::PeerDeclinedSrtp),
            ),
            // Verified MTLS, required: SRTP or 488.
            (
                VerifiedMtls,
                SrtpMode::Required,
                Offered,
                Decision::Srtp(SrtpReason::RequiredByTrunk),
            ),
            (
                VerifiedMtls,
                SrtpMode::Required,
                NotOffered,
                Decision::Refuse(RefusalReason::TrunkRequiresSrtp),
            ),
            // Verified MTLS, not-supported: plain RTP.
            (
                VerifiedMtls,
                SrtpMode::NotSupported,
                Offered,
                Decision::Rtp(RtpReason::TrunkNotSupported),
            ),
            (
                VerifiedMtls,
                SrtpMode::NotSupported,
                NotOffered,
                Decision::Rtp(RtpReason::TrunkNotSupported),
            ),
        ];
        assert_eq!(table.len(), 2 * 3 * 2, "every combination listed once");
        for (sig, mode, peer, want) in table {
            assert_eq!(
                gateway_leg(sig, mode, peer),
                want,
                "{sig:?} {mode:?} {peer:?}"
            );
        }
    }

    #[test]
    fn keys_are_offered_to_gateways_only_over_verified_mtls() {
        for mode in [
            SrtpMode::Optional,
            SrtpMode::Required,
            SrtpMode::NotSupported,
        ] {
            assert!(!offer_srtp_to_gateway(Tcp, mode));
        }
        assert!(offer_srtp_to_gateway(VerifiedMtls, SrtpMode::Optional));
        assert!(offer_srtp_to_gateway(VerifiedMtls, SrtpMode::Required));
        assert!(!offer_srtp_to_gateway(VerifiedMtls, SrtpMode::NotSupported));
    }

    #[test]
    fn next_hop_table_is_exhaustive() {
        use EncryptionLevel::*;
        let table = [
            (Required, Offered, Decision::Srtp(SrtpReason::NextHopPolicy)),
            (
                Required,
                NotOffered,
                Decision::Refuse(RefusalReason::NextHopRequiresSrtp),
            ),
            (
                Supported,
                Offered,
                Decision::Srtp(SrtpReason::NextHopPolicy),
            ),
            (
                Supported,
                NotOffered,
                Decision::Rtp(RtpReason::PeerDeclinedSrtp),
            ),
            (
                NotSupported,
                Offered,
                Decision::Rtp(RtpReason::NextHopNotSupported),
            ),
            (
                NotSupported,
                NotOffered,
                Decision::Rtp(RtpReason::NextHopNotSupported),
            ),
        ];
        for (level, peer, want) in table {
            assert_eq!(next_hop_leg(level, peer), want, "{level:?} {peer:?}");
        }
        assert!(offer_srtp_to_next_hop(Required));
        assert!(offer_srtp_to_next_hop(Supported));
        assert!(!offer_srtp_to_next_hop(NotSupported));
    }
}
