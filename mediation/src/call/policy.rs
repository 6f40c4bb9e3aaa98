//! The encryption rules of docs/design.md §2, all of them, as pure functions: given how a peer
//! proved itself, what the configuration allows and what its SDP says, is the leg SRTP or RTP,
//! and why — or is the call refused, with which SIP code. The engine gathers the [`Facts`] of a
//! leg ([`Facts::gather`]) and asks [`decide`]; it decides nothing about encryption itself.
//! Whether we put keys in our own offers is here too ([`offers_srtp`]). Every call's outcome
//! and reason is logged and counted from these values. The product is this table.

use std::fmt;

use crate::config::{EncryptionLevel, SrtpMode};
use crate::sdp::{AudioStream, Encryption, Proto};

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

impl GatewaySignalling {
    /// `VerifiedMtls` when the peer proved itself over MTLS, `Tcp` (plain, TCP or UDP)
    /// otherwise.
    fn of(verified_mtls: bool) -> Self {
        if verified_mtls {
            GatewaySignalling::VerifiedMtls
        } else {
            GatewaySignalling::Tcp
        }
    }
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
    /// Lync's `a=encryption:required` on an offer the rules answer with plain RTP (no
    /// acceptable suite, or the policy forbids SRTP).
    EncryptionRequiredWithoutSrtp,
    /// Lync's `a=encryption:required` over plain signalling: its keys crossed in clear.
    EncryptionRequiredOverPlain,
    /// An `RTP/SAVP` offer the rules answer with plain RTP: the profile cannot be changed in
    /// the answer (RFC 3264).
    SavpWithoutSrtp,
    /// An `RTP/SAVP` offer over plain signalling: its keys crossed in clear.
    SavpOverPlain,
    /// An `RTP/SAVP` answer without a key that matches our offer.
    SavpAnswerWithoutKey,
}

impl RefusalReason {
    /// The SIP status the refusal is answered with.
    pub fn code(self) -> u16 {
        488
    }

    /// What the `Warning` header and the log say.
    pub fn why(self) -> &'static str {
        match self {
            RefusalReason::EncryptionRequiredWithoutSrtp => {
                "a=encryption:required but no acceptable SRTP suite or policy forbids SRTP"
            }
            RefusalReason::EncryptionRequiredOverPlain => {
                "a=encryption:required over plain signalling: keys would travel in clear"
            }
            RefusalReason::SavpWithoutSrtp => "no acceptable SRTP suite or policy forbids SRTP",
            RefusalReason::SavpOverPlain => {
                "SRTP offered over plain TCP: keys would travel in clear"
            }
            RefusalReason::SavpAnswerWithoutKey => {
                "the callee answered SRTP without a matching key"
            }
            other => Decision::Refuse(other).reason(),
        }
    }
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
            Decision::Refuse(RefusalReason::EncryptionRequiredWithoutSrtp) => {
                "encryption_required_without_srtp"
            }
            Decision::Refuse(RefusalReason::EncryptionRequiredOverPlain) => {
                "encryption_required_over_plain_signalling"
            }
            Decision::Refuse(RefusalReason::SavpWithoutSrtp) => "savp_without_srtp",
            Decision::Refuse(RefusalReason::SavpOverPlain) => "savp_over_plain_signalling",
            Decision::Refuse(RefusalReason::SavpAnswerWithoutKey) => "savp_answer_without_key",
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

/// Which leg the rules judge, with the setting that governs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// A gateway leg and its trunk's `srtp` mode.
    Gateway(SrtpMode),
    /// The next-hop leg and `[next_hop] encryption`.
    NextHop(EncryptionLevel),
}

/// Offer or answer: the same facts weigh differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpRole {
    /// The peer's offer (we answer it).
    Offer,
    /// The peer's answer to our offer.
    Answer,
}

/// Everything the rules look at for one leg's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Which leg, and its setting.
    pub toward: Toward,
    /// The signalling is MTLS with a verified certificate (keys may cross it).
    pub verified_mtls: bool,
    /// Offer or answer.
    pub role: SdpRole,
    /// The SDP's SRTP: a usable key (of a suite we allow; in an answer, matching our offer)
    /// that may be used (it crossed MTLS and Lync's `a=encryption:rejected` did not withdraw
    /// it).
    pub peer_srtp: PeerSrtp,
    /// Lync's `a=encryption:` on the stream.
    pub encryption: Option<Encryption>,
    /// The `m=` profile: `RTP/SAVP` can only be answered with SRTP.
    pub profile: Proto,
    /// `a=crypto` lines that crossed plain signalling: ignored, never used (counted).
    pub keys_over_plain: usize,
}

impl Facts {
    /// Gathers the facts of one leg: `toward` from the configuration, `verified_mtls` from the
    /// identity the peer proved, `audio` from its SDP, and `usable_key`: whether the SDP holds
    /// a key we could use (an offered suite we allow, or an answer matching our offer).
    pub fn gather(
        toward: Toward,
        verified_mtls: bool,
        role: SdpRole,
        audio: &AudioStream,
        usable_key: bool,
    ) -> Facts {
        // Lync's `a=encryption:rejected` withdraws whatever `a=crypto` came with it.
        let withdrawn = audio.encryption == Some(Encryption::Rejected);
        Facts {
            toward,
            verified_mtls,
            role,
            peer_srtp: if usable_key && verified_mtls && !withdrawn {
                PeerSrtp::Offered
            } else {
                PeerSrtp::NotOffered
            },
            encryption: audio.encryption,
            profile: audio.proto.clone(),
            keys_over_plain: if verified_mtls { 0 } else { audio.crypto.len() },
        }
    }
}

/// The decision for one leg: the table of docs/design.md §2 for the leg, then what the SDP's
/// own dialect demands (Lync's `a=encryption:required`, the `RTP/SAVP` profile).
pub fn decide(f: &Facts) -> Decision {
    let table = match f.toward {
        Toward::Gateway(mode) => {
            gateway_leg(GatewaySignalling::of(f.verified_mtls), mode, f.peer_srtp)
        }
        Toward::NextHop(level) => next_hop_leg(level, f.peer_srtp),
    };
    if table.media() != Some(LegMedia::Rtp) {
        return table;
    }
    let refuse = |plain, verified| Decision::Refuse(if f.verified_mtls { verified } else { plain });
    match (f.role, f.encryption, &f.profile) {
        // Lync's dialect: SRTP offered on RTP/AVP, and required.
        (SdpRole::Offer, Some(Encryption::Required), _) => refuse(
            RefusalReason::EncryptionRequiredOverPlain,
            RefusalReason::EncryptionRequiredWithoutSrtp,
        ),
        (SdpRole::Offer, _, Proto::Savp) => {
            refuse(RefusalReason::SavpOverPlain, RefusalReason::SavpWithoutSrtp)
        }
        (SdpRole::Answer, _, Proto::Savp) => Decision::Refuse(RefusalReason::SavpAnswerWithoutKey),
        _ => table,
    }
}

/// Whether our offer on a leg carries SRTP keys: toward a gateway only over verified MTLS and
/// when the trunk allows SRTP; toward the next hop unless it is `not-supported`.
pub fn offers_srtp(toward: Toward, verified_mtls: bool) -> bool {
    match toward {
        Toward::Gateway(mode) => offer_srtp_to_gateway(GatewaySignalling::of(verified_mtls), mode),
        Toward::NextHop(level) => offer_srtp_to_next_hop(level),
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

    /// An audio stream parsed from SDP, as a peer would send it.
    fn audio(proto: &str, crypto: bool, encryption: Option<&str>) -> AudioStream {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let mut sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 {proto} 0\r\n"
        );
        if crypto {
            sdp += &format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n");
        }
        if let Some(e) = encryption {
            sdp += &format!("a=encryption:{e}\r\n");
        }
        crate::sdp::parse(sdp.as_bytes()).unwrap().audio().unwrap()
    }

    #[test]
    fn gathered_facts_withdraw_keys_over_plain_signalling_and_when_lync_rejects_them() {
        let gw = Toward::Gateway(SrtpMode::Optional);
        let savp = audio("RTP/SAVP", true, None);
        let f = Facts::gather(gw, false, SdpRole::Offer, &savp, true);
        assert_eq!((f.peer_srtp, f.keys_over_plain), (NotOffered, 1));
        let f = Facts::gather(gw, true, SdpRole::Offer, &savp, true);
        assert_eq!((f.peer_srtp, f.keys_over_plain), (Offered, 0));
        let rejected = audio("RTP/AVP", true, Some("rejected"));
        let f = Facts::gather(gw, true, SdpRole::Offer, &rejected, true);
        assert_eq!(f.peer_srtp, NotOffered);
        assert_eq!(decide(&f), Decision::Rtp(RtpReason::PeerDeclinedSrtp));
    }

    /// The refusals that the SDP's own dialect demands, beyond the table: Lync's
    /// `a=encryption:required` and the `RTP/SAVP` profile, on offers and on answers.
    #[test]
    fn decide_refuses_what_the_sdp_demands_and_the_rules_will_not_give() {
        let cases = [
            // (toward, verified MTLS, role, proto, key, a=encryption, decision)
            (
                Toward::Gateway(SrtpMode::Optional),
                false,
                SdpRole::Offer,
                "RTP/SAVP",
                true,
                None,
                Decision::Refuse(RefusalReason::SavpOverPlain),
            ),
            (
                Toward::Gateway(SrtpMode::NotSupported),
                true,
                SdpRole::Offer,
                "RTP/SAVP",
                true,
                None,
                Decision::Refuse(RefusalReason::SavpWithoutSrtp),
            ),
            (
                Toward::Gateway(SrtpMode::Optional),
                false,
                SdpRole::Offer,
                "RTP/AVP",
                true,
                Some("required"),
                Decision::Refuse(RefusalReason::EncryptionRequiredOverPlain),
            ),
            (
                Toward::NextHop(EncryptionLevel::NotSupported),
                true,
                SdpRole::Offer,
                "RTP/AVP",
                true,
                Some("required"),
                Decision::Refuse(RefusalReason::EncryptionRequiredWithoutSrtp),
            ),
            (
                Toward::Gateway(SrtpMode::Optional),
                true,
                SdpRole::Offer,
                "RTP/AVP",
                true,
                Some("required"),
                Decision::Srtp(SrtpReason::VerifiedMtls),
            ),
            (
                Toward::Gateway(SrtpMode::Optional),
                true,
                SdpRole::Answer,
                "RTP/SAVP",
                false,
                None,
                Decision::Refuse(RefusalReason::SavpAnswerWithoutKey),
            ),
            // An answer's `a=encryption:required` asks nothing of us: we made the offer.
            (
                Toward::Gateway(SrtpMode::Optional),
                true,
                SdpRole::Answer,
                "RTP/AVP",
                false,
                Some("required"),
                Decision::Rtp(RtpReason::PeerDeclinedSrtp),
            ),
            // The table's own refusal comes first.
            (
                Toward::Gateway(SrtpMode::Required),
                true,
                SdpRole::Offer,
                "RTP/SAVP",
                false,
                None,
                Decision::Refuse(RefusalReason::TrunkRequiresSrtp),
            ),
        ];
        for (toward, mtls, role, proto, key, encryption, want) in cases {
            let a = audio(proto, key, encryption);
            let f = Facts::gather(toward, mtls, role, &a, key);
            assert_eq!(
                decide(&f),
                want,
                "{toward:?} mtls={mtls} {role:?} {proto} {encryption:?}"
            );
            if let Decision::Refuse(r) = want {
                assert_eq!(r.code(), 488);
                assert!(!r.why().is_empty());
            }
        }
        assert!(offers_srtp(Toward::Gateway(SrtpMode::Optional), true));
        assert!(!offers_srtp(Toward::Gateway(SrtpMode::Optional), false));
        assert!(offers_srtp(
            Toward::NextHop(EncryptionLevel::Supported),
            true
        ));
    }
}
