//! SDP offer/answer for one call under a `--srtp` mode: the SDP we send (PCMU, 20 ms, one audio
//! stream, `a=crypto` per RFC 4568 when SRTP is offered or accepted), and what we make of the
//! peer's SDP: the far media address and the SRTP keys of both directions, or why the call
//! cannot go on (a 488 when answering). Pure: text in, decisions out.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use mediation::sdp::{
    answer_crypto, choose_crypto, match_answer, offer_crypto, AudioStream, CryptoAttribute,
    Direction, Proto,
};
use mediation::srtp::{MasterKey, SrtpSuite};

use crate::options::SrtpMode;

/// The PCMU payload type as written on the `m=` line.
pub(crate) const PCMU: &str = "0";

/// Our media address and RTP port (RTCP is on the next port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalMedia {
    /// Address written in `c=`.
    pub(crate) ip: IpAddr,
    /// RTP port written on `m=`.
    pub(crate) rtp_port: u16,
}

/// SRTP keys of a call: ours protect what we send, theirs unprotect what we receive.
#[derive(Debug, Clone)]
pub(crate) struct SrtpKeys {
    /// Negotiated suite.
    pub(crate) suite: SrtpSuite,
    /// The key we sent in our `a=crypto`.
    pub(crate) ours: MasterKey,
    /// The key the peer sent in its `a=crypto`.
    pub(crate) theirs: MasterKey,
}

/// What the media of a call will be.
#[derive(Debug, Clone)]
pub(crate) struct MediaPlan {
    /// Where the peer wants RTP.
    pub(crate) remote_rtp: SocketAddr,
    /// Where the peer wants RTCP (`a=rtcp`, else RTP port + 1).
    pub(crate) remote_rtcp: SocketAddr,
    /// SRTP keys; `None` for plain RTP.
    pub(crate) srtp: Option<SrtpKeys>,
}

impl MediaPlan {
    /// `RTP/SAVP` when keys were negotiated, else `RTP/AVP` (also for best-effort SRTP offered
    /// on an `RTP/AVP` line: what counts is whether media is protected).
    pub(crate) fn profile(&self) -> &'static str {
        if self.srtp.is_some() {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        }
    }
}

/// What goes into one SDP of ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SdpSpec<'a> {
    /// Our media address and port.
    pub(crate) local: LocalMedia,
    /// `o=` session id.
    pub(crate) session_id: u64,
    /// `o=` session version (raised with every changed SDP, RFC 3264 §8).
    pub(crate) version: u64,
    /// Transport on the `m=` line.
    pub(crate) proto: &'a str,
    /// Our `a=crypto` lines.
    pub(crate) crypto: &'a [CryptoAttribute],
    /// Audio direction.
    pub(crate) direction: Direction,
}

/// The SDP text of our side, first version, `sendrecv`.
pub(crate) fn sdp_text(
    local: LocalMedia,
    session_id: u64,
    proto: &str,
    crypto: &[CryptoAttribute],
) -> String {
    render(&SdpSpec {
        local,
        session_id,
        version: 1,
        proto,
        crypto,
        direction: Direction::SendRecv,
    })
}

/// The SDP text for `spec`: PCMU, 20 ms, one audio stream.
pub(crate) fn render(spec: &SdpSpec<'_>) -> String {
    let local = spec.local;
    let family = if local.ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut sdp = String::with_capacity(400);
    let _ = write!(
        sdp,
        "v=0\r\n\
         o=gateway-sim {session_id} {version} IN {family} {ip}\r\n\
         s=gateway-sim\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} {proto} {PCMU}\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n",
        session_id = spec.session_id,
        version = spec.version,
        proto = spec.proto,
        ip = local.ip,
        port = local.rtp_port,
    );
    for attr in spec.crypto {
        let _ = write!(sdp, "a=crypto:{attr}\r\n");
    }
    let _ = write!(sdp, "a={}\r\n", spec.direction);
    sdp
}

/// Our offer: its text and the attributes it carries (to check the answer against).
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    /// The SDP body.
    pub(crate) sdp: String,
    /// Our `a=crypto` lines, empty for a plain offer.
    pub(crate) crypto: Vec<CryptoAttribute>,
    mode: SrtpMode,
}

/// Builds the offer for `mode`: RTP/SAVP with every suite for `offer` and `require`, plain
/// RTP/AVP for `accept` and `refuse`.
///
/// `lync`: SRTP offered as Lync does (MS-SDPEXT): on `RTP/AVP`, every key with a lifetime and
/// an MKI (`|2^31|1:1`), and `a=encryption:optional` (`required` for `require`).
pub(crate) fn make_offer(mode: SrtpMode, local: LocalMedia, session_id: u64, lync: bool) -> Offer {
    let (proto, mut crypto) = match mode {
        SrtpMode::Offer | SrtpMode::Require => ("RTP/SAVP", offer_crypto(&SrtpSuite::ALL)),
        SrtpMode::Accept | SrtpMode::Refuse => ("RTP/AVP", Vec::new()),
    };
    if !lync || crypto.is_empty() {
        return Offer {
            sdp: sdp_text(local, session_id, proto, &crypto),
            crypto,
            mode,
        };
    }
    for attr in &mut crypto {
        for key in &mut attr.keys {
            key.lifetime = Some(1 << 31);
            key.mki = Some((1, 1));
        }
    }
    let encryption = if mode == SrtpMode::Require {
        "required"
    } else {
        "optional"
    };
    let mut sdp = sdp_text(local, session_id, "RTP/AVP", &crypto);
    let _ = write!(sdp, "a=encryption:{encryption}\r\n");
    Offer { sdp, crypto, mode }
}

/// The suite and master key (with its MKI and lifetime) of an `a=crypto` attribute.
pub(crate) fn key_of(attr: &CryptoAttribute) -> Result<(SrtpSuite, MasterKey), String> {
    let key = attr.master_key()?;
    Ok((key.suite(), key))
}

pub(crate) fn audio_of(body: &[u8], what: &str) -> Result<AudioStream, String> {
    if body.is_empty() {
        return Err(format!("the {what} has no SDP"));
    }
    let sdp = mediation::sdp::parse(body).map_err(|e| format!("the {what}'s SDP: {e}"))?;
    sdp.audio()
        .ok_or_else(|| format!("the {what}'s SDP has no audio stream"))
}

/// The far end's media addresses from its audio stream.
fn remote_addresses(audio: &AudioStream, what: &str) -> Result<(SocketAddr, SocketAddr), String> {
    if audio.is_declined() {
        return Err(format!("the {what} declines audio (port 0)"));
    }
    if !audio.formats.iter().any(|f| f == PCMU) {
        return Err(format!(
            "the {what} does not list PCMU (payload type 0): {}",
            audio.formats.join(" ")
        ));
    }
    let ip = audio
        .address
        .ok_or_else(|| format!("the {what} has no c= IP address"))?;
    if ip.is_unspecified() {
        return Err(format!("the {what} puts media on hold (c= {ip})"));
    }
    let rtcp_port = audio
        .rtcp_port
        .unwrap_or_else(|| audio.port.saturating_add(1));
    Ok((
        SocketAddr::new(ip, audio.port),
        SocketAddr::new(ip, rtcp_port),
    ))
}

/// Checks the answer to our offer (caller side).
pub(crate) fn check_answer(offer: &Offer, answer_body: &[u8]) -> Result<MediaPlan, String> {
    let audio = audio_of(answer_body, "answer")?;
    let (remote_rtp, remote_rtcp) = remote_addresses(&audio, "answer")?;
    let plan = |srtp| MediaPlan {
        remote_rtp,
        remote_rtcp,
        srtp,
    };
    if offer.crypto.is_empty() {
        if !audio.crypto.is_empty() || audio.proto == Proto::Savp {
            return Err(format!(
                "the answer to our plain RTP offer uses SRTP ({} with {} a=crypto)",
                audio.proto,
                audio.crypto.len()
            ));
        }
        return Ok(plan(None));
    }
    if audio.crypto.is_empty() && audio.proto == Proto::Avp {
        if offer.mode == SrtpMode::Require {
            return Err(
                "the answer is plain RTP (RTP/AVP without a=crypto) but --srtp require".into(),
            );
        }
        return Ok(plan(None));
    }
    let (ours, theirs) = match_answer(&offer.crypto, &audio.crypto)
        .map_err(|e| format!("SRTP answer refused: {e}"))?;
    let (suite, ours) = key_of(&ours)?;
    let (_, theirs) = key_of(&theirs)?;
    Ok(plan(Some(SrtpKeys {
        suite,
        ours,
        theirs,
    })))
}

/// What to do with an offer (answerer side).
#[derive(Debug, Clone)]
pub(crate) enum AnswerDecision {
    /// Answer 200 with this SDP and media plan.
    Accept {
        /// Our answer SDP.
        sdp: String,
        /// The media.
        plan: MediaPlan,
    },
    /// Refuse the INVITE.
    Reject {
        /// Status code (488).
        code: u16,
        /// Why, for the report.
        reason: String,
    },
}

fn reject(reason: impl Into<String>) -> AnswerDecision {
    AnswerDecision::Reject {
        code: 488,
        reason: reason.into(),
    }
}

/// Answers an offer under `mode` (see [`SrtpMode`]).
pub(crate) fn answer_offer(
    mode: SrtpMode,
    offer_body: &[u8],
    local: LocalMedia,
    session_id: u64,
) -> AnswerDecision {
    let audio = match audio_of(offer_body, "offer") {
        Ok(audio) => audio,
        Err(reason) => return reject(reason),
    };
    let (remote_rtp, remote_rtcp) = match remote_addresses(&audio, "offer") {
        Ok(addresses) => addresses,
        Err(reason) => return reject(reason),
    };
    let usable = choose_crypto(&audio.crypto, &SrtpSuite::ALL);
    let srtp_wanted = match (&audio.proto, mode) {
        (Proto::Savp, SrtpMode::Refuse) => {
            return reject("SRTP-only offer (RTP/SAVP) and --srtp refuse");
        }
        (Proto::Savp, _) if usable.is_none() => {
            return reject("RTP/SAVP offer without a usable a=crypto");
        }
        (Proto::Savp, _) => true,
        (Proto::Avp, SrtpMode::Refuse) => false,
        (Proto::Avp, SrtpMode::Require) if usable.is_none() => {
            return reject("plain RTP offer (no usable a=crypto) and --srtp require");
        }
        (Proto::Avp, _) => usable.is_some(),
        (Proto::Other(other), _) => {
            return reject(format!("unsupported media transport {other}"));
        }
    };
    let plan = |srtp| MediaPlan {
        remote_rtp,
        remote_rtcp,
        srtp,
    };
    let chosen = match usable {
        Some(chosen) if srtp_wanted => chosen,
        _ => {
            return AnswerDecision::Accept {
                sdp: sdp_text(local, session_id, "RTP/AVP", &[]),
                plan: plan(None),
            }
        }
    };
    let ours = answer_crypto(chosen);
    let keys = key_of(&ours).and_then(|(suite, our_key)| {
        let (_, their_key) = key_of(chosen)?;
        Ok((
            ours.clone(),
            SrtpKeys {
                suite,
                ours: our_key,
                theirs: their_key,
            },
        ))
    });
    match keys {
        Ok((attr, keys)) => AnswerDecision::Accept {
            sdp: sdp_text(local, session_id, audio.proto.as_str(), &[attr]),
            plan: plan(Some(keys)),
        },
        Err(e) => AnswerDecision::Reject {
            code: 500,
            reason: format!("cannot make SRTP keys: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const CALLER: LocalMedia = LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        rtp_port: 40_000,
    };
    const CALLEE: LocalMedia = LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        rtp_port: 50_000,
    };

    fn answer(mode: SrtpMode, offer: &Offer) -> AnswerDecision {
        answer_offer(mode, offer.sdp.as_bytes(), CALLEE, 7)
    }

    fn accepted(decision: AnswerDecision) -> (String, MediaPlan) {
        match decision {
            AnswerDecision::Accept { sdp, plan } => (sdp, plan),
            AnswerDecision::Reject { reason, .. } => panic!("rejected: {reason}"),
        }
    }

    fn rejected(decision: AnswerDecision) -> (u16, String) {
        match decision {
            AnswerDecision::Reject { code, reason } => (code, reason),
            AnswerDecision::Accept { sdp, .. } => panic!("accepted: {sdp}"),
        }
    }

    #[test]
    fn srtp_offer_and_answer_agree_on_keys() {
        let offer = make_offer(SrtpMode::Offer, CALLER, 1, false);
        assert!(offer.sdp.contains("m=audio 40000 RTP/SAVP 0\r\n"));
        assert_eq!(offer.crypto.len(), SrtpSuite::ALL.len());
        for mode in [SrtpMode::Offer, SrtpMode::Accept, SrtpMode::Require] {
            let (sdp, callee_plan) = accepted(answer(mode, &offer));
            assert!(sdp.contains("m=audio 50000 RTP/SAVP 0\r\n"), "{sdp}");
            assert_eq!(callee_plan.remote_rtp, "127.0.0.1:40000".parse().unwrap());
            assert_eq!(callee_plan.remote_rtcp, "127.0.0.1:40001".parse().unwrap());
            let caller_plan = check_answer(&offer, sdp.as_bytes()).unwrap();
            assert_eq!(caller_plan.remote_rtp, "127.0.0.2:50000".parse().unwrap());
            let (a, b) = (caller_plan.srtp.unwrap(), callee_plan.srtp.unwrap());
            // The first suite we offer is the one the answerer takes.
            assert_eq!(a.suite, SrtpSuite::AesCm128HmacSha1_80);
            assert_eq!(a.suite, b.suite);
            assert_eq!(a.ours.key(), b.theirs.key());
            assert_eq!(a.theirs.salt(), b.ours.salt());
            assert_ne!(a.ours.key(), a.theirs.key());
        }
    }

    #[test]
    fn lync_offer_is_rtp_avp_with_mki_keys_and_is_answered_in_kind() {
        let offer = make_offer(SrtpMode::Offer, CALLER, 1, true);
        assert!(
            offer.sdp.contains("m=audio 40000 RTP/AVP 0\r\n"),
            "{}",
            offer.sdp
        );
        assert!(offer.sdp.contains("|2^31|1:1\r\n"), "{}", offer.sdp);
        assert!(
            offer.sdp.ends_with("a=encryption:optional\r\n"),
            "{}",
            offer.sdp
        );
        let (sdp, callee_plan) = accepted(answer(SrtpMode::Offer, &offer));
        assert!(sdp.contains("m=audio 50000 RTP/AVP 0\r\n"), "{sdp}");
        let caller_plan = check_answer(&offer, sdp.as_bytes()).unwrap();
        let (a, b) = (caller_plan.srtp.unwrap(), callee_plan.srtp.unwrap());
        assert_eq!(a.ours.mki(), mediation::srtp::Mki::new(1, 1));
        assert_eq!(b.theirs.mki(), a.ours.mki());
        assert_eq!(b.theirs.lifetime(), Some(1 << 31));
        // Refused, the offer still makes a plain call.
        let (sdp, plan) = accepted(answer(SrtpMode::Refuse, &offer));
        assert!(plan.srtp.is_none() && !sdp.contains("a=crypto"), "{sdp}");
        let required = make_offer(SrtpMode::Require, CALLER, 1, true);
        assert!(required.sdp.ends_with("a=encryption:required\r\n"));
    }

    #[test]
    fn refuse_answers_srtp_only_offer_with_488() {
        let offer = make_offer(SrtpMode::Require, CALLER, 1, false);
        let (code, reason) = rejected(answer(SrtpMode::Refuse, &offer));
        assert_eq!(code, 488);
        assert!(reason.contains("refuse"), "{reason}");
    }

    #[test]
    fn require_answers_plain_offer_with_488() {
        let offer = make_offer(SrtpMode::Refuse, CALLER, 1, false);
        assert!(offer.sdp.contains("RTP/AVP 0"));
        assert!(!offer.sdp.contains("a=crypto"));
        let (code, _) = rejected(answer(SrtpMode::Require, &offer));
        assert_eq!(code, 488);
        for mode in [SrtpMode::Offer, SrtpMode::Accept, SrtpMode::Refuse] {
            let (sdp, plan) = accepted(answer(mode, &offer));
            assert!(plan.srtp.is_none());
            assert!(check_answer(&offer, sdp.as_bytes()).unwrap().srtp.is_none());
        }
    }

    #[test]
    fn caller_require_fails_on_plain_answer_offer_takes_it() {
        let plain_answer = sdp_text(CALLEE, 3, "RTP/AVP", &[]);
        let required = make_offer(SrtpMode::Require, CALLER, 1, false);
        let err = check_answer(&required, plain_answer.as_bytes()).unwrap_err();
        assert!(err.contains("require"), "{err}");
        let offered = make_offer(SrtpMode::Offer, CALLER, 1, false);
        let plan = check_answer(&offered, plain_answer.as_bytes()).unwrap();
        assert_eq!(plan.profile(), "RTP/AVP");
    }

    #[test]
    fn best_effort_keys_on_an_avp_line() {
        // RTP/AVP with a=crypto: taken unless refusing.
        let keys = offer_crypto(&[SrtpSuite::AeadAes128Gcm]);
        let offer = sdp_text(CALLER, 1, "RTP/AVP", &keys);
        let (sdp, plan) = accepted(answer_offer(SrtpMode::Accept, offer.as_bytes(), CALLEE, 1));
        assert!(sdp.contains("RTP/AVP 0") && sdp.contains("a=crypto:1 AEAD_AES_128_GCM"));
        assert_eq!(plan.profile(), "RTP/SAVP");
        let (sdp, plan) = accepted(answer_offer(SrtpMode::Refuse, offer.as_bytes(), CALLEE, 1));
        assert!(!sdp.contains("a=crypto"));
        assert!(plan.srtp.is_none());
    }

    #[test]
    fn unusable_offers_are_refused() {
        let no_pcmu = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                       m=audio 4000 RTP/AVP 8\r\n";
        let (_, reason) = rejected(answer_offer(SrtpMode::Offer, no_pcmu.as_bytes(), CALLEE, 1));
        assert!(reason.contains("PCMU"), "{reason}");
        let (_, reason) = rejected(answer_offer(SrtpMode::Offer, b"", CALLEE, 1));
        assert!(reason.contains("no SDP"), "{reason}");
        let plain_answer_to_plain = make_offer(SrtpMode::Accept, CALLER, 1, false);
        let srtp_answer = sdp_text(
            CALLEE,
            1,
            "RTP/SAVP",
            &offer_crypto(&[SrtpSuite::AesCm128HmacSha1_80]),
        );
        assert!(check_answer(&plain_answer_to_plain, srtp_answer.as_bytes()).is_err());
    }
}
