//! From negotiated SDP to what the relay needs for each leg: our port, where the peer said to
//! send, and the SRTP keys (ours to protect what we send, theirs to check what they send).

use std::net::SocketAddr;

use super::legs::{Call, Direction};
use super::policy::LegMedia;
use crate::config::{IpFamily, MediaSources};
use crate::sdp::{AudioStream, CryptoAttribute};
use crate::srtp::Protection;

/// One leg of the relay.
#[derive(Debug)]
pub struct LegPlan {
    /// `gateway` or `next_hop` (metric label).
    pub label: &'static str,
    /// Our RTP port (RTCP is the next one).
    pub port: u16,
    /// The family of the pool the port came from.
    pub family: IpFamily,
    /// Where the peer's SDP says to send RTP (the relay latches onto the real source).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the port.
    pub rtcp_mux: bool,
    /// Plain or SRTP, with keys.
    pub protection: Protection,
    /// Which sources plain media is taken from (the gateway's setting; the next hop: its SDP).
    pub sources: MediaSources,
}

/// Where an SDP audio stream asks to receive RTP and RTCP (`None` for hold `0.0.0.0` or port 0).
pub(super) fn remotes(audio: &AudioStream) -> (Option<SocketAddr>, Option<SocketAddr>) {
    match audio.address {
        Some(ip) if !ip.is_unspecified() && audio.port != 0 => {
            let rtcp_port = if audio.rtcp_mux {
                audio.port
            } else {
                audio.rtcp_port.unwrap_or(audio.port.wrapping_add(1))
            };
            (
                Some(SocketAddr::new(ip, audio.port)),
                Some(SocketAddr::new(ip, rtcp_port)),
            )
        }
        _ => (None, None),
    }
}

/// SRTP protection from our attribute (what we send with) and theirs (what they send with).
pub(super) fn srtp_keys(
    ours: &CryptoAttribute,
    theirs: &CryptoAttribute,
) -> Result<Protection, String> {
    Ok(Protection::Srtp {
        tx: ours.master_key()?,
        rx: theirs.master_key()?,
    })
}

fn protection(
    media: Option<LegMedia>,
    ours: Option<&CryptoAttribute>,
    theirs: Option<&CryptoAttribute>,
) -> Result<Protection, String> {
    match (media, ours, theirs) {
        (Some(LegMedia::Srtp), Some(ours), Some(theirs)) => srtp_keys(ours, theirs),
        (Some(LegMedia::Srtp), _, _) => Err("SRTP decided but keys are missing".into()),
        _ => Ok(Protection::Rtp),
    }
}

/// The relay plan, gateway leg first, once the callee answered.
/// `a_answer`: the crypto we answer the caller with; `b_keys`: (ours, theirs) on the callee's
/// leg; `b_audio`: the callee's answer; `gateway_sources`: the gateway's `media_sources`.
pub(super) fn plans(
    call: &Call,
    a_answer: &[CryptoAttribute],
    b_keys: Option<&(CryptoAttribute, CryptoAttribute)>,
    b_audio: &AudioStream,
    gateway_sources: MediaSources,
) -> Result<[LegPlan; 2], String> {
    let a_audio = call.a.offer.audio().ok_or("caller's offer has no audio")?;
    let (a_rtp, a_rtcp) = remotes(&a_audio);
    let (b_rtp, b_rtcp) = remotes(b_audio);
    let (a_label, b_label) = match call.direction {
        Direction::FromGateway => ("gateway", "next_hop"),
        Direction::FromNextHop => ("next_hop", "gateway"),
    };
    let (a_sources, b_sources) = match call.direction {
        Direction::FromGateway => (gateway_sources, MediaSources::Sdp),
        Direction::FromNextHop => (MediaSources::Sdp, gateway_sources),
    };
    let a = LegPlan {
        label: a_label,
        port: call.a.port,
        family: call.a.local.family(),
        remote_rtp: a_rtp,
        remote_rtcp: a_rtcp,
        rtcp_mux: a_audio.rtcp_mux,
        protection: protection(
            call.a.decision.media(),
            a_answer.first(),
            call.a.chosen.as_ref(),
        )?,
        sources: a_sources,
    };
    let b = LegPlan {
        label: b_label,
        port: call.b.port,
        family: call.b.local.family(),
        remote_rtp: b_rtp,
        remote_rtcp: b_rtcp,
        rtcp_mux: false,
        protection: protection(
            call.b.decision.and_then(|d| d.media()),
            b_keys.map(|(ours, _)| ours),
            b_keys.map(|(_, theirs)| theirs),
        )?,
        sources: b_sources,
    };
    Ok(match call.direction {
        Direction::FromGateway => [a, b],
        Direction::FromNextHop => [b, a],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::base64;
    use crate::srtp::Mki;

    fn attr(text: &str) -> CryptoAttribute {
        CryptoAttribute::parse(text).unwrap()
    }

    #[test]
    fn keys_carry_the_mki_and_lifetime_of_their_attribute() {
        let key = base64::encode(&[7u8; 30]);
        let ours = attr(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}"));
        let theirs = attr(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31|1:1"));
        let Protection::Srtp { tx, rx } = srtp_keys(&ours, &theirs).unwrap() else {
            panic!("SRTP expected");
        };
        assert_eq!((tx.mki(), tx.lifetime()), (None, None));
        assert_eq!(rx.mki(), Mki::new(1, 1));
        assert_eq!(rx.lifetime(), Some(1 << 31));
    }
}
